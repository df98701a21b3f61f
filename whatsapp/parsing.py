"""Cloud API webhook payloads → plain data. No database access here: pure functions, easy to test.

Two levels of trust. `targets()` checks the envelope before a body is stored (what routing and the
signature check rely on) and refuses a body that is not shaped like a webhook. Everything inside a
change is read defensively by `load_body()`: a value of an unexpected type is read as empty, an item
that is not an object is skipped and logged, strings lose NUL characters (PostgreSQL refuses them in
text and jsonb) and are cut to their column's length, so a stored event can always be processed.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
import re
from dataclasses import dataclass, field
from typing import Any, TypeGuard

import structlog

from conversations import rules

log = structlog.get_logger("whatsapp.parsing")

MEDIA_TYPES = rules.MEDIA_KINDS
KNOWN_TYPES = frozenset(
    {*MEDIA_TYPES, "text", "location", "contacts", "interactive", "button", "reaction", "order", "system"}
)
# Meta's ids (phone_number_id, WABA id) are decimal strings; anything else is not routable.
ID_RE = re.compile(r"^[0-9]{1,64}$")
# A wa_id is the customer's number in digits (E.164: at most 15); the contact's phone column holds 20.
WA_ID_RE = re.compile(r"^[0-9]{1,19}$")
# Meta's deepest payloads are about a dozen levels; a deeper body is not a webhook (and recursion on it
# could exhaust the stack).
MAX_DEPTH = 32
# Account-level fields that update the account's message templates.
TEMPLATE_FIELDS = frozenset(
    {"message_template_status_update", "message_template_quality_update", "template_category_update"}
)


class PayloadError(ValueError):
    """The body is JSON but not a WhatsApp Business Account webhook."""

    def __init__(self, message: str, code: str = "invalid_payload") -> None:
        super().__init__(message)
        self.code = code
        self.message = message


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
class TemplateUpdate:
    """One template's new status, category or quality (account-level webhooks); "" = unchanged."""

    template_id: str
    name: str
    language: str
    status: str = ""
    reason: str = ""
    category: str = ""
    quality_score: str = ""


@dataclass(frozen=True)
class Change:
    phone_number_id: str  # "" for an account-level change (routed by waba_id)
    field: str
    profiles: dict[str, Profile]
    messages: list[InboundMessage]
    statuses: list[StatusUpdate]
    errors: list[dict[str, Any]]
    waba_id: str = ""  # the entry's id: the WhatsApp Business Account
    template: TemplateUpdate | None = None


@dataclass(frozen=True)
class Target:
    """Whom one change of a body is for: a business number, or (no phone_number_id) its account."""

    phone_number_id: str
    waba_id: str


# -- the envelope, checked before storing ------------------------------------------------------------


def targets(data: Any) -> list[Target]:
    """Every change's number (metadata.phone_number_id) or, for account-level changes, account
    (entry.id). Raises PayloadError unless `entry` is a list of objects, each `changes` a list of
    objects, each `value` and `metadata` an object and every id a decimal id."""
    if not isinstance(data, dict) or data.get("object") != "whatsapp_business_account":
        raise PayloadError("Not a WhatsApp Business Account webhook.", code="not_whatsapp")
    entries = data.get("entry")
    if not _objects(entries):
        raise PayloadError("`entry` must be a list of objects.")
    _check_depth(data)
    found: list[Target] = []
    for entry in entries:
        waba_id = _checked_id(entry.get("id"), "entry.id")
        changes = entry.get("changes", [])
        if not _objects(changes):
            raise PayloadError("`changes` must be a list of objects.")
        for change in changes:
            value = change.get("value", {})
            metadata = value.get("metadata", {}) if isinstance(value, dict) else None
            if not isinstance(metadata, dict):
                raise PayloadError("`value` and its `metadata` must be objects.")
            if not isinstance(change.get("field", ""), str):
                raise PayloadError("`field` must be a string.")
            found.append(Target(_checked_id(metadata.get("phone_number_id"), "phone_number_id"), waba_id))
    return found


def _objects(value: Any) -> TypeGuard[list[dict[str, Any]]]:
    return isinstance(value, list) and all(isinstance(item, dict) for item in value)


def _checked_id(raw: Any, name: str) -> str:
    if raw is None or raw == "":
        return ""
    found = clean_id(raw)
    if not found:
        raise PayloadError(f"`{name}` must be a decimal id.")
    return found


def clean_id(raw: Any) -> str:
    """A Meta id as its decimal string, or "" when `raw` is not one."""
    if isinstance(raw, int) and not isinstance(raw, bool) and raw >= 0:
        raw = str(raw)
    return raw if isinstance(raw, str) and ID_RE.match(raw) else ""


def _check_depth(data: Any) -> None:
    """Iteratively: a recursive walk is what a deep body would break."""
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise PayloadError(f"The body is nested deeper than {MAX_DEPTH} levels.")
        children = node.values() if isinstance(node, dict) else node
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))


# -- defensive readers ---------------------------------------------------------------------------------


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _items(value: Any, what: str) -> list[dict[str, Any]]:
    """The objects of a list; anything else is skipped (and logged: Meta never sends it)."""
    if value is None or value == "":
        return []
    if not isinstance(value, list):
        log.warning("whatsapp_payload_unexpected", what=what, type=type(value).__name__)
        return []
    items = [item for item in value if isinstance(item, dict)]
    if len(items) != len(value):
        log.warning("whatsapp_payload_items_skipped", what=what, skipped=len(value) - len(items))
    return items


def loads(body: bytes) -> Any:
    """Strict JSON: NaN and Infinity (which json.loads takes, and jsonb does not) are refused. Raises
    ValueError (UnicodeDecodeError is one) or RecursionError."""
    return json.loads(body, parse_constant=_refuse_constant)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def clean_text(text: str) -> str:
    """What PostgreSQL stores in text and jsonb: no NUL, no lone surrogate (JSON's \\ud800 escapes)."""
    if "\x00" in text:
        text = text.replace("\x00", "")
    try:
        text.encode()
    except UnicodeEncodeError:
        text = text.encode(errors="replace").decode()
    return text


def _text(value: Any, limit: int | None = None) -> str:
    """A scalar as clean text cut to `limit`; a list, object or null reads as ""."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return ""
    text = clean_text(value if isinstance(value, str) else str(value))
    return text[:limit] if limit is not None else text


def scrub(value: Any, depth: int = 0) -> Any:
    """JSON for a jsonb column: strings and keys cleaned, no NaN, nothing deeper than MAX_DEPTH."""
    if depth > MAX_DEPTH:
        return None
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {clean_text(str(key)): scrub(item, depth + 1) for key, item in value.items()}
    if isinstance(value, list):
        return [scrub(item, depth + 1) for item in value]
    return value


# -- the body, read when processing ------------------------------------------------------------------


def load_body(data: Any) -> list[Change]:
    if not isinstance(data, dict) or data.get("object") != "whatsapp_business_account":
        raise PayloadError("Not a WhatsApp Business Account webhook.", code="not_whatsapp")
    return [change for entry in _items(data.get("entry"), "entry") for change in _changes(entry)]


def _changes(entry: dict[str, Any]) -> list[Change]:
    out = []
    waba_id = clean_id(entry.get("id"))
    for change in _items(entry.get("changes"), "changes"):
        try:
            parsed = _change(change, waba_id)
        except Exception:  # a shape no reader above expected: skip the change, keep the others
            log.warning("whatsapp_change_skipped", waba_id=waba_id, exc_info=True)
            continue
        if parsed is not None:
            out.append(parsed)
    return out


def _change(change: dict[str, Any], waba_id: str) -> Change | None:
    value = _obj(change.get("value"))
    kind = _text(change.get("field"), 100)
    metadata = _obj(value.get("metadata"))
    raw_pnid = metadata.get("phone_number_id")
    pnid = clean_id(raw_pnid)
    if raw_pnid not in (None, "") and not pnid:
        log.warning("whatsapp_change_without_routable_number", field=kind)
        return None
    change_of = Change(
        phone_number_id=pnid, field=kind, profiles={}, messages=[], statuses=[], errors=[], waba_id=waba_id
    )
    if not pnid:
        template = parse_template_update(value) if kind in TEMPLATE_FIELDS else None
        return dataclasses.replace(change_of, template=template)
    if kind not in ("messages", ""):
        return change_of  # a number-level field this app does not use
    profiles = {}
    for contact in _items(value.get("contacts"), "contacts"):
        profile = Profile(
            wa_id=_wa_id(contact.get("wa_id")),
            name=_text(_obj(contact.get("profile")).get("name"), 200),
            user_id=_text(contact.get("user_id"), 64),
        )
        if profile.wa_id or profile.user_id:
            profiles[profile.wa_id or profile.user_id] = profile
    messages = [m for raw in _items(value.get("messages"), "messages") if (m := _guarded(parse_message, raw))]
    messages.sort(key=lambda m: m.timestamp)
    statuses = [s for raw in _items(value.get("statuses"), "statuses") if (s := _guarded(parse_status, raw))]
    statuses.sort(key=lambda s: s.timestamp)
    return Change(
        phone_number_id=pnid,
        field=kind,
        profiles=profiles,
        messages=messages,
        statuses=statuses,
        errors=[scrub(error) for error in _items(value.get("errors"), "errors")],
        waba_id=waba_id,
    )


def _guarded(parse: Any, raw: dict[str, Any]) -> Any:
    try:
        return parse(raw)
    except Exception:  # an item no reader expected: skipped, the change's other items still count
        log.warning("whatsapp_item_skipped", parser=parse.__name__, exc_info=True)
        return None


def _wa_id(raw: Any) -> str:
    text = _text(raw, 40).lstrip("+")
    return text if WA_ID_RE.match(text) else ""


def parse_template_update(value: dict[str, Any]) -> TemplateUpdate | None:
    """message_template_status_update (event, reason, category), template_category_update
    (new_category is the current category, also in the notice of a change to come) and
    message_template_quality_update (new_quality_score), told apart by their keys."""
    template_id = clean_id(value.get("message_template_id"))
    name = _text(value.get("message_template_name"), 512)
    language = _text(value.get("message_template_language"), 15)
    if not template_id and not (name and language):
        return None
    return TemplateUpdate(
        template_id=template_id,
        name=name,
        language=language,
        status=_text(value.get("event"), 30).upper(),
        reason=_text(value.get("reason"), 300) if value.get("reason") != "NONE" else "",
        category=_text(value.get("new_category") or value.get("message_template_category"), 30).upper(),
        quality_score=_text(value.get("new_quality_score"), 20).upper(),
    )


def parse_timestamp(raw: Any) -> dt.datetime:
    text = _text(raw, 20)
    try:
        return dt.datetime.fromtimestamp(int(text), tz=dt.UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return dt.datetime.now(tz=dt.UTC)


def _code(raw: Any) -> int | None:
    """An error code as an int that fits the column (PostgreSQL integer), else None."""
    text = _text(raw, 10)
    return int(text) if text.isdigit() and int(text) < 2**31 else None


def _first_error(errors: Any) -> tuple[int | None, str, str]:
    found = _items(errors, "errors")
    if not found:
        return None, "", ""
    error = found[0]
    details = _text(_obj(error.get("error_data")).get("details")) or _text(error.get("message"))
    return (
        _code(error.get("code")),
        (_text(error.get("title")) or _text(error.get("message")))[:300],
        details,
    )


def parse_status(raw: dict[str, Any]) -> StatusUpdate:
    code, title, details = _first_error(raw.get("errors"))
    wamid = _text(raw.get("id"))
    return StatusUpdate(
        wamid=wamid if len(wamid) <= 128 else "",
        status=_text(raw.get("status"), 20),
        timestamp=parse_timestamp(raw.get("timestamp")),
        recipient_id=_text(raw.get("recipient_id"), 64),
        opaque=_text(raw.get("biz_opaque_callback_data"), 512),
        error_code=code,
        error_title=title,
        error_details=details,
        raw=scrub(raw),
    )


def _clip(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def parse_message(raw: dict[str, Any]) -> InboundMessage:
    kind = _text(raw.get("type"), 40) or "unsupported"
    context = _obj(raw.get("context"))
    content = raw.get(kind)
    body: dict[str, Any] = content if isinstance(content, dict) else {}
    listed: list[Any] = content if isinstance(content, list) else []  # `contacts` is a list
    payload: dict[str, Any] = (
        {"type": kind, kind: content if isinstance(content, dict | list) else {}}
        if kind in KNOWN_TYPES
        else {"type": kind}
    )
    if raw.get("referral"):
        payload["referral"] = raw["referral"]
    if context:
        payload["context"] = context
    if raw.get("errors"):
        payload["errors"] = raw["errors"]
    payload = scrub(payload)
    text, preview = "", ""
    message_type = kind
    media: Media | None = None
    reaction_target = reaction_emoji = ""
    code, title, details = _first_error(raw.get("errors"))

    if kind == "text":
        text = _text(body.get("body"))
        preview = text
    elif kind in MEDIA_TYPES:
        caption = _text(body.get("caption"))
        text = caption
        media = Media(
            kind=kind,
            media_id=_text(body.get("id"), 128),
            mime_type=_text(body.get("mime_type"), 120),
            sha256=_text(body.get("sha256"), 128),
            filename=_text(body.get("filename"), 255),
        )
        preview = rules.media_preview(kind, caption, filename=media.filename, voice=body.get("voice") is True)
    elif kind == "location":
        name = _text(body.get("name")) or _text(body.get("address"))
        where = f"{_text(body.get('latitude'), 30)}, {_text(body.get('longitude'), 30)}"
        preview = f"📍 {name}" if name else f"📍 {where}"
    elif kind == "contacts":
        names = [_text(_obj(_obj(c).get("name")).get("formatted_name")) for c in listed]
        preview = "👤 " + (", ".join(n for n in names if n) or "Contact")
    elif kind == "interactive":
        reply = _obj(body.get(_text(body.get("type"), 40)))
        text = _text(reply.get("title"))
        preview = text or "Interactive reply"
    elif kind == "button":
        text = _text(body.get("text"))
        preview = text or "Button"
    elif kind == "reaction":
        reaction_target = _text(body.get("message_id"), 128)
        reaction_emoji = _text(body.get("emoji"), 32)
        preview = f"Reacted {reaction_emoji}" if reaction_emoji else "Removed a reaction"
    elif kind == "order":
        items = body.get("product_items")
        count = len(items) if isinstance(items, list) else 0
        text = _text(body.get("text"))
        preview = f"🛒 Order: {count} item{'s' if count != 1 else ''}"
    elif kind == "system":
        text = _text(body.get("body"))
        preview = text or "System message"
    else:
        message_type = "unsupported"
        preview = "Unsupported message" + (f": {title}" if title else "")

    wamid = _text(raw.get("id"))
    return InboundMessage(
        wamid=wamid if len(wamid) <= 128 else "",
        from_wa_id=_wa_id(raw.get("from")),
        from_user_id=_text(raw.get("from_user_id"), 64),
        timestamp=parse_timestamp(raw.get("timestamp")),
        type=message_type,
        text=text,
        payload=payload,
        preview=_clip(preview),
        context_wamid=_text(context.get("id"), 128),
        forwarded=bool(context.get("forwarded") is True or context.get("frequently_forwarded") is True),
        media=media,
        reaction_target=reaction_target,
        reaction_emoji=reaction_emoji,
        error_code=code,
        error_title=title,
        error_details=details,
    )
