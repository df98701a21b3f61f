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
    # Business-scoped user ids (BSUID): the sender's parent one, and a system message's new identifiers
    # (user_changed_user_id / user_changed_number).
    from_parent_user_id: str = ""
    system_type: str = ""
    new_user_id: str = ""
    new_wa_id: str = ""


@dataclass(frozen=True)
class StatusUpdate:
    wamid: str
    status: str
    timestamp: dt.datetime
    recipient_id: str = ""
    recipient_user_id: str = ""
    recipient_parent_user_id: str = ""
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
    parent_user_id: str = ""
    username: str = ""


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
    # template_category_update: an impending change (the category Meta will apply, and when) or a
    # completed one (the category it replaced).
    pending_category: str = ""
    category_change_at: dt.datetime | None = None
    previous_category: str = ""


@dataclass(frozen=True)
class NumberQualityUpdate:
    """phone_number_quality_update (account-level): a number of the account, by its display number, was
    flagged, unflagged, or had its messaging limit changed (`current_limit`)."""

    display_phone_number: str
    event: str
    current_limit: str = ""


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
    # smb_message_echoes, history, smb_app_state_sync (a number also used in the WhatsApp Business app)
    coexistence: Coexistence | None = None
    number_quality: NumberQualityUpdate | None = None


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
        quality = parse_number_quality(value) if kind == "phone_number_quality_update" else None
        return dataclasses.replace(change_of, template=template, number_quality=quality)
    if kind in COEXISTENCE_FIELDS:
        return dataclasses.replace(change_of, coexistence=parse_coexistence(kind, value))
    if kind not in ("messages", ""):
        return change_of  # a number-level field this app does not use
    profiles = {}
    for contact in _items(value.get("contacts"), "contacts"):
        profile = Profile(
            wa_id=_wa_id(contact.get("wa_id")),
            name=_text(_obj(contact.get("profile")).get("name"), 200),
            user_id=_user_id(contact.get("user_id")),
            parent_user_id=_user_id(contact.get("parent_user_id")),
            username=_text(_obj(contact.get("profile")).get("username") or contact.get("username"), 64),
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


def _user_id(raw: Any) -> str:
    """A business-scoped user id ("US.1349…", a parent one "US.ENT.1181…"): kept as sent, at most 140."""
    text = _text(raw, 200).strip()
    return text if 0 < len(text) <= 140 and " " not in text else ""


def _wa_id(raw: Any) -> str:
    text = _text(raw, 40).lstrip("+")
    return text if WA_ID_RE.match(text) else ""


def parse_number_quality(value: dict[str, Any]) -> NumberQualityUpdate | None:
    digits = re.sub(r"[^0-9]", "", _text(value.get("display_phone_number"), 40))
    event = _text(value.get("event"), 30).upper()
    if not digits or not event:
        return None
    return NumberQualityUpdate(
        display_phone_number=digits, event=event, current_limit=_text(value.get("current_limit"), 40).upper()
    )


def parse_template_update(value: dict[str, Any]) -> TemplateUpdate | None:
    """message_template_status_update (event, reason, category), template_category_update
    (new_category is the current category, also in the notice of a change to come) and
    message_template_quality_update (new_quality_score), told apart by their keys."""
    template_id = clean_id(value.get("message_template_id"))
    name = _text(value.get("message_template_name"), 512)
    language = _text(value.get("message_template_language"), 15)
    if not template_id and not (name and language):
        return None
    reason = _text(value.get("reason"), 300) if value.get("reason") != "NONE" else ""
    if not reason and value.get("event") not in (None, "APPROVED"):
        other = _obj(value.get("other_info"))
        reason = _text(other.get("title") or other.get("description"), 300)
    # An impending change names the category to come (correct_category) and when; its new_category is
    # the current one. A completed change has previous_category and the new one.
    pending = _text(value.get("correct_category"), 30).upper()
    when = value.get("category_update_timestamp")
    return TemplateUpdate(
        template_id=template_id,
        name=name,
        language=language,
        status=_text(value.get("event"), 30).upper(),
        reason=reason,
        category=_text(value.get("new_category") or value.get("message_template_category"), 30).upper(),
        quality_score=_text(value.get("new_quality_score"), 20).upper(),
        pending_category=pending,
        category_change_at=_timestamp_or_none(when) if pending else None,
        previous_category=_text(value.get("previous_category"), 30).upper() if not pending else "",
    )


def parse_timestamp(raw: Any) -> dt.datetime:
    text = _text(raw, 20)
    try:
        return dt.datetime.fromtimestamp(int(text), tz=dt.UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return dt.datetime.now(tz=dt.UTC)


def _timestamp_or_none(raw: Any) -> dt.datetime | None:
    text = _text(raw, 20)
    try:
        return dt.datetime.fromtimestamp(int(float(text)), tz=dt.UTC) if text else None
    except (ValueError, OverflowError, OSError):
        return None


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
        recipient_user_id=_user_id(raw.get("recipient_user_id")),
        recipient_parent_user_id=_user_id(raw.get("recipient_parent_user_id")),
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
        from_user_id=_user_id(raw.get("from_user_id")),
        from_parent_user_id=_user_id(raw.get("from_parent_user_id")),
        system_type=_text(body.get("type"), 40) if kind == "system" else "",
        new_user_id=_user_id(body.get("user_id") or body.get("new_user_id")) if kind == "system" else "",
        new_wa_id=_wa_id(body.get("wa_id") or body.get("new_wa_id")) if kind == "system" else "",
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


# -- coexistence: the number is also used in the WhatsApp Business app -----------------------------------

COEXISTENCE_FIELDS = frozenset({"smb_message_echoes", "history", "smb_app_state_sync"})


@dataclass(frozen=True)
class Echo:
    """A message the business sent from the WhatsApp Business app (smb_message_echoes): `message.from_wa_id`
    is the business number, `to_wa_id` the customer."""

    message: InboundMessage
    to_wa_id: str


@dataclass(frozen=True)
class HistoryMessage:
    message: InboundMessage
    from_me: bool  # sent by the business (from the app), else received from the customer
    status: str  # history_context.status, lower case: read, delivered, sent, pending, played, ...


@dataclass(frozen=True)
class HistoryThread:
    wa_id: str  # the customer of this chat
    messages: list[HistoryMessage]


@dataclass(frozen=True)
class AppContact:
    """A contact added or changed in the WhatsApp Business app (smb_app_state_sync)."""

    wa_id: str
    name: str
    action: str  # add, edit, remove


@dataclass(frozen=True)
class Coexistence:
    kind: str  # the webhook field: smb_message_echoes, history or smb_app_state_sync
    echoes: list[Echo] = field(default_factory=list)
    threads: list[HistoryThread] = field(default_factory=list)
    contacts: list[AppContact] = field(default_factory=list)
    # history: which chunk of which phase this is, and how far the import has got (percent)
    phase: int | None = None
    chunk: int | None = None
    progress: int | None = None
    errors: list[dict[str, Any]] = field(default_factory=list)


def _int(raw: Any) -> int | None:
    text = _text(raw, 10)
    return int(text) if text.isdigit() else None


def parse_coexistence(kind: str, value: dict[str, Any]) -> Coexistence:
    if kind == "smb_message_echoes":
        echoes = []
        for raw in _items(value.get("message_echoes"), "message_echoes"):
            message = _guarded(parse_message, raw)
            to = _wa_id(raw.get("to"))
            if message is not None and message.wamid and to:
                echoes.append(Echo(message=message, to_wa_id=to))
        return Coexistence(kind=kind, echoes=sorted(echoes, key=lambda e: e.message.timestamp))
    if kind == "history":
        found = Coexistence(kind=kind)
        threads: list[HistoryThread] = []
        errors: list[dict[str, Any]] = []
        phase = chunk = progress = None
        for item in _items(value.get("history"), "history"):
            meta = _obj(item.get("metadata"))
            phase = _int(meta.get("phase")) if phase is None else phase
            chunk = _int(meta.get("chunk_order")) if chunk is None else chunk
            progress = _int(meta.get("progress")) if progress is None else progress
            errors += [scrub(error) for error in _items(item.get("errors"), "errors")]
            for thread in _items(item.get("threads"), "threads"):
                wa_id = _wa_id(thread.get("id"))
                if not wa_id:
                    continue
                messages = []
                for raw in _items(thread.get("messages"), "messages"):
                    message = _guarded(parse_message, raw)
                    if message is None or not message.wamid:
                        continue
                    context = _obj(raw.get("history_context"))
                    from_me = context.get("from_me") is True or (
                        bool(message.from_wa_id) and message.from_wa_id != wa_id
                    )
                    status = _text(context.get("status"), 20).lower()
                    messages.append(HistoryMessage(message=message, from_me=from_me, status=status))
                messages.sort(key=lambda m: m.message.timestamp)
                threads.append(HistoryThread(wa_id=wa_id, messages=messages))
        return dataclasses.replace(
            found, threads=threads, errors=errors, phase=phase, chunk=chunk, progress=progress
        )
    contacts = []
    for item in _items(value.get("state_sync"), "state_sync"):
        if _text(item.get("type"), 20) != "contact":
            continue
        contact = _obj(item.get("contact"))
        wa_id = _wa_id(contact.get("phone_number"))
        if wa_id:
            name = _text(contact.get("full_name"), 200) or _text(contact.get("first_name"), 200)
            contacts.append(AppContact(wa_id=wa_id, name=name.strip(), action=_text(item.get("action"), 20)))
    return Coexistence(kind=kind, contacts=contacts)
