"""A tiny WAHA server for the client's and the delivery's tests: records every request and answers the
contract's subset; tests script failures per path (a status, a dropped connection after the request
was read, a slow answer, an answer without an id)."""

from __future__ import annotations

import contextlib
import itertools
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

API_KEY = "waha-test-key"


@dataclass
class Rule:
    path: str
    status: int = 500
    body: Any = None
    drop: bool = False  # read the request, then close the connection without answering
    delay: float = 0.0
    times: int = 1


@dataclass
class State:
    requests: list[dict[str, Any]] = field(default_factory=list)
    rules: list[Rule] = field(default_factory=list)
    sessions: dict[str, dict[str, Any]] = field(default_factory=dict)
    files: dict[str, tuple[bytes, str]] = field(default_factory=dict)
    date: str | None = None  # the Date header answers carry (None: the current time, as http.server sends)


class FakeWaha:
    def __init__(self) -> None:
        self.state = State()
        self.lock = threading.Lock()
        self.ids = itertools.count(1)
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def date_time_string(self, timestamp: float | None = None) -> str:
                return fake.state.date if fake.state.date is not None else super().date_time_string(timestamp)

            def _handle(self, method: str) -> None:
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    data = json.loads(raw) if raw else None
                except ValueError:
                    data = None
                path = self.path.split("?")[0]
                with fake.lock:
                    fake.state.requests.append(
                        {
                            "method": method,
                            "path": path,
                            "url": self.path,
                            "json": data,
                            "headers": dict(self.headers),
                        }
                    )
                    rule = next((r for r in fake.state.rules if r.path == path), None)
                    if rule is not None:
                        rule.times -= 1
                        if rule.times <= 0:
                            fake.state.rules.remove(rule)
                if rule is not None and rule.delay:
                    time.sleep(rule.delay)
                if rule is not None and rule.drop:
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                if self.headers.get("X-Api-Key") != API_KEY:
                    return self._reply(401, {"statusCode": 401, "message": "Unauthorized"})
                if rule is not None:
                    return self._reply(
                        rule.status,
                        rule.body
                        if rule.body is not None
                        else {"statusCode": rule.status, "message": "scripted"},
                    )
                status, body, content_type = fake.route(method, path, data)
                self._reply(status, body, content_type)

            def _reply(self, status: int, body: Any, content_type: str = "application/json") -> None:
                raw = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                with contextlib.suppress(OSError):  # the client gave up waiting (a timeout test)
                    self.wfile.write(raw)

            def do_GET(self) -> None:
                self._handle("GET")

            def do_POST(self) -> None:
                self._handle("POST")

            def do_PUT(self) -> None:
                self._handle("PUT")

            def do_DELETE(self) -> None:
                self._handle("DELETE")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def reset(self) -> None:
        with self.lock:
            self.state = State()

    # -- scripting ------------------------------------------------------------------------------------
    def script(self, path: str, **options: Any) -> None:
        with self.lock:
            self.state.rules.append(Rule(path=path, **options))

    def serve_date(self, value: str | None) -> None:
        """Answer with this Date header (WAHA's clock; None: the current time)."""
        with self.lock:
            self.state.date = value

    def add_file(self, path: str, content: bytes, content_type: str) -> str:
        with self.lock:
            self.state.files[path] = (content, content_type)
        return f"{self.url}{path}"

    def requests(self, path: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            return [r for r in self.state.requests if path in (None, r["path"])]

    # -- the API --------------------------------------------------------------------------------------
    def route(self, method: str, path: str, data: Any) -> tuple[int, Any, str]:
        data = data if isinstance(data, dict) else {}
        if path.startswith("/api/files/"):
            found = self.state.files.get(path)
            if found is None:
                return 404, {"statusCode": 404, "message": "Not found"}, "application/json"
            return 200, found[0], found[1]
        if path == "/api/sessions" and method == "POST":
            name = str(data.get("name"))
            if name in self.state.sessions:
                return (
                    422,
                    {"statusCode": 422, "message": f"Session '{name}' already exists"},
                    "application/json",
                )
            self.state.sessions[name] = {
                "name": name,
                "status": "SCAN_QR_CODE",
                "config": data.get("config"),
                "me": None,
            }
            return 201, self.state.sessions[name], "application/json"
        if path.startswith("/api/sessions/"):
            parts = path.split("/")[3:]
            session = self.state.sessions.get(parts[0])
            if session is None:
                return 404, {"statusCode": 404, "message": "Session not found"}, "application/json"
            if method == "DELETE":
                del self.state.sessions[parts[0]]
                return 200, {}, "application/json"
            if method == "PUT":
                session["config"] = data.get("config")
            if len(parts) == 2:
                session["status"] = {"stop": "STOPPED", "logout": "STOPPED"}.get(parts[1], "STARTING")
            return 200, session, "application/json"
        if path.endswith("/auth/qr"):
            return 200, {"value": "2@fake-qr-value"}, "application/json"
        if path in (
            "/api/sendText",
            "/api/sendImage",
            "/api/sendFile",
            "/api/sendVoice",
            "/api/sendLocation",
        ):
            chat = str(data.get("chatId") or "")
            return 201, {"id": f"true_{chat}_FAKE{next(self.ids):06d}", "fromMe": True}, "application/json"
        if path in ("/api/reaction", "/api/sendSeen", "/api/startTyping", "/api/stopTyping"):
            return 200, {}, "application/json"
        return 404, {"statusCode": 404, "message": f"Cannot {method} {path}"}, "application/json"


# -- fixtures (imported by the WAHA tests that use them) ---------------------------------------------


@pytest.fixture(scope="session")
def _fake_waha_server() -> Iterator[FakeWaha]:
    server = FakeWaha()
    yield server
    server.stop()


@pytest.fixture
def fake_waha(_fake_waha_server: FakeWaha) -> FakeWaha:
    _fake_waha_server.reset()
    return _fake_waha_server


@pytest.fixture
def waha_a(tenant_a: Any, fake_waha: FakeWaha) -> Any:
    """A WORKING WAHA number of alpha on the fake server."""
    from waha.testing import make_waha_number

    return make_waha_number(tenant_a, server_url=fake_waha.url, api_key=API_KEY, display_phone="+15550002222")


@pytest.fixture
def waha_conversation_a(waha_a: Any, tenant_a: Any) -> Any:
    """A conversation of alpha on its WAHA number; the contact wrote three days ago (no window applies)."""
    import datetime as dt

    from django.utils import timezone
    from django_tenants.utils import schema_context

    from conversations.models import Conversation
    from crm.models import Contact

    with schema_context(tenant_a.schema_name):
        contact = Contact.objects.create(
            name="Wanda",
            phone="+16505550199",
            wa_id="16505550199",
            last_inbound_at=timezone.now() - dt.timedelta(days=3),
        )
        return Conversation.objects.create(contact=contact, channel=waha_a.channel)
