"""The LLM client (knowledge.llm) against the LLM sandbox: the real client code talks to a real HTTP
server, with errors, rate limits and timeouts injected there."""

from __future__ import annotations

import json

import httpx
import pytest

from knowledge import llm
from knowledge.llm_sandbox import DEFAULT_KEY, grounded_answer

CONTEXT = """<context>
[1] Prices
The basic plan costs 10 euros a month. The premium plan costs 25 euros a month and includes support.
[2] Shipping
Orders ship from Madrid within two days.
</context>"""


def config(sandbox, **options):
    return llm.LLMConfig(base_url=sandbox.url, model="sandbox-chat", api_key=DEFAULT_KEY, **options)


def ask(question):
    return [
        {"role": "system", "content": "Answer from the context.\n" + CONTEXT},
        {"role": "user", "content": question},
    ]


def test_a_chat_answer_comes_with_its_usage_and_latency(llm_sandbox):
    result = llm.chat(config(llm_sandbox), ask("How much is the premium plan?"))
    assert "25 euros" in result.text
    assert result.model == "sandbox-chat" and result.prompt_tokens > 0 and result.completion_tokens > 0
    assert result.latency_ms >= 0


def test_json_mode_returns_the_answer_whether_it_is_supported_and_the_passages_used(llm_sandbox):
    result = llm.chat(config(llm_sandbox), ask("What does the premium plan cost per month?"), json_mode=True)
    assert result.data["can_answer"] is True and result.data["sources"] == [1]
    refused = llm.chat(config(llm_sandbox), ask("Do you sell bicycles?"), json_mode=True)
    assert refused.data["can_answer"] is False


def test_a_tool_call_carries_the_arguments(llm_sandbox):
    tool = {
        "type": "function",
        "function": {
            "name": "answer",
            "parameters": {
                "type": "object",
                "properties": {"answer": {"type": "string"}, "can_answer": {"type": "boolean"}},
            },
        },
    }
    result = llm.chat(config(llm_sandbox), ask("Where do orders ship from?"), tools=[tool])
    assert result.data == {"answer": "Orders ship from Madrid within two days.", "can_answer": True}


def test_the_sandbox_refuses_in_the_customers_language():
    assert grounded_answer("¿Cuánto cuesta una bicicleta?", "Orders ship from Madrid.").text.startswith(
        "Lo siento"
    )
    assert grounded_answer("Quanto custa uma bicicleta?", "Orders ship from Madrid.").text.startswith(
        "Desculpe"
    )


def test_embeddings_are_deterministic_unit_vectors(llm_sandbox):
    cfg = config(llm_sandbox, embedding_model="sandbox-embed")
    first, again = llm.embed(cfg, ["delivery costs"]), llm.embed(cfg, ["delivery costs"])
    assert first == again and abs(sum(x * x for x in first[0]) - 1) < 1e-6
    assert llm.list_models(cfg) == ["sandbox-chat", "sandbox-embed"]


def test_a_wrong_key_is_llm_unauthorised(llm_sandbox):
    with pytest.raises(llm.LLMError) as error:
        llm.chat(llm.LLMConfig(base_url=llm_sandbox.url, model="m", api_key="wrong"), ask("hi"))
    assert error.value.code == "llm_unauthorised"


def test_a_rate_limit_with_a_short_retry_after_is_retried_once(llm_sandbox):
    llm_sandbox.fail(429, retry_after=0.1)
    assert "25 euros" in llm.chat(config(llm_sandbox), ask("How much is the premium plan?")).text
    assert len(llm_sandbox.requests("/v1/chat/completions")) == 2


def test_a_rate_limit_with_a_long_retry_after_is_llm_rate_limited(llm_sandbox):
    llm_sandbox.fail(429, retry_after=60)
    with pytest.raises(llm.LLMError) as error:
        llm.chat(config(llm_sandbox), ask("How much is the premium plan?"))
    assert error.value.code == "llm_rate_limited" and error.value.details["retry_after"] == 60


def test_a_server_error_twice_is_llm_server_error(llm_sandbox):
    llm_sandbox.fail(500, times=2)
    with pytest.raises(llm.LLMError) as error:
        llm.chat(config(llm_sandbox), ask("hi"))
    assert error.value.code == "llm_server_error" and error.value.status == 502


def test_a_slow_llm_is_llm_timeout(llm_sandbox):
    llm_sandbox.hang(2.0)
    with pytest.raises(llm.LLMError) as error:
        llm.chat(config(llm_sandbox, timeout=0.5), ask("hi"))
    assert error.value.code == "llm_timeout"


def test_an_answer_that_is_not_the_json_asked_for_is_llm_bad_response(llm_sandbox, monkeypatch):
    from knowledge import llm_sandbox as module

    monkeypatch.setattr(module, "complete", lambda body: {"choices": [{"message": {"content": "not json"}}]})
    with pytest.raises(llm.LLMError) as error:
        llm.chat(config(llm_sandbox), ask("hi"), json_mode=True)
    assert error.value.code == "llm_bad_response"


@pytest.mark.parametrize(
    "url",
    [
        "http://10.0.0.7/v1",
        "http://192.168.1.20/v1",
        "http://169.254.169.254/v1",
        "https://user:pw@api.example.com/v1",
        "ftp://api.example.com/v1",
    ],
)
def test_a_private_or_malformed_base_url_is_refused_before_anything_is_sent(url, settings):
    settings.OUTBOUND_ALLOW_PRIVATE_NETWORKS = False
    with pytest.raises(llm.LLMError) as error:
        llm.check_base_url(url)
    assert error.value.code == "llm_url_refused"
    with pytest.raises(llm.LLMError) as error:
        llm.chat(llm.LLMConfig(base_url=url, model="m"), ask("hi"))
    assert error.value.code == "llm_url_refused"


def test_no_configuration_is_llm_not_configured():
    with pytest.raises(llm.LLMError) as error:
        llm.chat(llm.LLMConfig(base_url="", model=""), ask("hi"))
    assert error.value.code == "llm_not_configured"


def test_the_sandbox_checks_the_bearer_key_and_offers_http_controls(llm_sandbox):
    assert httpx.get(f"{llm_sandbox.url}/models").status_code == 401
    assert httpx.post(f"{llm_sandbox.base}/_sandbox/fail", json={"status": 503}).status_code == 200
    response = httpx.get(f"{llm_sandbox.url}/models", headers={"Authorization": f"Bearer {DEFAULT_KEY}"})
    assert response.status_code == 503
    state = httpx.get(f"{llm_sandbox.base}/_sandbox/state").json()
    assert [r["path"] for r in state["requests"]] == ["/v1/models"]
    assert json.loads(httpx.post(f"{llm_sandbox.base}/_sandbox/nope", json={}).content) == {
        "error": "unknown sandbox action"
    }
