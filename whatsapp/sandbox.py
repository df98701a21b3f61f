"""A fake Graph API for development, tests and benchmarks: no Meta account needed.

    python -m whatsapp.sandbox --port 8001 --webhook-url http://127.0.0.1:8000/webhooks/whatsapp/

Point the app at it with WHATSAPP_GRAPH_URL=http://127.0.0.1:8001/v21.0 (the development and test
default). It accepts sends and returns wamids, posts signed status webhooks back (sent → delivered →
read) to --webhook-url, can be told to fail with any error code or to throttle, serves media, lists
templates page by page, knows which numbers belong to which WhatsApp Business Account and which tokens
may read them (`--number`, `add_number`: the ownership check of whatsapp.services.verify_number), and
keeps what it received for inspection. Embedded Signup's server side too: codes made with
`add_signup_code` (POST /_sandbox/signup-codes) exchange once at GET /oauth/access_token (with the app
secret) for a token that may read the number; POST /{waba_id}/subscribed_apps and
POST /{phone_number_id}/register are recorded, and `fail_management` makes the next one fail; POST
/_sandbox/test_webhook posts a signed empty webhook for a number (the numbers page's "Send test event").
Control endpoints live under
/_sandbox/ (see `Handler.control`); tests use the Sandbox object in a thread and call its methods.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import dataclasses
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
    quality_rating: str = "GREEN"
    messaging_limit: str = "TIER_2K"

    def readable_by(self, token: str) -> bool:
        return self.tokens is None or token in self.tokens

    def graph(self) -> dict[str, Any]:
        return {
            "id": self.phone_number_id,
            "display_phone_number": self.display_phone or f"+1 555-{self.phone_number_id[-7:]}",
            "verified_name": self.verified_name,
            "quality_rating": self.quality_rating,
            "throughput": {"level": "STANDARD"},
            "name_status": "APPROVED",
            "status": "CONNECTED",
            "platform_type": "CLOUD_API",
            "messaging_limit_tier": self.messaging_limit,
            "whatsapp_business_manager_messaging_limit": self.messaging_limit,
        }


@dataclass(frozen=True)
class SignupCode:
    """What Embedded Signup's code stands for: the number and account the customer shared, and the
    business token the exchange returns (single use, as Meta's)."""

    phone_number_id: str
    waba_id: str
    token: str


@dataclass
class SandboxState:
    app_secret: str = "sandbox-app-secret"
    webhook_url: str | None = None
    auto_statuses: bool = True
    status_delay: float = 0.05
    # Statuses due together go out in one webhook body (up to this many, as Meta batches `value.statuses`
    # under load); 1 posts each status alone.
    status_batch: int = 1
    sent: list[dict[str, Any]] = field(default_factory=list)
    read_receipts: list[dict[str, Any]] = field(default_factory=list)
    failures: list[FailureRule] = field(default_factory=list)
    throttles: dict[str, int] = field(default_factory=dict)
    media: dict[str, tuple[bytes, str, str]] = field(default_factory=dict)
    templates: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    numbers: dict[str, SandboxNumber] = field(default_factory=dict)
    # Embedded Signup: codes not yet exchanged, accounts the app is subscribed to, registered numbers
    # (with their PIN), and management calls told to fail (edge name → error code).
    signup_codes: dict[str, SignupCode] = field(default_factory=dict)
    subscribed_apps: set[str] = field(default_factory=set)
    registered: dict[str, str] = field(default_factory=dict)
    management_failures: dict[str, int] = field(default_factory=dict)
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
        status_batch: int = 1,
        status_posters: int = 1,
        redeliver: bool = False,
    ) -> None:
        self.lock = threading.Lock()
        self.state = SandboxState(
            app_secret=app_secret,
            webhook_url=webhook_url,
            auto_statuses=auto_statuses,
            status_delay=status_delay,
            status_batch=max(1, status_batch),
        )
        # Threads posting webhooks at once (Meta posts concurrently); 1 keeps them in strict due order.
        self.status_posters = max(1, status_posters)
        # A webhook the app answered 5xx (overloaded: its acknowledgement deadline) is posted again.
        self.redeliver = redeliver
        self._ids = itertools.count(1)
        # Ordered by due time, so statuses of many sends go out in time order (sent → delivered → read).
        # An item is a whole webhook body, or one status (its number, its entry) that may share a body.
        self._statuses: queue.PriorityQueue[tuple[float, int, bytes | _Status | None]] = queue.PriorityQueue()
        self._seq = itertools.count()
        self.server = _Server((host, port), Handler)
        self.server.daemon_threads = True
        self.server.sandbox = self  # type: ignore[attr-defined]
        self._threads: list[threading.Thread] = []
        # Seconds after which a template created through the API is approved (None: only when told to).
        self.template_review_delay: float | None = None

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
        targets = [self.server.serve_forever] + [self._post_statuses] * self.status_posters
        for target in targets:
            thread = threading.Thread(target=target, daemon=True, name=f"sandbox-{target.__name__}")
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        for _ in range(self.status_posters):
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
                self.state.status_batch,
            )
            self.state = SandboxState(
                app_secret=keep[0],
                webhook_url=keep[1],
                auto_statuses=keep[2],
                status_delay=keep[3],
                status_batch=keep[4],
            )

    def configure(self, **options: Any) -> None:
        with self.lock:
            for key, value in options.items():
                if key not in ("webhook_url", "auto_statuses", "status_delay", "app_secret", "status_batch"):
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

    # -- templates made through the API, and Meta's review of them (account-level webhooks) -----------
    def create_template(self, waba_id: str, body: Any) -> tuple[int, dict[str, Any]]:
        """POST /{waba_id}/message_templates: stored PENDING and listed from now on. A failure rule
        (`fail`) whose phone_number_id is the account's id, or names none, refuses it."""
        if not isinstance(body, dict):
            return 400, error_body(100, "Invalid parameter")
        name, language = str(body.get("name") or ""), str(body.get("language") or "")
        category = str(body.get("category") or "").upper()
        if not re.fullmatch(r"[a-z0-9_]{1,512}", name) or not language or not category:
            return 400, error_body(100, "Invalid parameter", "name, language and category are required")
        if not isinstance(body.get("components"), list):
            return 400, error_body(100, "Invalid parameter", "components must be a list")
        with self.lock:
            rule = self._take_failure(waba_id, None)
            if rule is not None:
                return rule.http_status, error_body(
                    rule.code, rule.title or ERROR_TITLES.get(rule.code, "Error")
                )
            items = self.state.templates.setdefault(waba_id, [])
            if any(t.get("name") == name and t.get("language") == language for t in items):
                body_ = error_body(100, "Content in this language already exists")
                body_["error"]["error_subcode"] = 2388024
                return 400, body_
            template_id = str(next(self._ids) + 5 * 10**14)
            items.append(
                {
                    "id": template_id,
                    "name": name,
                    "language": language,
                    "status": "PENDING",
                    "category": category,
                    "parameter_format": str(body.get("parameter_format") or "POSITIONAL"),
                    "components": body["components"],
                }
            )
        if self.template_review_delay is not None:
            # `make run`: Meta's review, approved after a moment (tests approve or reject explicitly).
            timer = threading.Timer(self.template_review_delay, self._auto_approve, (waba_id, template_id))
            timer.daemon = True
            timer.start()
        return 200, {"id": template_id, "status": "PENDING", "category": category}

    def _auto_approve(self, waba_id: str, template_id: str) -> None:
        with contextlib.suppress(KeyError):  # deleted (or the sandbox reset) meanwhile
            self.review_template(waba_id, template_id, "APPROVED")

    def delete_template(self, waba_id: str, name: str, hsm_id: str = "") -> tuple[int, dict[str, Any]]:
        """DELETE /{waba_id}/message_templates?name=…[&hsm_id=…] (every language without hsm_id)."""
        with self.lock:
            rule = self._take_failure(waba_id, None)
            if rule is not None:
                return rule.http_status, error_body(
                    rule.code, rule.title or ERROR_TITLES.get(rule.code, "Error")
                )
            items = self.state.templates.get(waba_id, [])
            keep = [t for t in items if not (t.get("name") == name and hsm_id in ("", t.get("id")))]
            if len(keep) == len(items):
                return 400, error_body(100, "Message template does not exist")
            self.state.templates[waba_id] = keep
        return 200, {"success": True}

    def _find_template(self, waba_id: str, template: str) -> dict[str, Any]:
        """By id or by name (its first language)."""
        items = self.state.templates.get(waba_id, [])
        found = next((t for t in items if template in (t.get("id"), t.get("name"))), None)
        if found is None:
            raise KeyError(f"no template {template!r} in account {waba_id}")
        return found

    def emit_account_change(self, waba_id: str, change_field: str, value: dict[str, Any]) -> bytes:
        """A signed account-level webhook (entry.id = the account) queued like status webhooks: posted to
        the webhook URL, or kept in the outbox without one."""
        body = json.dumps(
            {
                "object": "whatsapp_business_account",
                "entry": [
                    {
                        "id": waba_id,
                        "time": int(time.time()),
                        "changes": [{"value": value, "field": change_field}],
                    }
                ],
            }
        ).encode()
        self._statuses.put((time.time(), next(self._seq), body))
        return body

    def review_template(
        self, waba_id: str, template: str, event: str = "APPROVED", reason: str = ""
    ) -> bytes:
        """Meta's review: the template's status changes and message_template_status_update is sent."""
        with self.lock:
            found = self._find_template(waba_id, template)
            found["status"] = event.upper()
            value = {
                "event": event.upper(),
                "message_template_id": int(found["id"]),
                "message_template_name": found["name"],
                "message_template_language": found["language"].replace("_", "-"),
                "reason": reason or ("NONE" if event.upper() == "APPROVED" else "INVALID_FORMAT"),
                "message_template_category": found.get("category", ""),
            }
        return self.emit_account_change(waba_id, "message_template_status_update", value)

    def rate_template(self, waba_id: str, template: str, quality: str) -> bytes:
        """message_template_quality_update with the new quality score (GREEN, YELLOW, RED, UNKNOWN)."""
        with self.lock:
            found = self._find_template(waba_id, template)
            previous = found.get("quality_score", {}).get("score", "UNKNOWN")
            found["quality_score"] = {"score": quality.upper()}
            value = {
                "previous_quality_score": previous,
                "new_quality_score": quality.upper(),
                "message_template_id": int(found["id"]),
                "message_template_name": found["name"],
                "message_template_language": found["language"].replace("_", "-"),
            }
        return self.emit_account_change(waba_id, "message_template_quality_update", value)

    def recategorise_template(
        self, waba_id: str, template: str, category: str, *, impending: bool = False, at: int | None = None
    ) -> bytes:
        """template_category_update: `impending` announces the change (24 h ahead, as Meta does);
        otherwise the category changes now."""
        with self.lock:
            found = self._find_template(waba_id, template)
            current = str(found.get("category", ""))
            value: dict[str, Any] = {
                "message_template_id": int(found["id"]),
                "message_template_name": found["name"],
                "message_template_language": found["language"].replace("_", "-"),
            }
            if impending:
                value["correct_category"] = category.upper()
                value["new_category"] = current
                value["category_update_timestamp"] = at or int(time.time()) + 86400
            else:
                found["category"] = category.upper()
                value["previous_category"] = current
                value["new_category"] = category.upper()
        return self.emit_account_change(waba_id, "template_category_update", value)

    def emit_number_change(self, phone_number_id: str, change_field: str, value: dict[str, Any]) -> bytes:
        """A signed number-level webhook of another field than `messages` (coexistence), queued like the
        status webhooks: posted to the webhook URL, or kept in the outbox without one."""
        from whatsapp import payloads

        number = self.state.numbers.get(phone_number_id)
        body = payloads.encode(
            payloads.number_event(
                phone_number_id=phone_number_id,
                field=change_field,
                value=value,
                waba_id=number.waba_id if number else "0",
            )
        )
        self._statuses.put((time.time(), next(self._seq), body))
        return body

    def emit_echo(self, phone_number_id: str, *, to: str, text: str, wamid: str = "") -> bytes:
        """The business sent `text` to `to` from the WhatsApp Business app (smb_message_echoes)."""
        from whatsapp import payloads

        body = payloads.echo_event(phone_number_id=phone_number_id, to=to, text=text, wamid=wamid or None)
        value = body["entry"][0]["changes"][0]["value"]
        return self.emit_number_change(phone_number_id, "smb_message_echoes", value)

    def emit_inbound(
        self,
        phone_number_id: str,
        *,
        text: str,
        wa_id: str = "",
        user_id: str = "",
        username: str = "",
        name: str = "",
        wamid: str = "",
    ) -> bytes:
        """A customer's text, signed and queued like the status webhooks. With `user_id` and no `wa_id` it
        comes as from a user with a username since 2026: a business-scoped user id and no phone number."""
        from whatsapp import payloads

        number = self.state.numbers.get(phone_number_id)
        if user_id:
            event = payloads.user_text_event(
                phone_number_id=phone_number_id,
                user_id=user_id,
                wa_id=wa_id,
                username=username,
                name=name,
                text=text,
                wamid=wamid or None,
            )
        else:
            event = payloads.text_event(
                phone_number_id=phone_number_id, wa_id=wa_id, text=text, name=name, wamid=wamid or None
            )
        event["entry"][0]["id"] = number.waba_id if number else "0"
        body = payloads.encode(event)
        self._statuses.put((time.time(), next(self._seq), body))
        return body

    def emit_history(
        self,
        phone_number_id: str,
        threads: dict[str, list[dict[str, Any]]],
        *,
        chunk_order: int = 1,
        progress: int = 100,
        phase: int = 0,
    ) -> bytes:
        """One history chunk: customer wa_id → messages, each {"text", "from_me", "timestamp"?, "id"?}."""
        from whatsapp import payloads

        built = {
            wa_id: [
                payloads.history_message(
                    customer=wa_id,
                    text=str(item.get("text", "")),
                    from_me=bool(item.get("from_me")),
                    wamid=item.get("id") or None,
                    timestamp=item.get("timestamp") or None,
                )
                for item in items
            ]
            for wa_id, items in threads.items()
        }
        body = payloads.history_event(
            phone_number_id=phone_number_id,
            threads=built,
            phase=phase,
            chunk_order=chunk_order,
            progress=progress,
        )
        value = body["entry"][0]["changes"][0]["value"]
        return self.emit_number_change(phone_number_id, "history", value)

    def _pricing(self, phone_number_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """As Meta prices it: a template is charged by its category; anything else can only go inside the
        customer-service window, where it is free."""
        if body.get("type") != "template":
            return {
                "billable": False,
                "pricing_model": "PMP",
                "category": "service",
                "type": "free_customer_service",
            }
        name = str((body.get("template") or {}).get("name") or "")
        number = self.state.numbers.get(phone_number_id)
        listed = self.state.templates.get(number.waba_id, []) if number else []
        found = next((t for t in listed if t.get("name") == name), None)
        category = str((found or {}).get("category") or "UTILITY").lower()
        return {"billable": True, "pricing_model": "PMP", "category": category, "type": "regular"}

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

    def add_signup_code(
        self,
        code: str,
        *,
        phone_number_id: str,
        waba_id: str,
        token: str,
        display_phone: str = "",
        verified_name: str = "Sandbox Business",
    ) -> None:
        """Embedded Signup as if the customer had finished it: the code exchanges (once) for `token`,
        which may read the number and its account."""
        self.add_number(
            phone_number_id,
            waba_id=waba_id,
            tokens=[token],
            display_phone=display_phone,
            verified_name=verified_name,
        )
        with self.lock:
            self.state.signup_codes[code] = SignupCode(phone_number_id, waba_id, token)

    def set_number(self, phone_number_id: str, **fields: Any) -> None:
        """Change what Meta says about a known number (quality_rating, messaging_limit, ...)."""
        with self.lock:
            number = self.state.numbers[phone_number_id]
            self.state.numbers[phone_number_id] = dataclasses.replace(number, **fields)

    def fail_management(self, edge: str, code: int) -> None:
        """The next call to this edge (access_token, subscribed_apps, register) fails with `code`."""
        with self.lock:
            self.state.management_failures[edge] = code

    def _management_failure(self, edge: str) -> dict[str, Any] | None:
        with self.lock:
            code = self.state.management_failures.pop(edge, None)
        return None if code is None else error_body(code, ERROR_TITLES.get(code, "Error"))

    def test_webhook(self, phone_number_id: str, waba_id: str) -> bool:
        """A signed webhook for the number with nothing in it (as the App Dashboard's "Test" button sends),
        posted to the webhook URL now; without one it waits in the outbox. True when it was posted."""
        body = json.dumps(
            {
                "object": "whatsapp_business_account",
                "entry": [
                    {
                        "id": waba_id,
                        "changes": [
                            {
                                "field": "messages",
                                "value": {
                                    "messaging_product": "whatsapp",
                                    "metadata": {
                                        "display_phone_number": "15550000000",
                                        "phone_number_id": phone_number_id,
                                    },
                                },
                            }
                        ],
                    }
                ],
            }
        ).encode()
        url = self.state.webhook_url
        if url:
            try:
                response = httpx.post(
                    url,
                    content=body,
                    headers={"Content-Type": "application/json", "X-Hub-Signature-256": self.sign(body)},
                    timeout=5,
                )
                return response.status_code == 200
            except httpx.HTTPError:
                pass
        with self.lock:
            self.state.outbox.append(body)
        return False

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

    def accept_send(
        self, phone_number_id: str, body: dict[str, Any], endpoint: str = "messages"
    ) -> tuple[int, dict[str, Any]]:
        # A user known only by a business-scoped user id is addressed by `recipient`; `to` wins if both.
        to = body.get("to") or body.get("recipient")
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
                {
                    "phone_number_id": phone_number_id,
                    "body": body,
                    "wamid": wamid,
                    "at": now,
                    "endpoint": endpoint,
                }
            )
            statuses = ["sent", "delivered", "read"] if self.state.auto_statuses else []
            if rule and rule.asynchronous:
                statuses = ["failed"]
            pricing = self._pricing(phone_number_id, body)
        for index, status in enumerate(statuses):
            entry = status_entry(
                wamid=wamid,
                status=status,
                to=str(to or ""),
                opaque=body.get("biz_opaque_callback_data"),
                error=(rule.code, rule.title or ERROR_TITLES.get(rule.code, "Error")) if rule else None,
                pricing=pricing,
            )
            self._statuses.put(
                (
                    now + self.state.status_delay * (index + 1),
                    next(self._seq),
                    _Status(phone_number_id, entry),
                )
            )
        addressed = {"user_id": to} if _is_user_id(to) else {"wa_id": str(to or "").lstrip("+")}
        return 200, {
            "messaging_product": "whatsapp",
            "contacts": [{"input": to, **addressed}],
            "messages": [{"id": wamid, "message_status": "accepted"}],
        }

    def _next_body(self) -> bytes | None:
        """The next webhook body, when it is due: a whole body, or the statuses due by then (up to
        status_batch of them, in due order) in one body, each number's in its own change."""
        due, _, item = self._statuses.get()
        if item is None:
            return None
        delay = due - time.time()
        if delay > 0:
            time.sleep(delay)
        if not isinstance(item, _Status):
            return item
        batch = [item]
        limit = self.state.status_batch
        while len(batch) < limit:
            try:
                head = self._statuses.get_nowait()
            except queue.Empty:
                break
            if head[0] > time.time() + BATCH_WINDOW or not isinstance(head[2], _Status):
                self._statuses.put(head)  # not due yet, or a body of its own: left for its turn
                break
            batch.append(head[2])
        return status_body(batch)

    def _post_statuses(self) -> None:
        with httpx.Client(timeout=5) as client:
            while True:
                body = self._next_body()
                if body is None:
                    return
                url = self.state.webhook_url
                if not url:
                    with self.lock:
                        self.state.outbox.append(body)
                    continue
                try:
                    answer = client.post(
                        url,
                        content=body,
                        headers={"Content-Type": "application/json", "X-Hub-Signature-256": self.sign(body)},
                    )
                except httpx.HTTPError:
                    with self.lock:
                        self.state.outbox.append(body)
                    continue
                if answer.status_code >= 500 and self.redeliver:
                    # Meta delivers a refused webhook again later (with backoff); here after a second.
                    self._statuses.put((time.time() + 1.0, next(self._seq), body))


# Statuses due within this much of the batch's first share its body (Meta's batches are not exact either).
BATCH_WINDOW = 0.05


class _Server(ThreadingHTTPServer):
    # Campaign senders open dozens of connections at once: the default backlog of 5 reset some of them.
    request_queue_size = 256


def _is_user_id(to: Any) -> bool:
    """A business-scoped user id ("US.1349…"), not a phone number."""
    return isinstance(to, str) and "." in to and not to.lstrip("+").isdigit()


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


@dataclass(frozen=True)
class _Status:
    phone_number_id: str
    entry: dict[str, Any]


def status_entry(
    *,
    wamid: str,
    status: str,
    to: str,
    opaque: str | None = None,
    error: tuple[int, str] | None = None,
    timestamp: int | None = None,
    pricing: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One element of a webhook's `value.statuses`."""
    entry: dict[str, Any] = {
        "id": wamid,
        "status": status,
        "timestamp": str(timestamp or int(time.time())),
    }
    if _is_user_id(to):
        entry["recipient_user_id"] = to  # sent by BSUID: no phone number in the status
    else:
        entry["recipient_id"] = to.lstrip("+")
    if status != "failed":
        entry["conversation"] = {"id": uuid.uuid4().hex, "origin": {"type": "service"}}
        entry["pricing"] = pricing or {
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
    return entry


def status_body(statuses: list[_Status]) -> bytes:
    """One webhook body carrying these statuses: one change per number, its statuses in order."""
    by_number: dict[str, list[dict[str, Any]]] = {}
    for item in statuses:
        by_number.setdefault(item.phone_number_id, []).append(item.entry)
    changes = [
        {
            "value": {
                "messaging_product": "whatsapp",
                "metadata": {"display_phone_number": "15550000000", "phone_number_id": phone_number_id},
                "statuses": entries,
            },
            "field": "messages",
        }
        for phone_number_id, entries in by_number.items()
    ]
    body = {"object": "whatsapp_business_account", "entry": [{"id": "0", "changes": changes}]}
    return json.dumps(body).encode()


def status_payload(
    *,
    phone_number_id: str,
    wamid: str,
    status: str,
    to: str,
    opaque: str | None = None,
    error: tuple[int, str] | None = None,
    timestamp: int | None = None,
    pricing: dict[str, Any] | None = None,
) -> bytes:
    entry = status_entry(
        wamid=wamid, status=status, to=to, opaque=opaque, error=error, timestamp=timestamp, pricing=pricing
    )
    return status_body([_Status(phone_number_id, entry)])


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
        if segments == ["oauth", "access_token"]:
            return self.exchange_code(query)
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
        if len(segments) == 1 and self._account(segments[0]) is not None:
            return self._reply(200, {"id": segments[0], "name": "Sandbox Account", "currency": "USD"})
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
        if len(segments) == 2 and segments[1] in ("messages", "marketing_messages"):
            try:
                data = json.loads(body or b"{}")
            except ValueError:
                return self._reply(400, error_body(100, "Invalid JSON"))
            if data.get("status") == "read":
                with self.sandbox.lock:
                    self.sandbox.state.read_receipts.append({"phone_number_id": segments[0], **data})
                return self._reply(200, {"success": True})
            if segments[1] == "marketing_messages" and data.get("type") != "template":
                return self._reply(400, error_body(100, "Only template messages go to marketing_messages"))
            status, reply = self.sandbox.accept_send(segments[0], data, endpoint=segments[1])
            return self._reply(status, reply)
        if len(segments) == 2 and segments[1] == "message_templates":
            try:
                template = json.loads(body or b"{}")
            except ValueError:
                return self._reply(400, error_body(100, "Invalid JSON"))
            return self._reply(*self.sandbox.create_template(segments[0], template))
        if len(segments) == 2 and segments[1] == "media":
            return self.upload(body)
        if len(segments) == 2 and segments[1] in ("subscribed_apps", "register"):
            return self.manage(segments[0], segments[1], body)
        return self._reply(404, error_body(100, "Unsupported post request"))

    def do_DELETE(self) -> None:
        segments, query = self._path()
        self._body()
        if not self._authorised():
            return None
        if len(segments) == 2 and segments[1] == "message_templates":
            name = (query.get("name") or [""])[0]
            return self._reply(
                *self.sandbox.delete_template(segments[0], name, (query.get("hsm_id") or [""])[0])
            )
        return self._reply(404, error_body(100, "Unsupported delete request"))

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

    def _account(self, waba_id: str) -> list[SandboxNumber] | None:
        """The account's numbers when the token may read one of them, else None."""
        with self.sandbox.lock:
            numbers = [n for n in self.sandbox.state.numbers.values() if n.waba_id == waba_id]
        token = self._token()
        return numbers if any(n.readable_by(token) for n in numbers) else None

    def exchange_code(self, query: dict[str, list[str]]) -> None:
        """GET /oauth/access_token?client_id&client_secret&code: Embedded Signup's code → the token."""
        sandbox = self.sandbox
        if (failure := sandbox._management_failure("access_token")) is not None:
            return self._reply(400, failure)
        secret = (query.get("client_secret") or [""])[0]
        if not hmac.compare_digest(secret.encode(), sandbox.state.app_secret.encode()):
            return self._reply(400, error_body(1, "Error validating client secret."))
        with sandbox.lock:
            found = sandbox.state.signup_codes.pop((query.get("code") or [""])[0], None)
        if found is None or not (query.get("client_id") or [""])[0]:
            return self._reply(400, error_body(100, "This authorization code has expired or been used."))
        return self._reply(200, {"access_token": found.token, "token_type": "bearer"})

    def manage(self, object_id: str, edge: str, body: bytes) -> None:
        """POST /{waba_id}/subscribed_apps and POST /{phone_number_id}/register."""
        sandbox = self.sandbox
        if (failure := sandbox._management_failure(edge)) is not None:
            return self._reply(400, failure)
        if edge == "subscribed_apps":
            if self._account(object_id) is None:
                return self._reply(400, unreadable_object(object_id))
            with sandbox.lock:
                sandbox.state.subscribed_apps.add(object_id)
            return self._reply(200, {"success": True})
        number = sandbox.state.numbers.get(object_id)
        if number is None or not number.readable_by(self._token()):
            return self._reply(400, unreadable_object(object_id))
        try:
            data = json.loads(body or b"{}")
        except ValueError:
            data = {}
        pin = str(data.get("pin") or "")
        if data.get("messaging_product") != "whatsapp" or not re.fullmatch(r"[0-9]{6}", pin):
            return self._reply(400, error_body(100, "The parameter pin must be a 6-digit number."))
        with sandbox.lock:
            sandbox.state.registered[object_id] = pin
        return self._reply(200, {"success": True})

    def control(self, method: str, segments: list[str], body: bytes) -> None:
        """GET state | POST reset | POST config | POST fail | POST throttle | POST media | POST templates
        | POST numbers | POST signup-codes | POST test_webhook | POST echo | POST history | POST inbound."""
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
        elif method == "POST" and action in ("template-review", "template-quality", "template-category"):
            # {"waba_id", "template": id or name, + "event"/"reason" | "quality" | "category"/"impending"}
            try:
                if action == "template-review":
                    sandbox.review_template(
                        str(data["waba_id"]),
                        str(data["template"]),
                        str(data.get("event", "APPROVED")),
                        str(data.get("reason", "")),
                    )
                elif action == "template-quality":
                    sandbox.rate_template(str(data["waba_id"]), str(data["template"]), str(data["quality"]))
                else:
                    sandbox.recategorise_template(
                        str(data["waba_id"]),
                        str(data["template"]),
                        str(data["category"]),
                        impending=bool(data.get("impending")),
                    )
            except KeyError as exc:
                return self._reply(404, {"error": str(exc)})
        elif method == "POST" and action == "signup-codes":
            sandbox.add_signup_code(
                str(data["code"]),
                phone_number_id=str(data["phone_number_id"]),
                waba_id=str(data["waba_id"]),
                token=str(data["token"]),
                display_phone=str(data.get("display_phone", "")),
            )
        elif method == "POST" and action == "test_webhook":
            delivered = sandbox.test_webhook(str(data["phone_number_id"]), str(data["waba_id"]))
            return self._reply(200, {"ok": True, "delivered": delivered})
        elif method == "POST" and action == "echo":
            # {"phone_number_id", "to", "text", "id"?}: sent from the WhatsApp Business app
            sandbox.emit_echo(
                str(data["phone_number_id"]),
                to=str(data["to"]),
                text=str(data.get("text", "")),
                wamid=str(data.get("id", "")),
            )
        elif method == "POST" and action == "history":
            # {"phone_number_id", "threads": {wa_id: [{"text", "from_me", "timestamp"?}]}, "chunk_order"?,
            # "progress"?}
            sandbox.emit_history(
                str(data["phone_number_id"]),
                dict(data.get("threads") or {}),
                chunk_order=int(data.get("chunk_order", 1)),
                progress=int(data.get("progress", 100)),
            )
        elif method == "POST" and action == "inbound":
            # {"phone_number_id", "text", "from"? (wa_id), "user_id"?, "username"?, "name"?, "id"?}
            if not (data.get("from") or data.get("user_id")):
                return self._reply(400, {"error": "give `from` (a wa_id) or `user_id` (a BSUID)"})
            sandbox.emit_inbound(
                str(data["phone_number_id"]),
                text=str(data.get("text", "")),
                wa_id=str(data.get("from", "")),
                user_id=str(data.get("user_id", "")),
                username=str(data.get("username", "")),
                name=str(data.get("name", "")),
                wamid=str(data.get("id", "")),
            )
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
    parser.add_argument(
        "--status-batch",
        type=int,
        default=1,
        help="statuses due together share one webhook body, up to this many (Meta batches them under load)",
    )
    parser.add_argument(
        "--status-posters", type=int, default=1, help="threads posting status webhooks at once"
    )
    parser.add_argument(
        "--redeliver", action="store_true", help="post a webhook the app answered 5xx again a second later"
    )
    parser.add_argument(
        "--template-review-delay",
        type=float,
        default=3.0,
        help="seconds until a template created through the API is approved (negative: never by itself)",
    )
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
        status_batch=args.status_batch,
        status_posters=args.status_posters,
        redeliver=args.redeliver,
    ).start()
    if args.templates_for:
        sandbox.set_templates(args.templates_for, DEMO_TEMPLATES)
    if args.template_review_delay >= 0:
        sandbox.template_review_delay = args.template_review_delay
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
