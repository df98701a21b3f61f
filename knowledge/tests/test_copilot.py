"""The copilot in the composer: hidden with no LLM, text for the composer with one (never sent), and only
for conversations the agent sees."""

from __future__ import annotations

import pytest
from django_tenants.utils import schema_context

from conftest import login, make_agent
from conversations.models import Conversation, Message
from knowledge.tests.ai_fixtures import (
    customer_writes,
    thread,
    use_llm,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def talk(public_client, tenant_a, channel_a, sandbox, knowledge_a):
    """A conversation in which the customer asked about refunds (no AI agent: it went to the queue)."""
    customer_writes(public_client, "Hello! How long does a refund take to reach me?")
    conversation, messages = thread(tenant_a)
    return conversation, messages[0]


def copilot(client, conversation, **data):
    return client.post(f"/ai/c/{conversation.pk}/copilot/", data, HTTP_ACCEPT="application/json")


def test_the_composer_has_no_copilot_without_an_llm(talk, client_a, tenant_a, owner_a):
    conversation, _ = talk
    login(client_a, tenant_a, owner_a)
    html = client_a.get(f"/inbox/c/{conversation.pk}/", HTTP_HX_REQUEST="true").content.decode()
    assert 'id="composer-text"' in html and 'id="copilot"' not in html
    response = copilot(client_a, conversation, action="summarise")
    assert response.status_code == 409 and response.json()["error"]["code"] == "llm_not_configured"


def test_with_an_llm_the_composer_offers_the_copilot(talk, client_a, tenant_a, owner_a, llm_sandbox):
    conversation, _ = talk
    use_llm(tenant_a, llm_sandbox, enabled=False)
    login(client_a, tenant_a, owner_a)
    html = client_a.get(f"/inbox/c/{conversation.pk}/", HTTP_HX_REQUEST="true").content.decode()
    assert 'id="copilot"' in html and 'data-copilot="suggest"' in html


def test_suggest_summarise_translate_and_rewrite_return_text_and_send_nothing(
    talk, client_a, tenant_a, owner_a, llm_sandbox, sandbox
):
    conversation, inbound = talk
    use_llm(tenant_a, llm_sandbox, enabled=False)
    login(client_a, tenant_a, owner_a)
    sent_before = len(sandbox.sent())
    suggestion = copilot(client_a, conversation, action="suggest")
    assert suggestion.status_code == 200, suggestion.content
    assert "five working days" in suggestion.json()["text"]
    summary = copilot(client_a, conversation, action="summarise").json()["text"]
    assert summary.startswith("Summary:") and "refund" in summary
    translated = copilot(client_a, conversation, action="translate", message_id=inbound.pk, language="es")
    assert translated.json()["text"].startswith("[es]")
    shorter = copilot(
        client_a,
        conversation,
        action="rewrite",
        style="shorter",
        draft="Thanks for waiting. Your refund was sent today. It arrives soon.",
    )
    assert shorter.json()["text"] == "Thanks for waiting."
    formal = copilot(client_a, conversation, action="rewrite", style="formal", draft="hey, it's sent")
    assert formal.json()["text"].startswith("Dear customer")
    with schema_context(tenant_a.schema_name):
        assert not Message.objects.filter(conversation=conversation, direction="out", type="text").exists()
    assert len(sandbox.sent()) == sent_before
    # The API does the same.
    api = client_a.post(
        f"/api/v1/ai/conversations/{conversation.pk}/copilot/",
        {"action": "summarise"},
        content_type="application/json",
    )
    assert api.status_code == 200 and api.json()["text"].startswith("Summary:")


@pytest.mark.parametrize(
    ("data", "code"),
    [
        ({"action": "rewrite", "draft": ""}, "empty_draft"),
        ({"action": "translate"}, "invalid_message"),
        ({"action": "translate", "message_id": 999999}, "invalid_message"),
        ({"action": "dance"}, "invalid"),
    ],
)
def test_bad_copilot_requests_are_400_with_a_code(data, code, talk, client_a, tenant_a, owner_a, llm_sandbox):
    conversation, _ = talk
    use_llm(tenant_a, llm_sandbox, enabled=False)
    login(client_a, tenant_a, owner_a)
    response = copilot(client_a, conversation, **data)
    assert response.status_code == 400 and response.json()["error"]["code"] == code


def test_an_llm_failure_is_a_502_with_its_code(talk, client_a, tenant_a, owner_a, llm_sandbox):
    conversation, _ = talk
    use_llm(tenant_a, llm_sandbox, enabled=False)
    llm_sandbox.fail(500, times=2)
    login(client_a, tenant_a, owner_a)
    response = copilot(client_a, conversation, action="summarise")
    assert response.status_code == 502 and response.json()["error"]["code"] == "llm_server_error"


def test_a_conversation_the_agent_does_not_see_is_404(talk, client_a, tenant_a, llm_sandbox):
    conversation, _ = talk
    use_llm(tenant_a, llm_sandbox, enabled=False)
    other = make_agent(tenant_a, email="other@alpha.test").user
    me = make_agent(tenant_a, email="me@alpha.test").user
    with schema_context(tenant_a.schema_name):
        Conversation.objects.filter(pk=conversation.pk).update(assignee=other)
    login(client_a, tenant_a, me)
    assert copilot(client_a, conversation, action="summarise").status_code == 404
    api = client_a.post(
        f"/api/v1/ai/conversations/{conversation.pk}/copilot/",
        {"action": "summarise"},
        content_type="application/json",
    )
    assert api.status_code == 404


def test_another_tenants_conversation_is_404(talk, client_b, tenant_b, owner_b, llm_sandbox):
    conversation, _ = talk
    use_llm(tenant_b, llm_sandbox, enabled=False)
    login(client_b, tenant_b, owner_b)
    assert copilot(client_b, conversation, action="summarise").status_code == 404
