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


def contact(
    wa_id: str, name: str = "", user_id: str = "", *, username: str = "", parent_user_id: str = ""
) -> dict[str, Any]:
    """A `contacts` entry. Since 2026 it carries the business-scoped user id (`user_id`) and, for a user
    with a username who hides their number, no `wa_id` at all (pass wa_id="")."""
    entry: dict[str, Any] = {"profile": {"name": name}}
    if username:
        entry["profile"]["username"] = username
    if wa_id:
        entry["wa_id"] = wa_id
    if user_id:
        entry["user_id"] = user_id
    if parent_user_id:
        entry["parent_user_id"] = parent_user_id
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
        **({"from": wa_id} if wa_id else {}),
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


def user_text_event(
    *,
    phone_number_id: str,
    user_id: str,
    text: str,
    wa_id: str = "",
    username: str = "",
    name: str = "",
    parent_user_id: str = "",
    wamid: str | None = None,
    timestamp: int | None = None,
) -> dict[str, Any]:
    """A text from a user identified by their business-scoped user id (BSUID): `from_user_id` on the
    message, `user_id` and the username in `contacts`; with no wa_id, no phone number anywhere."""
    extra: dict[str, Any] = {"from_user_id": user_id}
    if parent_user_id:
        extra["from_parent_user_id"] = parent_user_id
    return event(
        phone_number_id=phone_number_id,
        contacts=[contact(wa_id, name, user_id, username=username, parent_user_id=parent_user_id)],
        messages=[
            message(
                wa_id=wa_id, type="text", content={"body": text}, wamid=wamid, timestamp=timestamp, **extra
            )
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
    recipient_user_id: str = "",
) -> dict[str, Any]:
    """A status; `recipient` (the phone) may be "" for a message sent to a business-scoped user id."""
    entry: dict[str, Any] = {
        "id": wamid,
        "status": status,
        "timestamp": str(timestamp or int(time.time())),
    }
    if recipient:
        entry["recipient_id"] = recipient
    if recipient_user_id:
        entry["recipient_user_id"] = recipient_user_id
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


def number_event(
    *,
    phone_number_id: str,
    field: str,
    value: dict[str, Any],
    display_phone: str = "15550001111",
    waba_id: str = "102290129340398",
) -> dict[str, Any]:
    """A number-level webhook of another field than `messages` (coexistence: smb_message_echoes,
    history, smb_app_state_sync)."""
    return {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": waba_id,
                "changes": [
                    {
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {
                                "display_phone_number": display_phone,
                                "phone_number_id": phone_number_id,
                            },
                            **value,
                        },
                        "field": field,
                    }
                ],
            }
        ],
    }


def echo_event(
    *,
    phone_number_id: str,
    to: str,
    text: str,
    business: str = "15550001111",
    wamid: str | None = None,
    timestamp: int | None = None,
    waba_id: str = "102290129340398",
) -> dict[str, Any]:
    """smb_message_echoes: the business sent `text` to `to` from the WhatsApp Business app."""
    echo = message(wa_id=business, type="text", content={"body": text}, wamid=wamid, timestamp=timestamp)
    echo["to"] = to
    return number_event(
        phone_number_id=phone_number_id,
        field="smb_message_echoes",
        value={"message_echoes": [echo]},
        display_phone=business,
        waba_id=waba_id,
    )


def history_message(
    *, customer: str, text: str, from_me: bool, business: str = "15550001111", **options: Any
) -> dict[str, Any]:
    """One message of a history thread: sent by the business (`from_me`) or by the customer."""
    status = options.pop("status", "read" if from_me else "pending")
    body = message(wa_id=business if from_me else customer, type="text", content={"body": text}, **options)
    body["history_context"] = {"status": status, **({"from_me": True} if from_me else {})}
    return body


def history_event(
    *,
    phone_number_id: str,
    threads: dict[str, list[dict[str, Any]]],
    phase: int = 0,
    chunk_order: int = 1,
    progress: int = 100,
    business: str = "15550001111",
    waba_id: str = "102290129340398",
) -> dict[str, Any]:
    """history: one chunk of the number's past chats (customer wa_id → its messages)."""
    return number_event(
        phone_number_id=phone_number_id,
        field="history",
        value={
            "history": [
                {
                    "metadata": {"phase": phase, "chunk_order": chunk_order, "progress": progress},
                    "threads": [{"id": wa_id, "messages": items} for wa_id, items in threads.items()],
                }
            ]
        },
        display_phone=business,
        waba_id=waba_id,
    )


def app_state_event(
    *, phone_number_id: str, contacts: dict[str, str], action: str = "add", waba_id: str = "102290129340398"
) -> dict[str, Any]:
    """smb_app_state_sync: contacts (wa_id → full name) added or edited in the WhatsApp Business app."""
    now = str(int(time.time()))
    return number_event(
        phone_number_id=phone_number_id,
        field="smb_app_state_sync",
        value={
            "state_sync": [
                {
                    "type": "contact",
                    "contact": {"full_name": name, "first_name": name.split(" ")[0], "phone_number": wa_id},
                    "action": action,
                    "metadata": {"timestamp": now},
                }
                for wa_id, name in contacts.items()
            ]
        },
        waba_id=waba_id,
    )


def encode(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


def sign(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
