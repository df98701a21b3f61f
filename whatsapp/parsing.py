"""Cloud API webhook payloads → plain data. No database access here: pure functions, easy to test."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

MEDIA_TYPES = ("image", "video", "audio", "document", "sticker")
KNOWN_TYPES = frozenset(
    {*MEDIA_TYPES, "text", "location", "contacts", "interactive", "button", "reaction", "order", "system"}
)


class PayloadError(ValueError):
    """The body is JSON but not a WhatsApp Business Account webhook."""


@dataclass(frozen=True)
class Media:
    kind: str
    media_id: str
    mime_type: str = ""
    sha256: str = ""
    filename: str = ""


@dataclass(frozen=True)
class InboundMessage:
    wamid: str
    from_wa_id: str
    from_user_id: str
    timestamp: dt.datetime
    type: str  # a conversations.Message.Type value
    text: str
    payload: dict[str, Any]
    preview: str
    context_wamid: str = ""
    forwarded: bool = False
    media: Media | None = None
    reaction_target: str = ""
    reaction_emoji: str = ""
    error_code: int | None = None
    error_title: str = ""
    error_details: str = ""


@dataclass(frozen=True)
class StatusUpdate:
    wamid: str
    status: str
    timestamp: dt.datetime
    recipient_id: str = ""
    opaque: str = ""
    error_code: int | None = None
    error_title: str = ""
    error_details: str = ""
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Profile:
    wa_id: str
    name: str = ""
    user_id: str = ""


@dataclass(frozen=True)
class Change:
    phone_number_id: str
    field: str
    profiles: dict[str, Profile]
    messages: list[InboundMessage]
    statuses: list[StatusUpdate]
    errors: list[dict[str, Any]]


def load_body(data: Any) -> list[Change]:
    if not isinstance(data, dict) or data.get("object") != "whatsapp_business_account":
        raise PayloadError("Not a WhatsApp Business Account webhook.")
    entries = data.get("entry")
    if not isinstance(entries, list):
        raise PayloadError("The webhook has no entry list.")
    return [change for entry in entries for change in _changes(entry)]


def phone_number_ids(data: Any) -> list[str]:
    """The business numbers an event is about (stored with the raw event, used for routing)."""
    found: list[str] = []
    for entry in data.get("entry") or []:
        for change in (entry or {}).get("changes") or []:
            metadata = ((change or {}).get("value") or {}).get("metadata") or {}
            pnid = str(metadata.get("phone_number_id") or "")
            if pnid and pnid not in found:
                found.append(pnid)
    return found


def _changes(entry: Any) -> list[Change]:
    out = []
    for change in (entry or {}).get("changes") or []:
        value = (change or {}).get("value") or {}
        pnid = str((value.get("metadata") or {}).get("phone_number_id") or "")
        profiles = {}
        for contact in value.get("contacts") or []:
            wa_id = str(contact.get("wa_id") or "")
            profile = Profile(
                wa_id=wa_id,
                name=str((contact.get("profile") or {}).get("name") or ""),
                user_id=str(contact.get("user_id") or ""),
            )
            profiles[wa_id or profile.user_id] = profile
        messages = [parse_message(m) for m in value.get("messages") or []]
        messages.sort(key=lambda m: m.timestamp)
        statuses = [parse_status(s) for s in value.get("statuses") or []]
        statuses.sort(key=lambda s: s.timestamp)
        out.append(
            Change(
                phone_number_id=pnid,
                field=str(change.get("field") or ""),
                profiles=profiles,
                messages=messages,
                statuses=statuses,
                errors=list(value.get("errors") or []),
            )
        )
    return out


def parse_timestamp(raw: Any) -> dt.datetime:
    try:
        return dt.datetime.fromtimestamp(int(str(raw)), tz=dt.UTC)
    except (TypeError, ValueError, OverflowError):
        return dt.datetime.now(tz=dt.UTC)


def _first_error(errors: Any) -> tuple[int | None, str, str]:
    if not errors:
        return None, "", ""
    error = errors[0] or {}
    code = error.get("code")
    details = (error.get("error_data") or {}).get("details") or error.get("message") or ""
    return (
        int(str(code)) if str(code).isdigit() else None,
        str(error.get("title") or error.get("message") or "")[:300],
        str(details),
    )


def parse_status(raw: dict[str, Any]) -> StatusUpdate:
    code, title, details = _first_error(raw.get("errors"))
    return StatusUpdate(
        wamid=str(raw.get("id") or ""),
        status=str(raw.get("status") or ""),
        timestamp=parse_timestamp(raw.get("timestamp")),
        recipient_id=str(raw.get("recipient_id") or ""),
        opaque=str(raw.get("biz_opaque_callback_data") or ""),
        error_code=code,
        error_title=title,
        error_details=details,
        raw=raw,
    )


def _clip(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def parse_message(raw: dict[str, Any]) -> InboundMessage:
    kind = str(raw.get("type") or "unsupported")
    context = raw.get("context") or {}
    content = raw.get(kind)
    body: Any = content if isinstance(content, dict | list) else {}
    payload: dict[str, Any] = {"type": kind, kind: body} if kind in KNOWN_TYPES else {"type": kind}
    if raw.get("referral"):
        payload["referral"] = raw["referral"]
    if context:
        payload["context"] = context
    if raw.get("errors"):
        payload["errors"] = raw["errors"]
    text, preview = "", ""
    message_type = kind
    media: Media | None = None
    reaction_target = reaction_emoji = ""
    code, title, details = _first_error(raw.get("errors"))

    if kind == "text":
        text = str(body.get("body") or "")
        preview = text
    elif kind in MEDIA_TYPES:
        caption = str(body.get("caption") or "")
        text = caption
        media = Media(
            kind=kind,
            media_id=str(body.get("id") or ""),
            mime_type=str(body.get("mime_type") or ""),
            sha256=str(body.get("sha256") or ""),
            filename=str(body.get("filename") or ""),
        )
        label = {
            "image": "📷 Photo",
            "video": "🎥 Video",
            "audio": "🎤 Voice message" if body.get("voice") else "🎵 Audio",
            "document": f"📄 {media.filename or 'Document'}",
            "sticker": "Sticker",
        }[kind]
        preview = f"{label}: {caption}" if caption else label
    elif kind == "location":
        name = str(body.get("name") or body.get("address") or "")
        preview = f"📍 {name}" if name else f"📍 {body.get('latitude')}, {body.get('longitude')}"
    elif kind == "contacts":
        names = [str(((c or {}).get("name") or {}).get("formatted_name") or "") for c in body or []]
        preview = "👤 " + (", ".join(n for n in names if n) or "Contact")
    elif kind == "interactive":
        reply = body.get(body.get("type") or "") or {}
        text = str(reply.get("title") or "")
        preview = text or "Interactive reply"
    elif kind == "button":
        text = str(body.get("text") or "")
        preview = text or "Button"
    elif kind == "reaction":
        reaction_target = str(body.get("message_id") or "")
        reaction_emoji = str(body.get("emoji") or "")
        preview = f"Reacted {reaction_emoji}" if reaction_emoji else "Removed a reaction"
    elif kind == "order":
        items = body.get("product_items") or []
        text = str(body.get("text") or "")
        preview = f"🛒 Order: {len(items)} item{'s' if len(items) != 1 else ''}"
    elif kind == "system":
        text = str(body.get("body") or "")
        preview = text or "System message"
    else:
        message_type = "unsupported"
        preview = "Unsupported message" + (f": {title}" if title else "")

    return InboundMessage(
        wamid=str(raw.get("id") or ""),
        from_wa_id=str(raw.get("from") or ""),
        from_user_id=str(raw.get("from_user_id") or ""),
        timestamp=parse_timestamp(raw.get("timestamp")),
        type=message_type,
        text=text,
        payload=payload,
        preview=_clip(preview),
        context_wamid=str(context.get("id") or ""),
        forwarded=bool(context.get("forwarded") or context.get("frequently_forwarded")),
        media=media,
        reaction_target=reaction_target,
        reaction_emoji=reaction_emoji,
        error_code=code,
        error_title=title,
        error_details=details,
    )
