"""WAHA test helpers (re-exported by waha/tests/conftest.py; other apps' tests may import them).

`make_waha_number` stores a linked WAHA number the way the connect service does (the Channel, its
WahaSession and the public WahaRoute with the webhook's HMAC key) without calling a WAHA server."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from django.test import Client
from django_tenants.utils import schema_context

from core import crypto
from waha.sandbox import DEFAULT_API_KEY, Sandbox, Webhook


@dataclass(frozen=True)
class WahaNumber:
    channel: Any
    session: Any
    webhook_id: str
    webhook_key: str


def make_waha_number(
    tenant: Any,
    *,
    session: str = "default",
    status: str = "WORKING",
    me_id: str = "15550001111@c.us",
    server_url: str = "http://127.0.0.1:9",
    api_key: str = "waha-test-key",
    display_phone: str = "+15550001111",
) -> WahaNumber:
    from conversations.models import Channel
    from tenants.models import WahaRoute
    from waha.models import WahaSession

    webhook_id = secrets.token_urlsafe(16)
    webhook_key = secrets.token_urlsafe(32)
    WahaRoute.objects.create(
        webhook_id=webhook_id, tenant=tenant, hmac_key_encrypted=crypto.encrypt(webhook_key)
    )
    with schema_context(tenant.schema_name):
        channel = Channel.objects.create(
            provider=Channel.Provider.WAHA,
            name=f"WAHA {session}",
            display_phone=display_phone,
            phone_number_id=f"waha:{webhook_id}",
            waba_id="",
            throughput_cap=2,
        )
        waha_session = WahaSession.objects.create(
            channel=channel,
            server_url=server_url,
            api_key_encrypted=crypto.encrypt(api_key),
            session=session,
            webhook_id=webhook_id,
            status=status,
            me_id=me_id if status == "WORKING" else "",
        )
    return WahaNumber(channel=channel, session=waha_session, webhook_id=webhook_id, webhook_key=webhook_key)


# -- the WAHA sandbox (waha/sandbox.py) in a thread ---------------------------------------------------------
# Sessions on the sandbox are named per tenant (one WAHA server holds every tenant's sessions).
WAHA_PHONE_A = "+15550001111"
WAHA_PHONE_B = "+15550002222"


@pytest.fixture(scope="session")
def _waha_sandbox_server() -> Iterator[Sandbox]:
    server = Sandbox(ack_delay=0.0).start()
    yield server
    server.stop()


@pytest.fixture
def waha_sandbox(_waha_sandbox_server: Sandbox, settings: Any) -> Sandbox:
    """The sandbox, emptied, in test mode: webhooks wait in its outbox (`take_webhooks`,
    `deliver_webhooks`) instead of being posted; acks follow each send at once; WAHA_URL/WAHA_API_KEY
    point at it."""
    sandbox = _waha_sandbox_server
    sandbox.reset()
    sandbox.configure(
        deliver=False,
        auto_acks=True,
        ack_delay=0.0,
        start_delay=0.0,
        qr_rotate_seconds=20.0,
        announce_qr_rotation=False,
        api_key=DEFAULT_API_KEY,
    )
    settings.WAHA_URL = sandbox.base
    settings.WAHA_API_KEY = DEFAULT_API_KEY
    return sandbox


def webhook_path(webhook_id: str) -> str:
    return f"/webhooks/waha/{webhook_id}/"


def link_on_sandbox(
    sandbox: Sandbox, number: WahaNumber, *, phone: str | None = WAHA_PHONE_A, push_name: str = "Alpha Shop"
) -> None:
    """The number's session on the sandbox, configured with the number's webhook and key as the connect
    service configures it, WORKING as `phone` (None: waiting for its QR code)."""
    from waha.client import DEFAULT_EVENTS

    sandbox.add_session(
        number.session.session,
        webhook_url=f"http://testserver{webhook_path(number.webhook_id)}",
        hmac_key=number.webhook_key,
        events=list(DEFAULT_EVENTS),
        phone=phone,
        push_name=push_name,
    )


def make_sandbox_number(
    sandbox: Sandbox, tenant: Any, *, session: str, phone: str = WAHA_PHONE_A, status: str = "WORKING"
) -> WahaNumber:
    """A WAHA number of `tenant` stored with the sandbox as its server, and its session on the sandbox."""
    digits = "".join(ch for ch in phone if ch.isdigit())
    number = make_waha_number(
        tenant,
        session=session,
        status=status,
        me_id=f"{digits}@c.us",
        server_url=sandbox.base,
        api_key=sandbox.api_key,
        display_phone=phone,
    )
    link_on_sandbox(sandbox, number, phone=phone if status == "WORKING" else None)
    return number


@pytest.fixture
def waha_number_a(tenant_a: Any, waha_sandbox: Sandbox) -> WahaNumber:
    """A WORKING WAHA number of alpha (+1 555 000 1111) whose session lives on the sandbox."""
    return make_sandbox_number(waha_sandbox, tenant_a, session="alpha-default", phone=WAHA_PHONE_A)


@pytest.fixture
def waha_number_b(tenant_b: Any, waha_sandbox: Sandbox) -> WahaNumber:
    return make_sandbox_number(waha_sandbox, tenant_b, session="beta-default", phone=WAHA_PHONE_B)


def post_waha_webhook(client: Client, webhook: Webhook) -> Any:
    """POST one of the sandbox's webhooks (its headers and raw body) to our app, as WAHA would."""
    headers = {k: v for k, v in webhook.headers.items() if k.lower() != "content-type"}
    return client.post(webhook.path, data=webhook.body, content_type="application/json", headers=headers)


def deliver_webhooks(client: Client, sandbox: Sandbox, *, wait_for: int = 0) -> list[Any]:
    """Post every webhook waiting in the sandbox's outbox (after waiting for at least `wait_for` of them);
    returns the responses."""
    webhooks = sandbox.wait_for_webhooks(wait_for) if wait_for else sandbox.take_webhooks()
    return [post_waha_webhook(client, webhook) for webhook in webhooks]


def sign_waha(body: bytes, key: str) -> dict[str, str]:
    """The signature headers WAHA sends with `body` signed by `key` (hex HMAC-SHA512)."""
    import hashlib
    import hmac

    return {
        "X-Webhook-Hmac": hmac.new(key.encode(), body, hashlib.sha512).hexdigest(),
        "X-Webhook-Hmac-Algorithm": "sha512",
        "X-Webhook-Request-Id": secrets.token_hex(8),
        "X-Webhook-Timestamp": "1764500000000",
    }


def post_signed_waha(
    client: Client,
    number: WahaNumber,
    body: dict[str, Any] | bytes,
    *,
    key: str | None = None,
    **headers: str,
) -> Any:
    """POST `body` (an event dict, or raw bytes) to the number's webhook URL signed with its key (or
    `key`), as WAHA would; `headers` override or add headers (e.g. a wrong algorithm)."""
    import json

    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    signed = {**sign_waha(raw, number.webhook_key if key is None else key), **headers}
    path = webhook_path(number.webhook_id)
    return client.post(path, data=raw, content_type="application/json", headers=signed)
