"""Builders for Cloud API webhook bodies (shapes from Meta's webhook reference), and signing.

Used by `manage.py simulate_inbound`, the benchmarks and the tests' fixtures.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from typing import Any


def new_wamid() -> str:
    return "wamid.HBgL" + base64.b64encode(uuid.uuid4().bytes + uuid.uuid4().bytes[:4]).decode()


def event(
    *,
    phone_number_id: str,
    messages: list[dict[str, Any]] | None = None,
    statuses: list[dict[str, Any]] | None = None,
    contacts: list[dict[str, Any]] | None = None,
    display_phone: str = "15550001111",
    waba_id: str = "102290129340398",
) -> dict[str, Any]:
    value: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": display_phone, "phone_number_id": phone_number_id},
    }
    if contacts is not None:
        value["contacts"] = contacts
    if messages is not None:
        value["messages"] = messages
    if statuses is not None:
        value["statuses"] = statuses
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": waba_id, "changes": [{"value": value, "field": "messages"}]}],
    }


def contact(wa_id: str, name: str = "", user_id: str = "") -> dict[str, Any]:
    entry: dict[str, Any] = {"profile": {"name": name}, "wa_id": wa_id}
    if user_id:
        entry["user_id"] = user_id
    return entry


def message(
    *,
    wa_id: str,
    type: str,
    content: Any,
    wamid: str | None = None,
    timestamp: int | None = None,
    context: dict[str, Any] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "from": wa_id,
        "id": wamid or new_wamid(),
        "timestamp": str(timestamp or int(time.time())),
        "type": type,
    }
    if content is not None:
        body[type] = content
    if context:
        body["context"] = context
    body.update(extra)
    return body


def text_event(
    *,
    phone_number_id: str,
    wa_id: str,
    text: str,
    name: str = "",
    wamid: str | None = None,
    timestamp: int | None = None,
) -> dict[str, Any]:
    return event(
        phone_number_id=phone_number_id,
        contacts=[contact(wa_id, name)],
        messages=[
            message(wa_id=wa_id, type="text", content={"body": text}, wamid=wamid, timestamp=timestamp)
        ],
    )


def status(
    *,
    wamid: str,
    status: str,
    recipient: str,
    timestamp: int | None = None,
    errors: list[dict[str, Any]] | None = None,
    opaque: str = "",
) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "id": wamid,
        "status": status,
        "timestamp": str(timestamp or int(time.time())),
        "recipient_id": recipient,
    }
    if status in ("sent", "delivered", "read"):
        entry["conversation"] = {"id": uuid.uuid4().hex, "origin": {"type": "service"}}
        entry["pricing"] = {
            "billable": True,
            "pricing_model": "PMP",
            "category": "service",
            "type": "regular",
        }
    if errors:
        entry["errors"] = errors
    if opaque:
        entry["biz_opaque_callback_data"] = opaque
    return entry


def encode(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


def sign(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
