"""A fake Graph API for development, tests and benchmarks: no Meta account needed.

    python -m whatsapp.sandbox --port 8001 --webhook-url http://127.0.0.1:8000/webhooks/whatsapp/

Point the app at it with WHATSAPP_GRAPH_URL=http://127.0.0.1:8001/v21.0 (the development and test
default). It accepts sends and returns wamids, posts signed status webhooks back (sent → delivered →
read) to --webhook-url, can be told to fail with any error code or to throttle, serves media, lists
templates page by page, knows which numbers belong to which WhatsApp Business Account and which tokens
may read them (`--number`, `add_number`: the ownership check of whatsapp.services.verify_number), and
keeps what it received for inspection. Control endpoints live under
/_sandbox/ (see `Handler.control`); tests use the Sandbox object in a thread and call its methods.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import hmac
import itertools
import json
import os
import queue
import re
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from email.parser import BytesParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from environ import FileAwareMapping

VERSION_RE = re.compile(r"^/v\d+(\.\d+)?(?=/)")

ERROR_TITLES = {
    0: "AuthException",
    4: "Too many calls",
    100: "Invalid parameter",
    190: "Access token has expired",
    368: "Temporarily blocked for policies violations",
    130429: "Rate limit hit",
    131000: "Something went wrong",
    131026: "Message undeliverable",
    131047: "Re-engagement message",
    131056: "(Business Account, Consumer Account) pair rate limit hit",
}


@dataclass
class FailureRule:
    code: int
    times: int = 1
    phone_number_id: str | None = None
    to: str | None = None
    http_status: int = 400
    title: str = ""
    # Accept the send, then report the failure in a `failed` status webhook (as Meta does for 131047).
    asynchronous: bool = False


@dataclass(frozen=True)
class SandboxNumber:
    """A business number of an account. `tokens`: the access tokens that may read it (None: any)."""

    phone_number_id: str
    waba_id: str
    tokens: frozenset[str] | None = None
    display_phone: str = ""
    verified_name: str = "Sandbox Business"

    def readable_by(self, token: str) -> bool:
        return self.tokens is None or token in self.tokens

    def graph(self) -> dict[str, Any]:
        return {
            "id": self.phone_number_id,
            "display_phone_number": self.display_phone or f"+1 555-{self.phone_number_id[-7:]}",
            "verified_name": self.verified_name,
            "quality_rating": "GREEN",
        }


@dataclass
class SandboxState:
    app_secret: str = "sandbox-app-secret"
    webhook_url: str | None = None
    auto_statuses: bool = True
    status_delay: float = 0.05
    sent: list[dict[str, Any]] = field(default_factory=list)
    read_receipts: list[dict[str, Any]] = field(default_factory=list)
    failures: list[FailureRule] = field(default_factory=list)
    throttles: dict[str, int] = field(default_factory=dict)
    media: dict[str, tuple[bytes, str, str]] = field(default_factory=dict)
    templates: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    numbers: dict[str, SandboxNumber] = field(default_factory=dict)
    # Status webhook bodies not posted anywhere (no webhook URL): tests deliver them themselves.
    outbox: list[bytes] = field(default_factory=list)
    per_second: dict[str, dict[int, int]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(int))
    )


class Sandbox:
    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        app_secret: str = "sandbox-app-secret",  # noqa: S107 - the sandbox's well-known dev secret
        webhook_url: str | None = None,
        auto_statuses: bool = True,
        status_delay: float = 0.05,
    ) -> None:
        self.lock = threading.Lock()
        self.state = SandboxState(
            app_secret=app_secret,
            webhook_url=webhook_url,
            auto_statuses=auto_statuses,
            status_delay=status_delay,
        )
        self._ids = itertools.count(1)
        # Ordered by due time, so statuses of many sends go out in time order (sent → delivered → read).
        self._statuses: queue.PriorityQueue[tuple[float, int, bytes | None]] = queue.PriorityQueue()
        self._seq = itertools.count()
        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self.server.sandbox = self  # type: ignore[attr-defined]
        self._threads: list[threading.Thread] = []

    # -- lifecycle -----------------------------------------------------------------------------------
    @property
    def base(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def url(self) -> str:
        """What WHATSAPP_GRAPH_URL should be."""
        return f"{self.base}/v21.0"

    def start(self) -> Sandbox:
        for target in (self.server.serve_forever, self._post_statuses):
            thread = threading.Thread(target=target, daemon=True, name=f"sandbox-{target.__name__}")
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        self._statuses.put((0.0, -1, None))
        self.server.shutdown()
        self.server.server_close()

    # -- control (also reachable over HTTP under /_sandbox/) ----------------------------------------------
    def reset(self) -> None:
        with self.lock:
            keep = (
                self.state.app_secret,
                self.state.webhook_url,
                self.state.auto_statuses,
                self.state.status_delay,
            )
            self.state = SandboxState(
                app_secret=keep[0], webhook_url=keep[1], auto_statuses=keep[2], status_delay=keep[3]
            )

    def configure(self, **options: Any) -> None:
        with self.lock:
            for key, value in options.items():
                if key not in ("webhook_url", "auto_statuses", "status_delay", "app_secret"):
                    raise ValueError(f"unknown sandbox option {key}")
                setattr(self.state, key, value)

    def fail(self, code: int, **options: Any) -> None:
        """The next matching send(s) fail with this Graph error code."""
        with self.lock:
            self.state.failures.append(FailureRule(code=code, **options))

    def throttle(self, phone_number_id: str, per_second: int) -> None:
        """Sends above this rate for the number get error 130429, as Meta's throughput limit does."""
        with self.lock:
            self.state.throttles[phone_number_id] = per_second

    def add_media(self, content: bytes, mime_type: str, filename: str = "", media_id: str = "") -> str:
        media_id = media_id or f"{next(self._ids) + 10**15}"
        with self.lock:
            self.state.media[media_id] = (content, mime_type, filename)
        return media_id

    def set_templates(self, waba_id: str, templates: list[dict[str, Any]]) -> None:
        with self.lock:
            self.state.templates[waba_id] = templates

    def add_number(
        self,
        phone_number_id: str,
        *,
        waba_id: str,
        tokens: list[str] | None = None,
        display_phone: str = "",
        verified_name: str = "Sandbox Business",
    ) -> None:
        """The number belongs to the account; only `tokens` may read either (None: any token)."""
        with self.lock:
            self.state.numbers[phone_number_id] = SandboxNumber(
                phone_number_id=phone_number_id,
                waba_id=waba_id,
                tokens=frozenset(tokens) if tokens is not None else None,
                display_phone=display_phone,
                verified_name=verified_name,
            )

    def sent(self, phone_number_id: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            return [s for s in self.state.sent if phone_number_id in (None, s["phone_number_id"])]

    def take_outbox(self) -> list[bytes]:
        with self.lock:
            bodies, self.state.outbox = self.state.outbox, []
        return bodies

    def wait_for_outbox(self, count: int, timeout: float = 5.0) -> list[bytes]:
        """Tests: wait until `count` status webhooks are waiting, then take them."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.state.outbox) >= count:
                    break
            time.sleep(0.01)
        return self.take_outbox()

    def max_rates(self) -> dict[str, int]:
        """The highest number of sends any one number saw in one wall-clock second."""
        with self.lock:
            return {pnid: max(seconds.values()) for pnid, seconds in self.state.per_second.items() if seconds}

    def sign(self, body: bytes) -> str:
        return "sha256=" + hmac.new(self.state.app_secret.encode(), body, hashlib.sha256).hexdigest()

    # -- behaviour ---------------------------------------------------------------------------------
    def _take_failure(self, phone_number_id: str, to: str | None) -> FailureRule | None:
        for rule in self.state.failures:
            if rule.phone_number_id not in (None, phone_number_id) or rule.to not in (None, to):
                continue
            rule.times -= 1
            if rule.times <= 0:
                self.state.failures.remove(rule)
            return rule
        return None

    def accept_send(self, phone_number_id: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        to = body.get("to")
        now = time.time()
        with self.lock:
            cap = self.state.throttles.get(phone_number_id)
            second = int(now)
            if cap is not None and self.state.per_second[phone_number_id][second] >= cap:
                return 400, error_body(130429, ERROR_TITLES[130429])
            rule = self._take_failure(phone_number_id, to)
            if rule and not rule.asynchronous:
                return rule.http_status, error_body(
                    rule.code, rule.title or ERROR_TITLES.get(rule.code, "Error")
                )
            self.state.per_second[phone_number_id][second] += 1
            wamid = "wamid.SBX" + base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
            self.state.sent.append(
                {"phone_number_id": phone_number_id, "body": body, "wamid": wamid, "at": now}
            )
            statuses = ["sent", "delivered", "read"] if self.state.auto_statuses else []
            if rule and rule.asynchronous:
                statuses = ["failed"]
        for index, status in enumerate(statuses):
            payload = status_payload(
                phone_number_id=phone_number_id,
                wamid=wamid,
                status=status,
                to=str(to or ""),
                opaque=body.get("biz_opaque_callback_data"),
                error=(rule.code, rule.title or ERROR_TITLES.get(rule.code, "Error")) if rule else None,
            )
            self._statuses.put((now + self.state.status_delay * (index + 1), next(self._seq), payload))
        return 200, {
            "messaging_product": "whatsapp",
            "contacts": [{"input": to, "wa_id": str(to or "").lstrip("+")}],
            "messages": [{"id": wamid, "message_status": "accepted"}],
        }

    def _post_statuses(self) -> None:
        with httpx.Client(timeout=5) as client:
            while True:
                due, _, body = self._statuses.get()
                if body is None:
                    return
                delay = due - time.time()
                if delay > 0:
                    time.sleep(delay)
                url = self.state.webhook_url
                if not url:
                    with self.lock:
                        self.state.outbox.append(body)
                    continue
                try:
                    client.post(
                        url,
                        content=body,
                        headers={"Content-Type": "application/json", "X-Hub-Signature-256": self.sign(body)},
                    )
                except httpx.HTTPError:
                    with self.lock:
                        self.state.outbox.append(body)


def error_body(code: int, title: str, details: str = "") -> dict[str, Any]:
    return {
        "error": {
            "message": f"({code}) {title}",
            "type": "OAuthException",
            "code": code,
            "error_data": {"messaging_product": "whatsapp", "details": details or title},
            "error_user_title": title,
            "fbtrace_id": uuid.uuid4().hex[:20],
        }
    }


def status_payload(
    *,
    phone_number_id: str,
    wamid: str,
    status: str,
    to: str,
    opaque: str | None = None,
    error: tuple[int, str] | None = None,
    timestamp: int | None = None,
) -> bytes:
    entry: dict[str, Any] = {
        "id": wamid,
        "status": status,
        "timestamp": str(timestamp or int(time.time())),
        "recipient_id": to.lstrip("+"),
    }
    if status != "failed":
        entry["conversation"] = {"id": uuid.uuid4().hex, "origin": {"type": "service"}}
        entry["pricing"] = {
            "billable": True,
            "pricing_model": "PMP",
            "category": "service",
            "type": "regular",
        }
    if opaque:
        entry["biz_opaque_callback_data"] = opaque
    if error:
        entry["errors"] = [
            {
                "code": error[0],
                "title": error[1],
                "message": error[1],
                "error_data": {"details": error[1]},
            }
        ]
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550000000", "phone_number_id": phone_number_id},
        "statuses": [entry],
    }
    body = {
        "object": "whatsapp_business_account",
        "entry": [{"id": "0", "changes": [{"value": value, "field": "messages"}]}],
    }
    return json.dumps(body).encode()


def unreadable_object(object_id: str) -> dict[str, Any]:
    """Meta's answer for an id the token may not read, whether or not it exists (code 100/33)."""
    body = error_body(
        100,
        f"Unsupported get request. Object with ID '{object_id}' does not exist, cannot be loaded due to "
        "missing permissions, or does not support this operation.",
    )
    body["error"]["error_subcode"] = 33
    return body


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "GraphSandbox/1"

    @property
    def sandbox(self) -> Sandbox:
        return self.server.sandbox  # type: ignore[attr-defined]

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _reply(
        self, status: int, body: dict[str, Any] | bytes, content_type: str = "application/json"
    ) -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _path(self) -> tuple[list[str], dict[str, list[str]]]:
        parts = urlsplit(self.path)
        path = VERSION_RE.sub("", parts.path)
        return [p for p in path.split("/") if p], parse_qs(parts.query)

    def _token(self) -> str:
        return (self.headers.get("Authorization") or "").removeprefix("Bearer ").strip()

    def _authorised(self) -> bool:
        token = self._token()
        if not token:
            self._reply(401, error_body(190, "Access token is missing"))
            return False
        if token == "expired":
            self._reply(401, error_body(190, ERROR_TITLES[190]))
            return False
        return True

    def do_GET(self) -> None:
        segments, query = self._path()
        if segments[:1] == ["_sandbox"]:
            return self.control("GET", segments[1:], b"")
        if not self._authorised():
            return None
        if len(segments) == 2 and segments[1] == "message_templates":
            return self.templates(segments[0], query)
        if len(segments) == 2 and segments[1] == "phone_numbers":
            return self.phone_numbers(segments[0], query)
        if len(segments) == 1 and segments[0] in self.sandbox.state.media:
            content, mime, _ = self.sandbox.state.media[segments[0]]
            return self._reply(
                200,
                {
                    "messaging_product": "whatsapp",
                    "url": f"{self.sandbox.base}/_files/{segments[0]}",
                    "mime_type": mime,
                    "sha256": hashlib.sha256(content).hexdigest(),
                    "file_size": len(content),
                    "id": segments[0],
                },
            )
        if len(segments) == 2 and segments[0] == "_files" and segments[1] in self.sandbox.state.media:
            content, mime, _ = self.sandbox.state.media[segments[1]]
            return self._reply(200, content, mime)
        if len(segments) == 1:
            number = self.sandbox.state.numbers.get(segments[0])
            if number is None or not number.readable_by(self._token()):
                return self._reply(400, unreadable_object(segments[0]))
            return self._reply(200, number.graph())
        return self._reply(404, error_body(100, "Unsupported get request"))

    def do_POST(self) -> None:
        segments, _ = self._path()
        body = self._body()
        if segments[:1] == ["_sandbox"]:
            return self.control("POST", segments[1:], body)
        if not self._authorised():
            return None
        if len(segments) == 2 and segments[1] == "messages":
            try:
                data = json.loads(body or b"{}")
            except ValueError:
                return self._reply(400, error_body(100, "Invalid JSON"))
            if data.get("status") == "read":
                with self.sandbox.lock:
                    self.sandbox.state.read_receipts.append({"phone_number_id": segments[0], **data})
                return self._reply(200, {"success": True})
            status, reply = self.sandbox.accept_send(segments[0], data)
            return self._reply(status, reply)
        if len(segments) == 2 and segments[1] == "media":
            return self.upload(body)
        return self._reply(404, error_body(100, "Unsupported post request"))

    def upload(self, body: bytes) -> None:
        header = f"Content-Type: {self.headers.get('Content-Type')}\r\n\r\n".encode()
        message = BytesParser().parsebytes(header + body)
        content, mime, filename = b"", "application/octet-stream", ""
        parts: list[Any] = list(message.get_payload()) if message.is_multipart() else []
        for part in parts:
            if part.get_param("name", header="content-disposition") == "file":
                content = bytes(part.get_payload(decode=True) or b"")
                mime = part.get_content_type()
                filename = part.get_filename() or ""
        if not content:
            return self._reply(400, error_body(100, "No file in the upload"))
        return self._reply(200, {"id": self.sandbox.add_media(content, mime, filename)})

    def templates(self, waba_id: str, query: dict[str, list[str]]) -> None:
        items = self.sandbox.state.templates.get(waba_id, [])
        limit = int((query.get("limit") or ["25"])[0])
        start = int((query.get("after") or ["0"])[0])
        page = items[start : start + limit]
        body: dict[str, Any] = {
            "data": page,
            "paging": {"cursors": {"before": str(start), "after": str(start + limit)}},
        }
        if start + limit < len(items):
            body["paging"]["next"] = (
                f"{self.sandbox.url}/{waba_id}/message_templates?limit={limit}&after={start + limit}"
            )
        return self._reply(200, body)

    def phone_numbers(self, waba_id: str, query: dict[str, list[str]]) -> None:
        """As Meta: an account the token cannot read is an object that "does not exist"."""
        token = self._token()
        with self.sandbox.lock:
            numbers = [n for n in self.sandbox.state.numbers.values() if n.waba_id == waba_id]
        readable = [n.graph() for n in numbers if n.readable_by(token)]
        if not readable:
            return self._reply(400, unreadable_object(waba_id))
        limit = int((query.get("limit") or ["25"])[0])
        start = int((query.get("after") or ["0"])[0])
        body: dict[str, Any] = {
            "data": readable[start : start + limit],
            "paging": {"cursors": {"before": str(start), "after": str(start + limit)}},
        }
        if start + limit < len(readable):
            body["paging"]["next"] = (
                f"{self.sandbox.url}/{waba_id}/phone_numbers?limit={limit}&after={start + limit}"
            )
        return self._reply(200, body)

    def control(self, method: str, segments: list[str], body: bytes) -> None:
        """GET state | POST reset | POST config | POST fail | POST throttle | POST media | POST templates
        | POST numbers."""
        sandbox = self.sandbox
        data = json.loads(body or b"{}") if method == "POST" else {}
        action = segments[0] if segments else "state"
        if method == "GET" and action == "state":
            with sandbox.lock:
                sent = list(sandbox.state.sent)
                reads = list(sandbox.state.read_receipts)
            return self._reply(200, {"sent": sent, "read_receipts": reads, "max_rates": sandbox.max_rates()})
        if method == "POST" and action == "reset":
            sandbox.reset()
        elif method == "POST" and action == "config":
            sandbox.configure(**data)
        elif method == "POST" and action == "fail":
            sandbox.fail(**data)
        elif method == "POST" and action == "throttle":
            sandbox.throttle(data["phone_number_id"], int(data["per_second"]))
        elif method == "POST" and action == "media":
            media_id = sandbox.add_media(
                base64.b64decode(data["content_b64"]), data["mime_type"], data.get("filename", "")
            )
            return self._reply(200, {"id": media_id})
        elif method == "POST" and action == "templates":
            sandbox.set_templates(data["waba_id"], data["templates"])
        elif method == "POST" and action == "numbers":
            sandbox.add_number(
                str(data["phone_number_id"]),
                waba_id=str(data["waba_id"]),
                tokens=data.get("tokens"),
                display_phone=str(data.get("display_phone", "")),
            )
        else:
            return self._reply(404, {"error": "unknown sandbox action"})
        return self._reply(200, {"ok": True})


# Approved templates the sandbox lists for the demo's account (`--templates-for`); seed_demo stores the
# same ones, so the demo can start conversations and answer outside the 24-hour window.
DEMO_TEMPLATES: list[dict[str, Any]] = [
    {
        "id": "900000000000001",
        "name": "order_update",
        "language": "en",
        "status": "APPROVED",
        "category": "UTILITY",
        "components": [{"type": "BODY", "text": "Hi {{1}}, your order {{2}} has shipped and arrives {{3}}."}],
    },
    {
        "id": "900000000000002",
        "name": "follow_up",
        "language": "en",
        "status": "APPROVED",
        "category": "MARKETING",
        "components": [
            {"type": "HEADER", "format": "TEXT", "text": "Still interested?"},
            {"type": "BODY", "text": "Hello {{1}}, can we help you with anything else?"},
            {"type": "BUTTONS", "buttons": [{"type": "QUICK_REPLY", "text": "Yes please"}]},
        ],
    },
]


@contextlib.contextmanager
def serving(
    numbers: list[tuple[str, str]], templates: dict[str, list[dict[str, Any]]] | None = None
) -> Iterator[Sandbox]:
    """A sandbox in a thread that the app's Graph client uses meanwhile, knowing these (phone_number_id,
    waba_id) pairs: for commands that connect numbers before any sandbox process runs (seed_demo under
    `make run`, the benchmarks), so the ownership check runs for real against it."""
    from django.test import override_settings

    sandbox = Sandbox(auto_statuses=False).start()
    try:
        for phone_number_id, waba_id in numbers:
            sandbox.add_number(phone_number_id, waba_id=waba_id)
        for waba_id, items in (templates or {}).items():
            sandbox.set_templates(waba_id, items)
        with override_settings(WHATSAPP_GRAPH_URL=sandbox.url):
            yield sandbox
    finally:
        sandbox.stop()


def _number_option(text: str) -> tuple[str, str, list[str] | None]:
    parts = text.split(":")
    if len(parts) not in (2, 3) or not all(parts[:2]):
        raise argparse.ArgumentTypeError("expected PHONE_NUMBER_ID:WABA_ID or PHONE_NUMBER_ID:WABA_ID:TOKEN")
    return parts[0], parts[1], [parts[2]] if len(parts) == 3 else None


def app_secret_from(environ: Mapping[str, str]) -> str:
    """The secret the app checks webhooks with (WHATSAPP_APP_SECRET or its _FILE, as config.settings reads
    it): a secret set for `make run` must sign the sandbox's status webhooks too, or the app refuses them
    and sent messages never turn delivered. Read from the environment, not a flag, so it stays out of `ps`."""
    value = FileAwareMapping(env=environ, cache=False).get("WHATSAPP_APP_SECRET") or ""
    return value.strip() or "sandbox-app-secret"


def build_parser(environ: Mapping[str, str]) -> argparse.ArgumentParser:
    """The command line, its defaults from `make run`'s variables (SANDBOX_PORT, WEB_PORT, the secret)."""
    web_port = environ.get("WEB_PORT") or "8000"
    parser = argparse.ArgumentParser(description="Fake WhatsApp Cloud API (Graph API) for development.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(environ.get("SANDBOX_PORT") or 8001))
    parser.add_argument("--webhook-url", default=f"http://127.0.0.1:{web_port}/webhooks/whatsapp/")
    parser.add_argument(
        "--app-secret",
        default=app_secret_from(environ),
        help="signs the status webhooks; default: WHATSAPP_APP_SECRET (or _FILE), else the sandbox's own",
    )
    parser.add_argument("--status-delay", type=float, default=0.5, help="seconds between status webhooks")
    parser.add_argument("--no-statuses", action="store_true", help="do not post status webhooks")
    parser.add_argument("--templates-for", default="", help="a WABA id to list the demo templates for")
    parser.add_argument(
        "--number",
        action="append",
        type=_number_option,
        default=[],
        help="PHONE_NUMBER_ID:WABA_ID[:TOKEN], a number of an account (readable by any token unless one "
        "is given); repeatable",
    )
    return parser


def main() -> None:
    args = build_parser(os.environ).parse_args()
    sandbox = Sandbox(
        host=args.host,
        port=args.port,
        app_secret=args.app_secret,
        webhook_url=args.webhook_url or None,
        auto_statuses=not args.no_statuses,
        status_delay=args.status_delay,
    ).start()
    if args.templates_for:
        sandbox.set_templates(args.templates_for, DEMO_TEMPLATES)
    for phone_number_id, waba_id, tokens in args.number:
        sandbox.add_number(phone_number_id, waba_id=waba_id, tokens=tokens)
    print(f"Graph API sandbox on {sandbox.url} (status webhooks to {args.webhook_url})", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        sandbox.stop()


if __name__ == "__main__":
    main()
