"""WAHA test helpers (re-exported by waha/tests/conftest.py; other apps' tests may import them).

`make_waha_number` stores a linked WAHA number the way the connect service does (the Channel, its
WahaSession and the public WahaRoute with the webhook's HMAC key) without calling a WAHA server."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from django_tenants.utils import schema_context

from core import crypto


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
