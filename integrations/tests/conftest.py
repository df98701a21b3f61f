"""Webhook fixtures: a receiver (an integration's server, in a thread) that checks signatures like a real one
would, reached at http://localhost/... through the SSRF-safe fetcher."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from conftest import login
from whatsapp.testing import (  # noqa: F401 - fixtures, re-exported
    _empty_broker,
    _fresh_redis_state,
    _fresh_webhook_secrets,
    _sandbox_server,
    channel_a,
    sandbox,
)


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """Answers `status` (a list is consumed one per request); records every request."""

    secret: str = ""
    status: list[int] = field(default_factory=lambda: [200])
    received: list[Received] = field(default_factory=list)
    port: int = 0

    def verifies(self, request: Received) -> bool:
        expected = "sha256=" + hmac.new(self.secret.encode(), request.body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected, request.headers["x-webhook-signature"])


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            return

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            receiver.received.append(Received({k.lower(): v for k, v in self.headers.items()}, body))
            status = receiver.status.pop(0) if len(receiver.status) > 1 else receiver.status[0]
            reply = b'{"ok": true}' if status < 300 else b"<b>down</b>"
            self.send_response(status)
            self.send_header("Content-Length", str(len(reply)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(reply)

    return Handler


@pytest.fixture
def receiver(settings: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Receiver]:
    """OUTBOUND_ALLOW_PRIVATE_NETWORKS on (as in `make run`); every connection the fetcher opens is carried
    to the receiver's port (it listens on a free port, the URLs say port 80 as the SSRF policy requires)."""
    settings.OUTBOUND_ALLOW_PRIVATE_NETWORKS = True
    state = Receiver()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    server.daemon_threads = True
    state.port = int(server.server_address[1])
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    real_connect = socket.create_connection

    def carry(address: tuple[str, int], *args: Any, **kwargs: Any) -> socket.socket:
        assert address[0] == "127.0.0.1", address
        return real_connect(("127.0.0.1", state.port), *args, **kwargs)

    monkeypatch.setattr(socket, "create_connection", carry)
    yield state
    server.shutdown()
    server.server_close()


@pytest.fixture(autouse=True)
def _no_cached_endpoints() -> Iterator[None]:
    """Endpoints are cached per process and schema; rolled-back ones must not outlive their test."""
    from integrations import services

    services._endpoints.clear()
    yield
    services._endpoints.clear()


@pytest.fixture
def owner_client(client_a: Any, tenant_a: Any, owner_a: Any) -> Any:
    return login(client_a, tenant_a, owner_a)
