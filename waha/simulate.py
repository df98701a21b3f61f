"""`manage.py simulate_inbound` for WAHA numbers (registered in WahaConfig.ready()).

On the WAHA sandbox (the development server) the sandbox itself emits the message: the app receives a
real signed webhook from the session's server, exactly as from WAHA. On any other server (a real WAHA,
which cannot be told to receive a message, or a sandbox that forgot the session after a restart) the
command signs a `message` event with the number's webhook key and posts it to the app's webhook itself."""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

import httpx
from django.conf import settings

from core import crypto
from tenants.models import WahaRoute
from waha.models import WahaSession
from waha.sandbox import ENVIRONMENT, chat_id_of, new_message_hex, sign
from whatsapp.simulators import SimulationError


def simulate_inbound(channel: Any, *, sender: str, text: str, name: str, webhook_base: str) -> str:
    """Called in the tenant's schema."""
    waha = WahaSession.objects.filter(channel=channel).first()
    if waha is None:
        raise SimulationError(f"The number {channel.display_phone or channel.pk} has no WAHA session.")
    server_url = (waha.server_url or settings.WAHA_URL or "").rstrip("/")
    if server_url:
        try:
            response = httpx.post(
                f"{server_url}/_sandbox/inbound",
                json={"session": waha.session, "from": f"+{sender}", "text": text, "name": name},
                timeout=10,
            )
        except httpx.HTTPError:
            response = None
        if response is not None and response.status_code == 200:
            message_id = response.json().get("id", "")
            return f"The WAHA sandbox at {server_url} delivered it to session {waha.session} ({message_id})."
        if response is not None and response.status_code == 409:
            raise SimulationError(
                f"The WAHA sandbox's session {waha.session} is not linked: scan its QR code first "
                f"({server_url}/)."
            )
    return _post_signed(waha, sender=sender, text=text, name=name, webhook_base=webhook_base)


def _post_signed(waha: WahaSession, *, sender: str, text: str, name: str, webhook_base: str) -> str:
    route = WahaRoute.objects.filter(webhook_id=waha.webhook_id).first()
    key = crypto.decrypt(route.hmac_key_encrypted) if route else ""
    if not key:
        raise SimulationError("The number has no webhook key: connect it again.")
    chat = chat_id_of(f"+{sender}")
    now = time.time()
    me = {"id": waha.me_id, "pushName": waha.me_name} if waha.me_id else None
    envelope = {
        "id": f"evt_{secrets.token_hex(13)}",
        "timestamp": int(now * 1000),
        "event": "message",
        "session": waha.session,
        "me": me,
        "payload": {
            "id": f"false_{chat}_{new_message_hex()}",
            "timestamp": int(now),
            "from": chat,
            "fromMe": False,
            "source": "app",
            "to": waha.me_id or None,
            "body": text,
            "hasMedia": False,
            "media": None,
            "ack": 2,
            "ackName": "DEVICE",
            "replyTo": None,
            "_data": {"notifyName": name},
        },
        "engine": ENVIRONMENT["engine"],
        "environment": ENVIRONMENT,
    }
    body = json.dumps(envelope).encode()
    url = f"{webhook_base.rstrip('/')}/webhooks/waha/{waha.webhook_id}/"
    try:
        response = httpx.post(
            url,
            content=body,
            headers={
                "Content-Type": "application/json",
                "Host": settings.BASE_DOMAIN,
                "X-Webhook-Request-Id": secrets.token_hex(16),
                "X-Webhook-Timestamp": str(int(now * 1000)),
                "X-Webhook-Hmac": sign(body, key),
                "X-Webhook-Hmac-Algorithm": "sha512",
            },
            timeout=10,
        )
    except httpx.HTTPError as exc:
        raise SimulationError(f"Could not reach {url}: {exc}") from exc
    if response.status_code != 200:
        raise SimulationError(f"The webhook answered {response.status_code}: {response.text[:300]}")
    return f"Posted a signed WAHA message event to {url}: {response.text[:200]}"
