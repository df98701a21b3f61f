"""Whether a request is HTTPS comes from uvicorn's scheme, which believes X-Forwarded-Proto only from the
proxies in FORWARDED_ALLOW_IPS: a client that reaches the app directly cannot make itself "secure" (and
so, for instance, pass `require_https` redirect checks) by sending the header."""

from __future__ import annotations

import io
from typing import Any

from django.conf import settings
from django.core.handlers.asgi import ASGIRequest
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware


def _scope(client: str, scheme: str = "http") -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "path": "/",
        "raw_path": b"/",
        "query_string": b"",
        "root_path": "",
        "scheme": scheme,
        "headers": [(b"host", b"alpha.localhost"), (b"x-forwarded-proto", b"https")],
        "client": (client, 40000),
        "server": ("127.0.0.1", 8000),
    }


async def _scheme_after_uvicorn(client: str, trusted: list[str]) -> str:
    seen: dict[str, Any] = {}

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.update(scope)

    await ProxyHeadersMiddleware(app, trusted_hosts=trusted)(_scope(client), None, None)  # type: ignore[arg-type]
    return str(seen["scheme"])


def test_django_never_reads_the_forwarded_proto_header_itself() -> None:
    assert settings.SECURE_PROXY_SSL_HEADER is None
    assert not ASGIRequest(_scope("203.0.113.9"), io.BytesIO()).is_secure()  # type: ignore[arg-type]
    assert ASGIRequest(_scope("10.0.0.2", scheme="https"), io.BytesIO()).is_secure()  # type: ignore[arg-type]


async def test_uvicorn_believes_the_header_only_from_a_trusted_proxy() -> None:
    assert await _scheme_after_uvicorn("10.0.0.2", ["10.0.0.2"]) == "https"
    assert await _scheme_after_uvicorn("203.0.113.9", ["10.0.0.2"]) == "http"
    assert await _scheme_after_uvicorn("203.0.113.9", []) == "http"
