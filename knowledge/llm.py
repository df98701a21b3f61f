"""The one client of OpenAI-compatible APIs (OpenAI, Azure's OpenAI-compatible endpoint, Ollama, vLLM, the
bundled sandbox): chat completions, embeddings and the model list, over core.fetch so that a tenant's base
URL cannot reach a private address (unless the operator lists its host in OUTBOUND_ALLOWED_HOSTS, or
OUTBOUND_ALLOW_PRIVATE_NETWORKS is on).

Every failure is an LLMError with a stable code (llm_not_configured, llm_url_refused, llm_timeout,
llm_unreachable, llm_unauthorised, llm_rate_limited, llm_server_error, llm_bad_request,
llm_bad_response). A 429 or a 5xx is tried once more (after Retry-After, at most RETRY_AFTER_CAP
seconds); a timeout is not, the caller has already waited long enough.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

from core import fetch
from core.errors import ServiceError

RETRY_AFTER_CAP = 2.0
MAX_RESPONSE_BYTES = 4 * 1024 * 1024


class LLMError(ServiceError):
    """The LLM could not answer. `code` is stable; an outside service's fault answers 502."""

    status = 502


@dataclass(frozen=True)
class LLMConfig:
    base_url: str
    model: str
    api_key: str = ""
    embedding_model: str = ""
    timeout: float | None = None

    @property
    def configured(self) -> bool:
        return bool(self.base_url and self.model)


@dataclass
class ChatResult:
    text: str
    model: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_ms: int = 0
    # The parsed JSON (json mode) or the first tool call's arguments, when asked for.
    data: dict[str, Any] | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


def _url(config: LLMConfig, path: str) -> str:
    return config.base_url.rstrip("/") + path


def _headers(config: LLMConfig) -> dict[str, str]:
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if config.api_key:
        headers["Authorization"] = f"Bearer {config.api_key}"
        headers["api-key"] = config.api_key  # Azure's header; others ignore it
    return headers


def check_base_url(base_url: str) -> str:
    """The base URL a tenant may configure: http(s), no credentials, and (unless the operator allowed
    the host) a public address on port 80/443. Raises LLMError(llm_url_refused)."""
    try:
        fetch.check_url(base_url, resolve_host=True)
    except fetch.FetchRefused as exc:
        raise LLMError(
            "llm_url_refused",
            f"This LLM address is not allowed: {exc.message}",
            field="llm_base_url",
            status=400,
        ) from exc
    return base_url.rstrip("/")


def _request(config: LLMConfig, method: str, path: str, body: dict[str, Any] | None) -> dict[str, Any]:
    if not config.configured:
        raise LLMError("llm_not_configured", "No LLM is configured for this workspace.", status=409)
    total = config.timeout if config.timeout is not None else settings.LLM_TIMEOUT_SECONDS
    deadline = time.monotonic() + total
    for attempt in range(2):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise LLMError("llm_timeout", "The LLM did not answer in time.", status=504)
        try:
            response = fetch.fetch(
                method,
                _url(config, path),
                headers=_headers(config),
                json=body,
                timeout=remaining,
                total_timeout=remaining,
                max_bytes=MAX_RESPONSE_BYTES,
            )
        except fetch.FetchRefused as exc:
            raise LLMError("llm_url_refused", f"This LLM address is not allowed: {exc.message}") from exc
        except fetch.FetchError as exc:
            if exc.code == "timeout":
                raise LLMError("llm_timeout", "The LLM did not answer in time.", status=504) from exc
            if attempt == 0 and not exc.sent:
                continue
            raise LLMError("llm_unreachable", f"The LLM could not be reached: {exc.message}") from exc
        status = response.status_code
        if status == 200:
            try:
                data = response.json()
            except ValueError as exc:
                raise LLMError("llm_bad_response", "The LLM answered something that is not JSON.") from exc
            if not isinstance(data, dict):
                raise LLMError("llm_bad_response", "The LLM answered an unexpected shape.")
            return data
        message = _error_message(response)
        if status in (401, 403):
            raise LLMError("llm_unauthorised", f"The LLM refused the API key: {message}")
        if status == 429 or status >= 500:
            wait = _retry_after(response.headers.get("retry-after"))
            if attempt == 0 and wait <= RETRY_AFTER_CAP and time.monotonic() + wait < deadline:
                time.sleep(wait)
                continue
            code = "llm_rate_limited" if status == 429 else "llm_server_error"
            raise LLMError(
                code,
                f"The LLM answered {status}: {message}",
                details={"http_status": status, "retry_after": wait},
            )
        raise LLMError(
            "llm_bad_request", f"The LLM answered {status}: {message}", details={"http_status": status}
        )
    raise AssertionError("unreachable")  # pragma: no cover


def _retry_after(value: str | None) -> float:
    try:
        return max(0.0, float(value)) if value else 0.5
    except ValueError:
        return RETRY_AFTER_CAP + 1  # an HTTP date: far enough to give up now


def _error_message(response: fetch.Fetched) -> str:
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        return response.text[:200]
    if isinstance(error, dict):
        return str(error.get("message") or "")[:300]
    return str(error or "")[:300]


def chat(
    config: LLMConfig,
    messages: list[dict[str, Any]],
    *,
    json_mode: bool = False,
    tools: list[dict[str, Any]] | None = None,
    temperature: float = 0.0,
    max_tokens: int = 500,
) -> ChatResult:
    """One chat completion: the text, the tokens used and how long it took. `json_mode` asks for a JSON
    object (`data`), `tools` for a function call (its arguments in `data`)."""
    body: dict[str, Any] = {
        "model": config.model,
        "messages": messages,
        "temperature": temperature,
        "max_tokens": max_tokens,
    }
    if json_mode:
        body["response_format"] = {"type": "json_object"}
    if tools:
        body["tools"] = tools
        body["tool_choice"] = {"type": "function", "function": {"name": tools[0]["function"]["name"]}}
    started = time.monotonic()
    raw = _request(config, "POST", "/chat/completions", body)
    latency_ms = int((time.monotonic() - started) * 1000)
    try:
        message = raw["choices"][0]["message"]
    except (KeyError, IndexError, TypeError) as exc:
        raise LLMError("llm_bad_response", "The LLM answered without a message.") from exc
    text = str(message.get("content") or "")
    data: dict[str, Any] | None = None
    calls = message.get("tool_calls") or []
    if tools and calls:
        data = _json_object(calls[0].get("function", {}).get("arguments") or "")
    elif json_mode:
        data = _json_object(text)
    if (json_mode or tools) and data is None:
        raise LLMError("llm_bad_response", "The LLM did not answer the JSON it was asked for.")
    usage = raw.get("usage") or {}
    return ChatResult(
        text=text,
        model=str(raw.get("model") or config.model),
        prompt_tokens=int(usage.get("prompt_tokens") or 0),
        completion_tokens=int(usage.get("completion_tokens") or 0),
        latency_ms=latency_ms,
        data=data,
        raw=raw,
    )


def _json_object(text: str) -> dict[str, Any] | None:
    text = text.strip()
    if text.startswith("```"):  # some models fence their JSON
        text = text.strip("`").removeprefix("json").strip()
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def embed(config: LLMConfig, texts: list[str], *, model: str = "") -> list[list[float]]:
    """Vectors for `texts`, in order, from the /embeddings endpoint."""
    raw = _request(
        config,
        "POST",
        "/embeddings",
        {"model": model or config.embedding_model or config.model, "input": texts},
    )
    try:
        rows = sorted(raw["data"], key=lambda row: row["index"])
        vectors = [[float(x) for x in row["embedding"]] for row in rows]
    except (KeyError, TypeError, ValueError) as exc:
        raise LLMError("llm_bad_response", "The embeddings answer has an unexpected shape.") from exc
    if len(vectors) != len(texts):
        raise LLMError("llm_bad_response", "The embeddings answer has the wrong number of vectors.")
    return vectors


def list_models(config: LLMConfig) -> list[str]:
    raw = _request(config, "GET", "/models", None)
    return [str(row.get("id")) for row in raw.get("data") or [] if isinstance(row, dict)]
