"""A fake WAHA (WhatsApp HTTP API) server for development, tests and demos: no phone, no WhatsApp account.

    python -m waha.sandbox --port 8003 --api-key waha-sandbox-key

Point a WAHA number at it (the development and test default of WAHA_URL / WAHA_API_KEY). It implements
the subset of WAHA's API the CRM uses (docs/waha contract): sessions (create, update, get, start, stop,
restart, logout, delete) going STARTING → SCAN_QR_CODE, a fake QR value (`GET /api/{session}/auth/qr
?format=raw`) that rotates every ~20 s, sends that answer `true_<chatId>_<HEX>` ids, reactions,
sendSeen, typing, and `/api/files/<session>/<file>` serving the media it emits. Every /api/ request needs
the `X-Api-Key` header (401 otherwise).

Webhooks go to each session's configured webhook URLs (`config.webhooks[]`, filtered by their `events`,
"*" for all), signed as WAHA signs them: `X-Webhook-Hmac` (hex HMAC-SHA512 of the raw body with the
webhook's `hmac.key`), `X-Webhook-Hmac-Algorithm: sha512`, `X-Webhook-Request-Id`, `X-Webhook-Timestamp`
(ms). They leave from a background thread (a queue ordered by due time), so no request waits on them:
`session.status` on every transition (and again on each QR rotation, as WAHA does), and for each send a
`message.any` echo (fromMe, source "api") then `message.ack` SERVER → DEVICE → READ (`ack_delay` apart;
`auto_acks=False` switches them off). With `deliver=False` (tests) nothing is posted: the deliveries wait
in the outbox for `take_webhooks()` and the test posts them through Django's test client; with
`deliver=True` (`make run`) they are POSTed, retried per the webhook's `retries` policy.

Payload conventions (WEBJS-like): inbound messages have `from` = the chat (the customer), `to` = me;
messages from us (`fromMe`) have `from` = me, `to` = the chat; a message id is
`<fromMe>_<chatId>_<HEX>`; `message.ack` carries `id`, `from` (me), `to` (the chat), `fromMe`, `ack`,
`ackName`; `message.revoked` / `message.edited` name the target by its bare `<HEX>` (as WAHA does:
`revokedMessageId`, `editedMessageId`).

Control (tests call the methods; over HTTP under /_sandbox/, unauthenticated, like the Graph sandbox):
`link` (the phone "scans" the QR: WORKING), `disconnect` (FAILED), `fail` (the next sends fail with an
HTTP status or a reset connection), `emit_inbound`, `emit_from_phone`, `emit_reaction`, `emit_revoked`,
`emit_edited`, `rotate_qr`, `sent`, `reset`. GET / is a small page listing the sessions with their QR, a
"Scan (link)" button and a form to send a message from a customer.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import hmac
import html
import io
import itertools
import json
import os
import queue
import re
import secrets
import socket
import struct
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

import httpx
import segno
from environ import FileAwareMapping

# The development default of WAHA_API_KEY (config/settings.py) and of this server's --api-key.
DEFAULT_API_KEY = "waha-sandbox-key"
DEFAULT_PHONE = "+15550001111"
DEFAULT_PUSH_NAME = "Sandbox Phone"
QR_ROTATE_SECONDS = 20.0
ACK_NAMES = {-1: "ERROR", 0: "PENDING", 1: "SERVER", 2: "DEVICE", 3: "READ", 4: "PLAYED"}
STATUSES = ("STOPPED", "STARTING", "SCAN_QR_CODE", "WORKING", "FAILED")
SEND_ENDPOINTS = ("sendText", "sendImage", "sendFile", "sendVoice", "sendLocation")
CHAT_ID_RE = re.compile(r"^(?:[0-9]{5,20}@c\.us|[0-9]{5,25}@lid|[0-9-]{5,40}@g\.us)$")
SESSION_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
FILE_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,120}$")
ENVIRONMENT = {"version": "2026.1.0-sandbox", "engine": "GOWS", "tier": "CORE", "browser": None}
UNDELIVERED_KEPT = 200


class SandboxError(Exception):
    """A control call the sandbox refuses (unknown session, wrong status): 404/409 over HTTP."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Webhook:
    """One signed webhook request: where it goes, its headers and its raw body."""

    url: str
    headers: dict[str, str]
    body: bytes

    @property
    def data(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.body)
        return parsed

    @property
    def event(self) -> str:
        return str(self.data.get("event", ""))

    @property
    def payload(self) -> dict[str, Any]:
        payload: dict[str, Any] = self.data.get("payload") or {}
        return payload

    @property
    def path(self) -> str:
        return urlsplit(self.url).path


@dataclass
class FailureRule:
    """The next `count` sends (of `session`, or any) fail: kind "http" answers `status`, "reset" closes the
    connection without an answer (the client cannot know whether the message went)."""

    kind: str = "http"
    count: int = 1
    status: int = 500
    session: str | None = None


@dataclass
class SandboxSession:
    name: str
    config: dict[str, Any] = field(default_factory=dict)
    status: str = "STOPPED"
    # The linked account (kept across stop/start and FAILED, forgotten on logout), as WAHA keeps its auth.
    me: dict[str, Any] | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    qr_secret: str = field(default_factory=lambda: secrets.token_hex(16))
    qr_since: float = 0.0
    qr_epoch: int = 0

    def json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "config": self.config,
            "me": self.me if self.status == "WORKING" else None,
            "engine": {"engine": ENVIRONMENT["engine"]},
        }

    def webhooks(self) -> list[dict[str, Any]]:
        hooks = self.config.get("webhooks") if isinstance(self.config, dict) else None
        return [h for h in hooks or [] if isinstance(h, dict) and isinstance(h.get("url"), str)]


@dataclass
class SandboxState:
    sessions: dict[str, SandboxSession] = field(default_factory=dict)
    sent: list[dict[str, Any]] = field(default_factory=list)
    failures: list[FailureRule] = field(default_factory=list)
    # (session, file name) → (content, mimetype, filename)
    files: dict[tuple[str, str], tuple[bytes, str, str]] = field(default_factory=dict)
    # deliver=False: every webhook waits here for take_webhooks()
    outbox: list[Webhook] = field(default_factory=list)
    # deliver=True: the last webhooks that could not be delivered after their retries
    undelivered: deque[Webhook] = field(default_factory=lambda: deque(maxlen=UNDELIVERED_KEPT))
    # every message id the sandbox made → its payload (the targets of reactions, revokes and edits)
    messages: dict[str, dict[str, Any]] = field(default_factory=dict)


# A queued job: a webhook to post (with its attempt number and retry policy) or a callable to run later.
@dataclass
class _Job:
    generation: int
    webhook: Webhook | None = None
    retries: dict[str, Any] | None = None
    attempt: int = 0
    action: Callable[[], None] | None = None


def sign(body: bytes, key: str) -> str:
    """WAHA's X-Webhook-Hmac: hex HMAC-SHA512 of the raw body."""
    return hmac.new(key.encode(), body, hashlib.sha512).hexdigest()


def chat_id_of(phone: str) -> str:
    """ "+1 555 000-1111" → "15550001111@c.us"; a value that already is a chat id is kept."""
    if "@" in phone:
        return phone
    digits = "".join(ch for ch in phone if ch.isdigit())
    if not 5 <= len(digits) <= 20:
        raise SandboxError(400, f"'{phone}' is not a phone number")
    return f"{digits}@c.us"


def new_message_hex() -> str:
    return "3EB0" + secrets.token_hex(8).upper()


def retry_delay(retries: Mapping[str, Any] | None, attempt: int) -> float | None:
    """Seconds before retry number `attempt` (1-based), or None when the attempts are used up."""
    retries = retries or {}
    attempts = int(retries.get("attempts") or 0)
    if attempt > attempts:
        return None
    delay = float(retries.get("delaySeconds") or 2)
    policy = str(retries.get("policy") or "constant")
    if policy == "linear":
        return delay * attempt
    if policy == "exponential":
        return delay * 2 ** (attempt - 1)
    return delay


class Sandbox:
    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str = DEFAULT_API_KEY,
        deliver: bool = False,
        auto_acks: bool = True,
        ack_delay: float = 0.05,
        start_delay: float = 0.0,
        qr_rotate_seconds: float = QR_ROTATE_SECONDS,
        announce_qr_rotation: bool = False,
        state_file: str | None = None,
    ) -> None:
        self.lock = threading.RLock()
        # make run: the sessions (config, linked account) survive a restart, as WAHA keeps them.
        self.state_file = state_file
        self.api_key = api_key
        self.deliver = deliver
        self.auto_acks = auto_acks
        self.ack_delay = ack_delay
        self.start_delay = start_delay
        self.qr_rotate_seconds = qr_rotate_seconds
        self.announce_qr_rotation = announce_qr_rotation
        self.state = SandboxState()
        self._generation = 0
        self._jobs: queue.PriorityQueue[tuple[float, int, _Job | None]] = queue.PriorityQueue()
        self._seq = itertools.count()
        self.server = _Server((host, port), Handler)
        self.server.daemon_threads = True
        self.server.sandbox = self  # type: ignore[attr-defined]
        self._load()

    # -- lifecycle -----------------------------------------------------------------------------------
    @property
    def base(self) -> str:
        """What WAHA_URL should be."""
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def url(self) -> str:
        return self.base

    def start(self) -> Sandbox:
        for target in (self.server.serve_forever, self._run_jobs):
            threading.Thread(target=target, daemon=True, name=f"waha-sandbox-{target.__name__}").start()
        return self

    def stop(self) -> None:
        self._jobs.put((0.0, -1, None))
        self.server.shutdown()
        self.server.server_close()

    def reset(self) -> None:
        """Forget every session, send, failure, file and queued webhook."""
        with self.lock:
            self._generation += 1
            self.state = SandboxState()

    def configure(self, **options: Any) -> None:
        allowed = (
            "deliver",
            "auto_acks",
            "ack_delay",
            "start_delay",
            "qr_rotate_seconds",
            "api_key",
            "announce_qr_rotation",
        )
        with self.lock:
            for key, value in options.items():
                if key not in allowed:
                    raise ValueError(f"unknown sandbox option {key}")
                setattr(self, key, value)

    # -- sessions ----------------------------------------------------------------------------------------
    def session(self, name: str) -> SandboxSession:
        with self.lock:
            found = self.state.sessions.get(name)
        if found is None:
            raise SandboxError(404, f"Session '{name}' not found")
        return found

    def sessions(self) -> list[SandboxSession]:
        with self.lock:
            return list(self.state.sessions.values())

    def create_session(
        self, name: str, *, config: dict[str, Any] | None = None, start: bool = True
    ) -> SandboxSession:
        if not SESSION_NAME_RE.match(name):
            raise SandboxError(400, "The session name may have letters, digits, '_' and '-' only")
        with self.lock:
            if name in self.state.sessions:
                raise SandboxError(422, f"Session '{name}' already exists. Use PUT to update it.")
            found = self.state.sessions[name] = SandboxSession(name=name, config=config or {})
        if start:
            self.start_session(name)
        return found

    def add_session(
        self,
        name: str,
        *,
        webhook_url: str = "",
        hmac_key: str = "",
        events: list[str] | None = None,
        phone: str | None = DEFAULT_PHONE,
        push_name: str = DEFAULT_PUSH_NAME,
    ) -> SandboxSession:
        """Tests: a session that is already WORKING (linked to `phone`; None: waiting for its QR code),
        with one webhook, created without any session.status webhook."""
        config: dict[str, Any] = {"webhooks": []}
        if webhook_url:
            hook: dict[str, Any] = {"url": webhook_url, "events": events or ["*"]}
            if hmac_key:
                hook["hmac"] = {"key": hmac_key}
            config["webhooks"].append(hook)
        with self.lock:
            if name in self.state.sessions:
                raise SandboxError(422, f"Session '{name}' already exists")
            found = SandboxSession(name=name, config=config)
            if phone is None:
                found.status, found.qr_since = "SCAN_QR_CODE", time.time()
            else:
                found.status = "WORKING"
                found.me = {"id": chat_id_of(phone), "pushName": push_name}
            found.history.append({"status": found.status, "timestamp": int(time.time() * 1000)})
            self.state.sessions[name] = found
        return found

    def update_session(self, name: str, config: dict[str, Any]) -> SandboxSession:
        found = self.session(name)
        with self.lock:
            found.config = config
            self._save()
        return found

    def _load(self) -> None:
        """Sessions saved by an earlier run: linked ones come back WORKING, the others STOPPED."""
        if not self.state_file or not os.path.exists(self.state_file):
            return
        try:
            with open(self.state_file, encoding="utf-8") as handle:
                saved = json.load(handle)
        except (OSError, ValueError):
            return
        for item in saved if isinstance(saved, list) else []:
            if not isinstance(item, dict) or not SESSION_NAME_RE.match(str(item.get("name") or "")):
                continue
            me, config = item.get("me"), item.get("config")
            found = SandboxSession(
                name=str(item["name"]),
                config=config if isinstance(config, dict) else {},
                me=me if isinstance(me, dict) else None,
            )
            found.status = "WORKING" if me else "STOPPED"
            self.state.sessions[found.name] = found

    def _save(self) -> None:
        """Under the lock."""
        if not self.state_file:
            return
        saved = [{"name": f.name, "config": f.config, "me": f.me} for f in self.state.sessions.values()]
        temporary = f"{self.state_file}.tmp"
        with contextlib.suppress(OSError):
            with open(temporary, "w", encoding="utf-8") as handle:
                json.dump(saved, handle)
            os.replace(temporary, self.state_file)

    def start_session(self, name: str) -> dict[str, Any]:
        """STARTING, then (after start_delay; at once without one) SCAN_QR_CODE, or WORKING when the
        device is still linked. Returns the session's JSON after the call: STARTING with a start_delay
        (as WAHA answers), already SCAN_QR_CODE or WORKING without one (tests)."""
        found = self.session(name)
        with self.lock:
            if found.status in ("STARTING", "SCAN_QR_CODE", "WORKING"):
                raise SandboxError(422, f"Session '{name}' is already started ({found.status})")
            self._set_status(found, "STARTING")
        if self.start_delay > 0:
            self._schedule(self.start_delay, lambda: self._started(name))
        else:
            self._started(name)
        with self.lock:
            return found.json()

    def _started(self, name: str) -> None:
        with self.lock:
            found = self.state.sessions.get(name)
            if found is None or found.status != "STARTING":
                return
            # WAHA keeps the linked device's auth: a session linked before comes back WORKING.
            self._set_status(found, "WORKING" if found.me else "SCAN_QR_CODE")

    def stop_session(self, name: str) -> SandboxSession:
        found = self.session(name)
        with self.lock:
            if found.status != "STOPPED":
                self._set_status(found, "STOPPED")
        return found

    def restart_session(self, name: str) -> dict[str, Any]:
        self.stop_session(name)
        return self.start_session(name)

    def logout_session(self, name: str) -> SandboxSession:
        """Unlink the device: the auth is forgotten and the session stops (start it to get a new QR)."""
        found = self.session(name)
        with self.lock:
            found.me = None
            if found.status != "STOPPED":
                self._set_status(found, "STOPPED")
            self._save()
        return found

    def delete_session(self, name: str) -> None:
        self.stop_session(name)
        with self.lock:
            self.state.sessions.pop(name, None)
            self._save()

    def qr_value(self, name: str) -> str:
        """The QR code's text while SCAN_QR_CODE: it changes every `qr_rotate_seconds` (and on rotate_qr)."""
        found = self.session(name)
        with self.lock:
            if found.status != "SCAN_QR_CODE":
                raise SandboxError(422, f"Session '{name}' is {found.status}, not SCAN_QR_CODE")
            elapsed = max(0.0, time.time() - found.qr_since)
            index = found.qr_epoch + int(elapsed // max(self.qr_rotate_seconds, 0.001))
            secret = found.qr_secret
        ref = base64.b64encode(hmac.new(secret.encode(), f"ref:{index}".encode(), "sha256").digest())
        keys = base64.b64encode(hashlib.sha256(f"{secret}:keys".encode()).digest()).decode()
        return f"2@{ref.decode()},{keys},{name}-sandbox,{index}"

    def rotate_qr(self, name: str) -> str:
        """WhatsApp shows the next QR code now (tests: no 20 s wait); session.status SCAN_QR_CODE again."""
        found = self.session(name)
        with self.lock:
            if found.status != "SCAN_QR_CODE":
                raise SandboxError(409, f"Session '{name}' is {found.status}, not SCAN_QR_CODE")
            found.qr_epoch += 1
            self._emit(found, "session.status", self._status_payload(found))
        return self.qr_value(name)

    def link(
        self, name: str, phone: str = DEFAULT_PHONE, push_name: str = DEFAULT_PUSH_NAME
    ) -> SandboxSession:
        """The phone scans the QR code: the session is WORKING as `phone`."""
        found = self.session(name)
        me = {"id": chat_id_of(phone), "pushName": push_name}
        with self.lock:
            if found.status != "SCAN_QR_CODE":
                raise SandboxError(409, f"Session '{name}' is {found.status}: there is no QR code to scan")
            found.me = me
            self._set_status(found, "WORKING")
        return found

    def disconnect(self, name: str, *, logout: bool = False) -> SandboxSession:
        """The connection to the phone drops: FAILED (`logout`: the device was also unlinked on the phone,
        so a restart asks for a new QR code)."""
        found = self.session(name)
        with self.lock:
            if logout:
                found.me = None
            self._set_status(found, "FAILED")
        return found

    def _set_status(self, found: SandboxSession, status: str) -> None:
        """Under the lock."""
        found.status = status
        self._save()
        found.history = [*found.history, {"status": status, "timestamp": int(time.time() * 1000)}][-3:]
        if status == "SCAN_QR_CODE":
            found.qr_since, found.qr_epoch = time.time(), 0
            found.qr_secret = secrets.token_hex(16)
            if self.announce_qr_rotation:
                self._schedule_rotation(found.name, found.qr_secret)
        self._emit(found, "session.status", self._status_payload(found))

    def _schedule_rotation(self, name: str, secret: str) -> None:
        def announce() -> None:
            with self.lock:
                found = self.state.sessions.get(name)
                if found is None or found.status != "SCAN_QR_CODE" or found.qr_secret != secret:
                    return
                self._emit(found, "session.status", self._status_payload(found))
            self._schedule_rotation(name, secret)

        self._schedule(self.qr_rotate_seconds, announce)

    @staticmethod
    def _status_payload(found: SandboxSession) -> dict[str, Any]:
        return {"status": found.status, "statuses": list(found.history)}

    # -- failures, records -------------------------------------------------------------------------------
    def fail(self, kind: str = "http", count: int = 1, status: int = 500, session: str | None = None) -> None:
        """The next `count` sends fail: kind "http" with this HTTP status (500: retryable, 400: permanent),
        "reset": the connection is closed without an answer."""
        if kind not in ("http", "reset"):
            raise ValueError("kind is 'http' or 'reset'")
        with self.lock:
            self.state.failures.append(FailureRule(kind=kind, count=count, status=status, session=session))

    def _take_failure(self, session: str) -> FailureRule | None:
        with self.lock:
            for rule in self.state.failures:
                if rule.session not in (None, session):
                    continue
                rule.count -= 1
                if rule.count <= 0:
                    self.state.failures.remove(rule)
                return rule
        return None

    def sent(self, session: str | None = None, endpoint: str | None = None) -> list[dict[str, Any]]:
        """What was accepted: {"endpoint", "session", "chat_id", "body", "id" (sends only), "at"}."""
        with self.lock:
            return [
                s
                for s in self.state.sent
                if session in (None, s["session"]) and endpoint in (None, s["endpoint"])
            ]

    def take_webhooks(self) -> list[Webhook]:
        """The webhooks waiting in the outbox (deliver=False), oldest first; the outbox is emptied."""
        with self.lock:
            taken, self.state.outbox = self.state.outbox, []
        return taken

    def wait_for_webhooks(self, count: int, timeout: float = 5.0) -> list[Webhook]:
        """Tests: wait until `count` webhooks wait (acks leave after ack_delay), then take them all."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.state.outbox) >= count:
                    break
            time.sleep(0.01)
        return self.take_webhooks()

    def add_file(self, session: str, content: bytes, mimetype: str, filename: str = "") -> str:
        """Store a file for /api/files/<session>/<name>; returns its URL."""
        suffix = (filename.rsplit(".", 1)[-1] if "." in filename else mimetype.split("/")[-1])[:10]
        name = f"{new_message_hex()}.{re.sub(r'[^A-Za-z0-9]', '', suffix) or 'bin'}"
        with self.lock:
            self.state.files[(session, name)] = (content, mimetype, filename)
        return f"{self.base}/api/files/{quote(session)}/{name}"

    # -- events from the phone's side ----------------------------------------------------------------------
    def _working(self, name: str) -> SandboxSession:
        found = self.session(name)
        if found.status != "WORKING" or not found.me:
            raise SandboxError(409, f"Session '{name}' is {found.status}, not WORKING")
        return found

    def _media(self, session: str, media: Any) -> dict[str, Any] | None:
        """media: {"content": bytes (or "content_b64"), "mimetype", "filename"?} → WAHA's payload.media."""
        if not media:
            return None
        content = media.get("content")
        if content is None:
            content = base64.b64decode(str(media.get("content_b64") or ""))
        mimetype = str(media.get("mimetype") or "application/octet-stream")
        filename = str(media.get("filename") or "")
        url = self.add_file(session, bytes(content), mimetype, filename)
        return {"url": url, "mimetype": mimetype, "filename": filename or None, "error": None}

    def emit_inbound(
        self,
        session: str,
        from_phone: str = "",
        text: str | None = None,
        media: dict[str, Any] | None = None,
        lid: str | None = None,
        group: bool = False,
        *,
        name: str = "",
        reply_to: str | None = None,
        location: dict[str, Any] | None = None,
    ) -> str:
        """A customer writes to the session's number: `message` and `message.any`. `lid`: the chat is the
        customer's hidden id (`<lid>@lid`, the phone in _data only); `group`: written in a group chat by
        `from_phone`. Returns the message id."""
        found = self._working(session)
        sender = chat_id_of(from_phone) if from_phone else ""
        if lid:
            chat = f"{''.join(ch for ch in lid if ch.isdigit()) or lid}@lid"
        elif group:
            chat = "120363025555550001@g.us"
        elif sender:
            chat = sender
        else:
            raise SandboxError(400, "give from_phone or lid")
        ident = f"false_{chat}_{new_message_hex()}"
        if group and sender:
            ident = f"{ident}_{sender}"
        payload: dict[str, Any] = {
            "id": ident,
            "timestamp": int(time.time()),
            "from": chat,
            "fromMe": False,
            "source": "app",
            "to": found.me["id"] if found.me else None,
            "participant": sender if group else None,
            "body": text or "",
            "hasMedia": bool(media),
            "media": self._media(session, media),
            "ack": 2,
            "ackName": "DEVICE",
            "replyTo": {"id": reply_to} if reply_to else None,
            "location": location,
            "_data": {
                "Info": {
                    "Chat": chat,
                    "Sender": sender or chat,
                    "SenderAlt": sender.replace("@c.us", "@s.whatsapp.net") if lid and sender else "",
                    "IsFromMe": False,
                    "IsGroup": group,
                    "PushName": name,
                },
                "notifyName": name,
            },
        }
        with self.lock:
            self.state.messages[ident] = payload
            self._emit(found, "message", payload)
            self._emit(found, "message.any", payload)
        return ident

    def emit_from_phone(self, session: str, to_phone: str, text: str) -> str:
        """The business typed a message on the linked phone: `message.any` fromMe (source "app"), then its
        acks. Returns the message id."""
        found = self._working(session)
        chat = chat_id_of(to_phone)
        return self._outgoing(found, chat, {"body": text}, source="app")

    def emit_reaction(self, session: str, from_phone: str, message_id: str, emoji: str) -> str:
        """The customer reacts to a message ("" removes the reaction)."""
        found = self._working(session)
        chat = chat_id_of(from_phone)
        ident = f"false_{chat}_{new_message_hex()}"
        payload = {
            "id": ident,
            "from": chat,
            "fromMe": False,
            "participant": chat,
            "to": found.me["id"] if found.me else None,
            "timestamp": time.time(),
            "reaction": {"text": emoji, "messageId": message_id},
        }
        with self.lock:
            self._emit(found, "message.reaction", payload)
        return ident

    def emit_revoked(self, session: str, message_id: str) -> None:
        """The sender deleted a message "for everyone"; `message_id` is the full id of the message."""
        found = self._working(session)
        fromme, chat, bare = _split_id(message_id)
        after = {
            "id": f"{fromme}_{chat}_{bare}",
            "timestamp": int(time.time()),
            "from": chat if fromme == "false" else (found.me or {}).get("id"),
            "fromMe": fromme == "true",
            "body": "",
            "type": "revoked",
        }
        with self.lock:
            self._emit(found, "message.revoked", {"after": after, "revokedMessageId": bare, "before": None})

    def emit_edited(self, session: str, message_id: str, text: str) -> str:
        """The sender edited a text message; `message_id` is the full id of the message."""
        found = self._working(session)
        fromme, chat, bare = _split_id(message_id)
        ident = f"{fromme}_{chat}_{new_message_hex()}"
        payload = {
            "id": ident,
            "timestamp": int(time.time()),
            "from": chat if fromme == "false" else (found.me or {}).get("id"),
            "to": (found.me or {}).get("id") if fromme == "false" else chat,
            "fromMe": fromme == "true",
            "body": text,
            "editedMessageId": bare,
        }
        with self.lock:
            self._emit(found, "message.edited", payload)
        return ident

    def ack(self, session: str, message_id: str, ack: int) -> None:
        """A message.ack for one of our messages, now (e.g. PLAYED, or ERROR)."""
        found = self.session(session)
        with self.lock:
            self._emit(found, "message.ack", self._ack_payload(found, message_id, ack))

    # -- sending (the API) -------------------------------------------------------------------------------
    def accept_send(self, endpoint: str, data: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """A validated send: recorded, answered with the message, echoed and acked by webhooks."""
        found = self.session(str(data.get("session") or ""))
        if found.status != "WORKING":
            return 422, _error(
                422, "Session status is not as expected. Try again later or restart the session", found
            )
        chat = str(data.get("chatId") or "")
        if not CHAT_ID_RE.match(chat):
            return 400, _error(400, "chatId must be '<number>@c.us', '<id>@lid' or '<id>@g.us'")
        extra: dict[str, Any] = {}
        if endpoint == "sendText":
            text = data.get("text")
            if not isinstance(text, str) or not text.strip():
                return 400, _error(400, "text should not be empty")
            extra["body"] = text
        elif endpoint == "sendLocation":
            try:
                latitude, longitude = float(data["latitude"]), float(data["longitude"])
            except (KeyError, TypeError, ValueError):
                return 400, _error(400, "latitude and longitude must be numbers")
            extra["body"] = ""
            extra["location"] = {
                "latitude": latitude,
                "longitude": longitude,
                "description": data.get("title"),
            }
        else:
            file = data.get("file")
            if not isinstance(file, dict) or not (file.get("url") or file.get("data")):
                return 400, _error(400, "file must have a url or base64 data")
            mimetype = str(file.get("mimetype") or "application/octet-stream")
            content = b""
            if file.get("data"):
                try:
                    content = base64.b64decode(str(file["data"]), validate=True)
                except ValueError:
                    return 400, _error(400, "file.data is not base64")
            filename = str(file.get("filename") or "")
            url = self.add_file(found.name, content, mimetype, filename)
            extra["body"] = str(data.get("caption") or "")
            extra["media"] = {"url": url, "mimetype": mimetype, "filename": filename or None, "error": None}
        reply_to = data.get("reply_to")
        if reply_to:
            extra["replyTo"] = {"id": str(reply_to)}
        with self.lock:
            ident = self._outgoing(found, chat, extra, source="api")
            self.state.sent.append(
                {
                    "endpoint": endpoint,
                    "session": found.name,
                    "chat_id": chat,
                    "body": data,
                    "id": ident,
                    "at": time.time(),
                }
            )
            message = dict(self.state.messages[ident])
        return 201, message

    def _outgoing(self, found: SandboxSession, chat: str, extra: dict[str, Any], *, source: str) -> str:
        ident = f"true_{chat}_{new_message_hex()}"
        me = (found.me or {}).get("id")
        payload: dict[str, Any] = {
            "id": ident,
            "timestamp": int(time.time()),
            "from": me,
            "fromMe": True,
            "source": source,
            "to": chat,
            "participant": None,
            "body": "",
            "hasMedia": "media" in extra,
            "media": None,
            "ack": 1,
            "ackName": "SERVER",
            "replyTo": None,
            "_data": {
                "Info": {"Chat": chat, "Sender": me, "IsFromMe": True, "IsGroup": chat.endswith("@g.us")}
            },
            **extra,
        }
        with self.lock:
            self.state.messages[ident] = payload
            self._emit(found, "message.any", payload)
            if self.auto_acks:
                for step, ack in enumerate((1, 2, 3), start=1):
                    self._emit(
                        found,
                        "message.ack",
                        self._ack_payload(found, ident, ack),
                        delay=self.ack_delay * step,
                    )
        return ident

    @staticmethod
    def _ack_payload(found: SandboxSession, message_id: str, ack: int) -> dict[str, Any]:
        _, chat, _ = _split_id(message_id)
        return {
            "id": message_id,
            "from": (found.me or {}).get("id"),
            "to": chat,
            "participant": None,
            "fromMe": True,
            "ack": ack,
            "ackName": ACK_NAMES.get(ack, "PENDING"),
        }

    def record(self, endpoint: str, session: str, data: dict[str, Any]) -> None:
        """A reaction, seen or typing call (no message id)."""
        with self.lock:
            self.state.sent.append(
                {
                    "endpoint": endpoint,
                    "session": session,
                    "chat_id": str(data.get("chatId") or ""),
                    "body": data,
                    "id": None,
                    "at": time.time(),
                }
            )

    # -- webhooks ----------------------------------------------------------------------------------------
    def _emit(
        self, found: SandboxSession, event: str, payload: dict[str, Any], *, delay: float = 0.0
    ) -> None:
        """Queue the event for each of the session's webhooks subscribed to it (under the lock)."""
        envelope = {
            "id": f"evt_{uuid.uuid4().hex[:26]}",
            "timestamp": int(time.time() * 1000),
            "event": event,
            "session": found.name,
            "metadata": found.config.get("metadata") or {},
            "me": found.me if found.status == "WORKING" else None,
            "payload": payload,
            "engine": ENVIRONMENT["engine"],
            "environment": ENVIRONMENT,
        }
        body = json.dumps(envelope).encode()
        for hook in found.webhooks():
            events = hook.get("events") or []
            if event not in events and "*" not in events:
                continue
            headers = {
                "Content-Type": "application/json",
                "X-Webhook-Request-Id": uuid.uuid4().hex,
                "X-Webhook-Timestamp": str(int(time.time() * 1000)),
            }
            for custom in hook.get("customHeaders") or []:
                if isinstance(custom, dict) and custom.get("name"):
                    headers[str(custom["name"])] = str(custom.get("value") or "")
            key = (hook.get("hmac") or {}).get("key") if isinstance(hook.get("hmac"), dict) else None
            if key:
                headers["X-Webhook-Hmac"] = sign(body, str(key))
                headers["X-Webhook-Hmac-Algorithm"] = "sha512"
            webhook = Webhook(str(hook["url"]), headers, body)
            if not self.deliver and delay <= 0:
                # Tests: in the outbox at once, so take_webhooks() right after a call sees its events.
                self.state.outbox.append(webhook)
                continue
            job = _Job(self._generation, webhook=webhook, retries=hook.get("retries"))
            self._jobs.put((time.time() + delay, next(self._seq), job))

    def _schedule(self, delay: float, action: Callable[[], None]) -> None:
        self._jobs.put((time.time() + delay, next(self._seq), _Job(self._generation, action=action)))

    def _run_jobs(self) -> None:
        with httpx.Client(timeout=5) as client:
            while True:
                due, _, job = self._jobs.get()
                if job is None:
                    return
                wait = due - time.time()
                if wait > 0:
                    # Something due earlier may arrive meanwhile (an ack after a long QR rotation timer).
                    try:
                        sooner = self._jobs.get(timeout=wait)
                    except queue.Empty:
                        pass
                    else:
                        self._jobs.put((due, next(self._seq), job))
                        self._jobs.put(sooner)
                        continue
                if job.generation != self._generation:
                    continue  # from before a reset
                if job.action is not None:
                    with contextlib.suppress(SandboxError):
                        job.action()
                    continue
                assert job.webhook is not None
                self._deliver(client, job)

    def _deliver(self, client: httpx.Client, job: _Job) -> None:
        webhook = job.webhook
        assert webhook is not None
        if not self.deliver:
            with self.lock:
                if job.generation == self._generation:
                    self.state.outbox.append(webhook)
            return
        try:
            response = client.post(webhook.url, content=webhook.body, headers=webhook.headers)
            ok = 200 <= response.status_code < 300
        except httpx.HTTPError:
            ok = False
        if ok:
            return
        delay = retry_delay(job.retries, job.attempt + 1)
        if delay is None:
            with self.lock:
                self.state.undelivered.append(webhook)
            return
        job.attempt += 1
        self._jobs.put((time.time() + delay, next(self._seq), job))


def _split_id(message_id: str) -> tuple[str, str, str]:
    """ "true_15551234567@c.us_3EB0..." → ("true", "15551234567@c.us", "3EB0...")."""
    parts = message_id.split("_")
    if len(parts) >= 3 and parts[0] in ("true", "false"):
        return parts[0], parts[1], parts[2]
    return "false", "", message_id


def _error(status: int, message: str, found: SandboxSession | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"statusCode": status, "message": message}
    if found is not None:
        body["session"], body["status"] = found.name, found.status
    return body


class _Server(ThreadingHTTPServer):
    request_queue_size = 256


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "WahaSandbox/1"

    @property
    def sandbox(self) -> Sandbox:
        return self.server.sandbox  # type: ignore[attr-defined]

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _reply(self, status: int, body: Any, content_type: str = "application/json") -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _redirect(self, location: str) -> None:
        self.send_response(303)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _json(self, raw: bytes) -> dict[str, Any] | None:
        """A JSON object body (a form body, from the sandbox's page, as a flat dict); None: answered 400."""
        if (self.headers.get("Content-Type") or "").startswith("application/x-www-form-urlencoded"):
            return {k: v[-1] for k, v in parse_qs(raw.decode("utf-8", "replace")).items()}
        try:
            data = json.loads(raw or b"{}")
        except ValueError:
            data = None
        if not isinstance(data, dict):
            self._reply(400, _error(400, "The body must be a JSON object"))
            return None
        return data

    def _segments(self) -> tuple[list[str], dict[str, list[str]]]:
        parts = urlsplit(self.path)
        return [unquote(p) for p in parts.path.split("/") if p], parse_qs(parts.query)

    def _authorised(self) -> bool:
        given = self.headers.get("X-Api-Key") or ""
        if not hmac.compare_digest(given.encode(), self.sandbox.api_key.encode()):
            self._reply(401, _error(401, "Unauthorized"))
            return False
        return True

    def _reset_connection(self) -> None:
        """Close with a TCP reset, no answer: the client sees the connection reset after sending."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()

    def handle_one_request(self) -> None:
        try:
            super().handle_one_request()
        except SandboxError as exc:
            self._reply(exc.status, _error(exc.status, exc.message))

    # -- routing -----------------------------------------------------------------------------------------
    def do_GET(self) -> None:
        segments, query = self._segments()
        if not segments:
            return self._reply(200, render_page(self.sandbox).encode(), "text/html; charset=utf-8")
        if segments[0] == "_sandbox":
            return self.control("GET", segments[1:], b"")
        if segments[0] != "api" or not self._authorised():
            return None if segments[0] == "api" else self._reply(404, _error(404, "Not found"))
        rest = segments[1:]
        if rest == ["sessions"]:
            return self._reply(200, [s.json() for s in self.sandbox.sessions()])
        if len(rest) == 2 and rest[0] == "sessions":
            return self._reply(200, self.sandbox.session(rest[1]).json())
        if len(rest) == 3 and rest[1:] == ["auth", "qr"]:
            value = self.sandbox.qr_value(rest[0])
            if (query.get("format") or ["image"])[0] == "raw":
                return self._reply(200, {"value": value})
            buffer = _png(value)
            return self._reply(200, buffer, "image/png")
        if len(rest) == 3 and rest[0] == "files":
            with self.sandbox.lock:
                found = self.sandbox.state.files.get((rest[1], rest[2]))
            if found is None or not FILE_NAME_RE.match(rest[2]):
                return self._reply(404, _error(404, "File not found"))
            return self._reply(200, found[0], found[1])
        return self._reply(404, _error(404, "Not found"))

    def do_POST(self) -> None:
        segments, _ = self._segments()
        raw = self._body()
        if segments[:1] == ["_sandbox"]:
            return self.control("POST", segments[1:], raw)
        if segments[:1] != ["api"]:
            return self._reply(404, _error(404, "Not found"))
        if not self._authorised():
            return None
        data = self._json(raw)
        if data is None:
            return None
        rest = segments[1:]
        sandbox = self.sandbox
        if rest == ["sessions"]:
            name = str(data.get("name") or "default")
            config = data.get("config") if isinstance(data.get("config"), dict) else {}
            created = sandbox.create_session(name, config=config, start=False)
            if data.get("start", True) is False:
                return self._reply(201, created.json())
            return self._reply(201, sandbox.start_session(name))
        if len(rest) == 3 and rest[0] == "sessions":
            if rest[2] in ("start", "restart"):
                start = sandbox.start_session if rest[2] == "start" else sandbox.restart_session
                return self._reply(201, start(rest[1]))
            action = {"stop": sandbox.stop_session, "logout": sandbox.logout_session}.get(rest[2])
            if action is None:
                return self._reply(404, _error(404, "Not found"))
            return self._reply(201, action(rest[1]).json())
        if len(rest) == 1 and rest[0] in (*SEND_ENDPOINTS, "sendSeen", "startTyping", "stopTyping"):
            return self.send_call(rest[0], data)
        return self._reply(404, _error(404, "Not found"))

    def do_PUT(self) -> None:
        segments, _ = self._segments()
        raw = self._body()
        if segments[:1] != ["api"]:
            return self._reply(404, _error(404, "Not found"))
        if not self._authorised():
            return None
        data = self._json(raw)
        if data is None:
            return None
        rest = segments[1:]
        if len(rest) == 2 and rest[0] == "sessions":
            config = data.get("config")
            if not isinstance(config, dict):
                return self._reply(400, _error(400, "config must be an object"))
            return self._reply(200, self.sandbox.update_session(rest[1], config).json())
        if rest == ["reaction"]:
            return self.send_call("reaction", data)
        return self._reply(404, _error(404, "Not found"))

    def do_DELETE(self) -> None:
        segments, _ = self._segments()
        self._body()
        if segments[:1] != ["api"]:
            return self._reply(404, _error(404, "Not found"))
        if not self._authorised():
            return None
        rest = segments[1:]
        if len(rest) == 2 and rest[0] == "sessions":
            self.sandbox.delete_session(rest[1])
            return self._reply(200, {})
        return self._reply(404, _error(404, "Not found"))

    def send_call(self, endpoint: str, data: dict[str, Any]) -> None:
        sandbox = self.sandbox
        found = sandbox.session(str(data.get("session") or ""))
        if endpoint in SEND_ENDPOINTS or endpoint == "reaction":
            rule = sandbox._take_failure(found.name)
            if rule is not None and rule.kind == "reset":
                return self._reset_connection()
            if rule is not None:
                return self._reply(rule.status, _error(rule.status, "Sandbox failure on demand"))
        if endpoint in SEND_ENDPOINTS:
            return self._reply(*sandbox.accept_send(endpoint, data))
        if found.status != "WORKING":
            return self._reply(422, _error(422, "Session status is not as expected", found))
        if endpoint == "reaction":
            if not isinstance(data.get("messageId"), str) or not isinstance(data.get("reaction"), str):
                return self._reply(400, _error(400, "messageId and reaction are required"))
        elif not CHAT_ID_RE.match(str(data.get("chatId") or "")):
            return self._reply(400, _error(400, "chatId must be '<number>@c.us', '<id>@lid' or '<id>@g.us'"))
        sandbox.record(endpoint, found.name, data)
        return self._reply(200, {})

    # -- control -------------------------------------------------------------------------------------------
    def control(self, method: str, segments: list[str], raw: bytes) -> None:
        """GET sent | POST reset | POST config | POST fail | POST inbound | POST from-phone |
        POST sessions/<name>/link | POST sessions/<name>/disconnect | POST sessions/<name>/rotate-qr."""
        sandbox = self.sandbox
        form = (self.headers.get("Content-Type") or "").startswith("application/x-www-form-urlencoded")
        data: dict[str, Any] = {}
        if method == "POST":
            parsed = self._json(raw)
            if parsed is None:
                return None
            data = parsed
        action = segments[0] if segments else ""
        result: dict[str, Any] = {"ok": True}
        try:
            if method == "GET" and action == "sent":
                return self._reply(
                    200, {"sent": sandbox.sent(), "sessions": [s.json() for s in sandbox.sessions()]}
                )
            if method != "POST":
                return self._reply(404, {"error": "unknown sandbox action"})
            if action == "reset":
                sandbox.reset()
            elif action == "config":
                sandbox.configure(**data)
            elif action == "fail":
                sandbox.fail(
                    kind=str(data.get("kind", "http")),
                    count=int(data.get("count", 1)),
                    status=int(data.get("status", 500)),
                    session=data.get("session") or None,
                )
            elif action == "inbound":
                # {"session", "from" (phone), "text"?, "name"?, "lid"?, "group"?, "media"?: {"content_b64",
                # "mimetype", "filename"?}}
                result["id"] = sandbox.emit_inbound(
                    str(data.get("session") or ""),
                    str(data.get("from") or ""),
                    text=str(data.get("text") or ""),
                    media=data.get("media") if isinstance(data.get("media"), dict) else None,
                    lid=str(data.get("lid") or "") or None,
                    group=str(data.get("group") or "").lower() in ("1", "true", "on"),
                    name=str(data.get("name") or ""),
                )
            elif action == "from-phone":
                result["id"] = sandbox.emit_from_phone(
                    str(data.get("session") or ""), str(data.get("to") or ""), str(data.get("text") or "")
                )
            elif action == "sessions" and len(segments) == 3 and segments[2] == "link":
                sandbox.link(
                    segments[1],
                    phone=str(data.get("phone") or DEFAULT_PHONE),
                    push_name=str(data.get("push_name") or DEFAULT_PUSH_NAME),
                )
            elif action == "sessions" and len(segments) == 3 and segments[2] == "disconnect":
                sandbox.disconnect(segments[1], logout=bool(data.get("logout")))
            elif action == "sessions" and len(segments) == 3 and segments[2] == "rotate-qr":
                result["value"] = sandbox.rotate_qr(segments[1])
            else:
                return self._reply(404, {"error": "unknown sandbox action"})
        except (KeyError, TypeError, ValueError) as exc:
            return self._reply(400, {"error": str(exc)})
        except SandboxError as exc:
            if form:
                return self._redirect("/?error=" + quote(exc.message))
            return self._reply(exc.status, {"error": exc.message})
        if form:
            return self._redirect("/")
        return self._reply(200, result)


def _png(value: str) -> bytes:
    buffer = io.BytesIO()
    segno.make(value, error="l").save(buffer, kind="png", scale=6)
    return buffer.getvalue()


def render_page(sandbox: Sandbox) -> str:
    """GET /: the sessions, their QR codes and the buttons a demo needs."""
    rows = []
    for found in sandbox.sessions():
        name = html.escape(found.name)
        action = f"/_sandbox/sessions/{quote(found.name)}"
        parts = [f"<h2>{name} <small>{html.escape(found.status)}</small></h2>"]
        if found.status == "SCAN_QR_CODE":
            svg = segno.make(sandbox.qr_value(found.name), error="l").svg_inline(scale=4)
            parts.append(
                f"<div>{svg}</div>"
                f'<form method="post" action="{action}/link">'
                f'<label>Phone <input name="phone" value="{DEFAULT_PHONE}"></label> '
                f'<label>Name <input name="push_name" value="{DEFAULT_PUSH_NAME}"></label> '
                f'<button type="submit">Scan (link)</button></form>'
            )
        if found.status == "WORKING":
            me = html.escape(str((found.me or {}).get("id", "")))
            parts.append(
                f"<p>Linked to {me}</p>"
                f'<form method="post" action="/_sandbox/inbound">'
                f'<input type="hidden" name="session" value="{name}">'
                f'<label>From <input name="from" value="+15557654321"></label> '
                f'<label>Name <input name="name" value="Sandbox Customer"></label> '
                f'<label>Text <input name="text" value="Hello! Do you ship abroad?" size="40"></label> '
                f'<button type="submit">Send to this number</button></form>'
                f'<form method="post" action="{action}/disconnect">'
                f'<button type="submit">Disconnect (FAILED)</button></form>'
            )
        rows.append(f'<section class="session">{"".join(parts)}</section>')
    body = "".join(rows) or "<p>No sessions yet: link a number with a QR code in the CRM first.</p>"
    return (
        "<!doctype html><html><head><meta charset=utf-8><title>WAHA sandbox</title>"
        "<style>body{font-family:sans-serif;margin:2em}section{border:1px solid #ccc;padding:1em;"
        "margin:1em 0}small{color:#666}</style>"
        # Reload every 5 s (status changes, QR rotation) unless a field is being edited.
        "<script>setInterval(function(){if(!document.activeElement||"
        "document.activeElement.tagName!=='INPUT'){location.replace('/')}},5000)</script>"
        "</head><body><h1>WAHA sandbox</h1>"
        "<p>A fake WhatsApp HTTP API: pressing <b>Scan (link)</b> is the phone scanning the QR code.</p>"
        f"{body}</body></html>"
    )


def api_key_from(environ: Mapping[str, str]) -> str:
    """The key the CRM sends (WAHA_API_KEY or its _FILE, as config.settings reads it), else the sandbox's
    own (the CRM's development default). From the environment, not a flag, so it stays out of `ps`."""
    value = FileAwareMapping(env=environ, cache=False).get("WAHA_API_KEY") or ""
    return value.strip() or DEFAULT_API_KEY


def build_parser(environ: Mapping[str, str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Fake WAHA (WhatsApp HTTP API) server for development.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(environ.get("WAHA_SANDBOX_PORT") or 8003))
    parser.add_argument(
        "--api-key",
        default=api_key_from(environ),
        help="the X-Api-Key the API requires; default: WAHA_API_KEY, else the sandbox's own",
    )
    parser.add_argument("--ack-delay", type=float, default=0.7, help="seconds between acks of a send")
    parser.add_argument("--no-acks", action="store_true", help="post no message.ack webhooks")
    parser.add_argument("--start-delay", type=float, default=1.0, help="seconds from STARTING to the QR code")
    parser.add_argument("--qr-rotate-seconds", type=float, default=QR_ROTATE_SECONDS)
    parser.add_argument(
        "--state-file", default="", help="keep the sessions (config, linked account) in this JSON file"
    )
    return parser


def main() -> None:
    args = build_parser(os.environ).parse_args()
    sandbox = Sandbox(
        host=args.host,
        port=args.port,
        api_key=args.api_key,
        deliver=True,
        auto_acks=not args.no_acks,
        ack_delay=args.ack_delay,
        start_delay=args.start_delay,
        qr_rotate_seconds=args.qr_rotate_seconds,
        announce_qr_rotation=True,
        state_file=args.state_file or None,
    ).start()
    print(f"WAHA sandbox on {sandbox.base} (open it in a browser to scan QR codes)", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        sandbox.stop()


if __name__ == "__main__":
    main()
