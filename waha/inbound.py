"""WAHA webhook events mapped into the same contacts, conversations and messages as the Cloud API's,
through conversations' own services (so the inbox's realtime events, the bot, routing and SLA clocks
work as for any inbound message).

- `message` / `message.any` from a customer: an inbound message (text, media, location; a reply keeps
  its quote), stored once by WAHA's message id (Message.wamid holds it: "false_<chat>_<ID>").
- `message.any` with fromMe: a message sent from the phone is stored once as outbound (origin: the app on
  the phone). Our own sends come back the same way: they match the row the delivery stored (its wamid, the
  full id or the bare <ID>); one still in flight (queued, no id yet) makes the echo wait (`defer`) until
  the delivery has stored its id, so it is never duplicated.
- `message.ack`: the delivery status, merged monotonically (conversations' merge: read never goes back
  to delivered); an ack that overtook its message waits for it.
- `message.reaction`, `message.revoked` (kept, shown as deleted), `message.edited` (new text, shown as
  edited, the original kept in the payload).
- `session.status`: waha.sessions.record_status.

Chat ids: `<digits>@c.us` is an E.164 contact; `<id>@lid` (a user WhatsApp hides the number of) is kept as
a ContactIdentity of kind whatsapp_web; groups (`@g.us`) likewise, only when the number has groups
enabled; `status@broadcast`, newsletters and anything else are ignored.

Every handler returns an Outcome: processed, ignored (nothing to do, with the reason) or defer (try again
later: waha.events reschedules it, and on the last try `final` is set and the handler settles it)."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

import structlog
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from django_tenants.utils import schema_context

from conversations import events
from conversations.models import Channel, MediaFile, Message
from conversations.rules import media_preview
from conversations.services import InboundDraft, apply_message_status, set_reaction, store_inbound_messages
from conversations.services.coexistence import PastMessage, store_echoes
from crm import outgoing_events
from crm.models import Contact, ContactIdentity
from crm.services.contacts import merge_contacts
from crm.services.identities import WhatsAppUser, resolve_whatsapp_contact
from tenants.db import connection
from waha.delivery import enqueue_media_download
from waha.models import WahaSession
from waha.sessions import record_status
from whatsapp.parsing import clean_text, parse_timestamp, scrub
from whatsapp.services.inbound import upsert_contact

log = structlog.get_logger("waha.inbound")

PHONE_CHAT_RE = re.compile(r"^([0-9]{5,20})@(?:c\.us|s\.whatsapp\.net)$")
LID_CHAT_RE = re.compile(r"^[0-9]{5,30}@lid$")
GROUP_CHAT_RE = re.compile(r"^[0-9-]{5,60}@g\.us$")
MAX_ID = Message._meta.get_field("wamid").max_length or 128
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
# WAHA's ack numbers and names → our statuses (PENDING: not sent yet, nothing to record).
ACK_BY_NUMBER = {-1: "failed", 1: "sent", 2: "delivered", 3: "read", 4: "read"}
ACK_BY_NAME = {"ERROR": "failed", "SERVER": "sent", "DEVICE": "delivered", "READ": "read", "PLAYED": "read"}
REVOKED_PREVIEW = "This message was deleted"


@dataclass(frozen=True)
class Outcome:
    status: str  # "processed", "ignored" or "defer"
    reason: str = ""


PROCESSED = Outcome("processed")


def _ignored(reason: str) -> Outcome:
    return Outcome("ignored", reason)


def _settle(final: bool, reason: str) -> Outcome:
    """What is missing may still come (defer), unless this was the last try."""
    return _ignored(reason) if final else Outcome("defer", reason)


# -- reading the hostile body --------------------------------------------------------------------------


def _text(value: Any, limit: int | None = None) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return ""
    text = clean_text(value if isinstance(value, str) else str(value))
    return text[:limit] if limit is not None else text


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _clip(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _short_id(message_id: str) -> str:
    """The bare <ID> of a serialized WAHA id ("true_<chat>_<ID>", a group's "..._<ID>_<participant>")."""
    if message_id.startswith(("true_", "false_")):
        parts = message_id.split("_", 2)
        if len(parts) == 3 and parts[2]:
            return parts[2].split("_", 1)[0]
    return message_id


def _message_id(value: Any) -> str:
    """A message id as stored: WAHA's serialized id, or its bare <ID> when the whole is too long."""
    raw = _text(value, 500).strip()
    if isinstance(value, dict):  # some engines serialize ids as {"_serialized": ...}
        raw = _text(value.get("_serialized"), 500).strip()
    if len(raw) > MAX_ID:
        raw = _short_id(raw)
    return raw if len(raw) <= MAX_ID else ""


def _candidates(message_id: str) -> list[str]:
    return sorted({message_id, _short_id(message_id)} - {""})


def _find(channel: Channel, message_id: str, *, lock: bool = False) -> Message | None:
    """The message of this number with WAHA id `message_id` (full or bare: the delivery stores what the
    send answered)."""
    if not message_id:
        return None
    found = Message.objects.filter(wamid__in=_candidates(message_id), conversation__channel=channel)
    if lock:
        found = found.select_for_update(of=("self",))
    return found.select_related("conversation").order_by("id").first()


def _find_revised(channel: Channel, ids: list[str], *, lock: bool) -> Message | None:
    """The message a revoke or an edit names: by any of `ids` (full or bare), else, WAHA naming it by its
    bare <ID> alone, by the end of a stored full id (a scan of the number's messages, but these events
    are rare)."""
    for message_id in ids:
        if exact := _find(channel, message_id, lock=lock):
            return exact
    bare = next((_short_id(i) for i in ids if i), "")
    if not bare or len(bare) < 8:  # too short to be a WhatsApp message id
        return None
    ending = Message.objects.filter(conversation__channel=channel).filter(
        Q(wamid__endswith=f"_{bare}") | Q(wamid__contains=f"_{bare}_")
    )
    if lock:
        ending = ending.select_for_update(of=("self",))
    return ending.select_related("conversation").order_by("id").first()


def _full_id(payload: dict[str, Any], bare: str) -> str:
    """The serialized id of the message an event about it names by its bare <ID> (WAHA's
    editedMessageId): "<true|false>_<chat>_<ID>", the chat being the customer's."""
    from_me = payload.get("fromMe") is True
    chat = _text(payload.get("to") if from_me else payload.get("from"), 200)
    if not bare or not chat or bare.startswith(("true_", "false_")):
        return ""
    return _message_id(f"{'true' if from_me else 'false'}_{chat}_{bare}")


def _chat(chat_id: str) -> tuple[str, str]:
    """("phone", digits), ("lid", chat id), ("group", chat id), or ("", "") for what is never stored."""
    if match := PHONE_CHAT_RE.match(chat_id):
        return "phone", match.group(1)
    if LID_CHAT_RE.match(chat_id):
        return "lid", chat_id
    if GROUP_CHAT_RE.match(chat_id):
        return "group", chat_id
    return "", ""


def _event_time(envelope: dict[str, Any]) -> dt.datetime:
    return _waha_time(envelope) or timezone.now()


def _waha_time(envelope: dict[str, Any]) -> dt.datetime | None:
    """The envelope's `timestamp` (milliseconds, WAHA's clock), or None when missing or not a time."""
    raw = envelope.get("timestamp")
    if isinstance(raw, int | float) and not isinstance(raw, bool) and raw > 0:
        try:
            return EPOCH + dt.timedelta(milliseconds=raw)
        except (ValueError, OverflowError):
            pass
    return None


def _push_name(payload: dict[str, Any]) -> str:
    data = _obj(payload.get("_data"))
    for value in (
        payload.get("notifyName"),
        data.get("notifyName"),
        data.get("pushName"),
        _obj(data.get("Info")).get("PushName"),
    ):
        if name := _clip(_text(value, 400)):
            return name[:200]
    return ""


@dataclass(frozen=True)
class Content:
    type: str
    text: str
    payload: dict[str, Any]
    preview: str
    media_url: str = ""
    media_mime: str = ""
    media_filename: str = ""
    reply_to: str = ""


def _media_kind(mime: str, payload: dict[str, Any]) -> tuple[str, bool]:
    """(kind, voice) of a received file from its MIME type (WAHA has no type field of its own)."""
    data_type = _text(_obj(payload.get("_data")).get("type"), 20).lower()
    if mime == "image/webp" or data_type == "sticker":
        return "sticker", False
    if mime.startswith("image/"):
        return "image", False
    if mime.startswith("video/"):
        return "video", False
    if mime.startswith("audio/"):
        return "audio", data_type == "ptt" or "opus" in mime
    return "document", False


def _number(value: Any, bound: float) -> float | None:
    try:
        number = (
            float(value) if isinstance(value, str | int | float) and not isinstance(value, bool) else None
        )
    except ValueError:
        return None
    return number if number is not None and -bound <= number <= bound else None


def content_of(payload: dict[str, Any]) -> Content:
    """What a `message` payload holds, in the shape the inbox renders (Meta's: {"type", <type>: {...}})."""
    body = _text(payload.get("body"), 65536)
    reply_to = _message_id(_obj(payload.get("replyTo")).get("id"))
    context = {"context": {"id": reply_to}} if reply_to else {}
    media = _obj(payload.get("media"))
    location = _obj(payload.get("location"))
    if payload.get("hasMedia") is True or media:
        mime = _text(media.get("mimetype"), 120).split(";")[0].strip().lower()
        kind, voice = _media_kind(mime, payload)
        filename = _text(media.get("filename"), 255)
        url = _text(media.get("url"), 2000)
        part = {"mime_type": mime, "filename": filename, "caption": body, "url": url, "voice": voice}
        return Content(
            type=kind,
            text=body,
            payload={"type": kind, kind: part, **context},
            preview=media_preview(kind, body, filename=filename, voice=voice),
            media_url=url,
            media_mime=mime,
            media_filename=filename,
            reply_to=reply_to,
        )
    latitude, longitude = _number(location.get("latitude"), 90), _number(location.get("longitude"), 180)
    if latitude is not None and longitude is not None:
        name = _text(location.get("description") or location.get("name"), 300)
        part = {"latitude": latitude, "longitude": longitude, "name": name, "address": ""}
        return Content(
            type=Message.Type.LOCATION,
            text="",
            payload={"type": "location", "location": part, **context},
            preview=_clip(f"📍 {name}" if name else f"📍 {latitude}, {longitude}"),
            reply_to=reply_to,
        )
    if body:
        return Content(
            type=Message.Type.TEXT,
            text=body,
            payload={"type": "text", "text": {"body": body}, **context},
            preview=_clip(body),
            reply_to=reply_to,
        )
    return Content(
        type=Message.Type.UNSUPPORTED,
        text="This kind of message is not shown here; see it on the phone.",
        payload={"type": "unsupported", **context},
        preview="Unsupported message",
        reply_to=reply_to,
    )


# -- contacts ------------------------------------------------------------------------------------------


def _web_contact(chat_id: str, *, name: str, seen_at: dt.datetime | None) -> Contact:
    """The contact kept by a WhatsApp-Web chat id (an @lid user, a group), locked; created with its
    identity when new (a concurrent first delivery hits the unique identity and finds this one)."""
    for _ in range(3):
        identity = ContactIdentity.objects.filter(
            kind=ContactIdentity.Kind.WHATSAPP_WEB, value=chat_id
        ).first()
        if identity is not None:
            contact = Contact.objects.select_for_update().filter(pk=identity.contact_id).first()
            if contact is None:
                continue  # merged away meanwhile
            fields = []
            if name and not contact.name:
                contact.name = name
                fields.append("name")
            if seen_at and (contact.last_inbound_at is None or seen_at > contact.last_inbound_at):
                contact.last_inbound_at = seen_at
                fields.append("last_inbound_at")
            if fields:
                contact.save(update_fields=[*fields, "updated_at"])
            return contact
        try:
            with transaction.atomic():
                contact = Contact.objects.create(name=name, last_inbound_at=seen_at, attributes={})
                ContactIdentity.objects.create(
                    contact=contact, kind=ContactIdentity.Kind.WHATSAPP_WEB, value=chat_id
                )
        except IntegrityError:
            continue
        outgoing_events.contact_changed(contact, created=True)
        return Contact.objects.select_for_update().get(pk=contact.pk)
    raise IntegrityError(f"The contact of {chat_id} kept changing under concurrent deliveries.")


def _phone_contact(wa_id: str, *, name: str, seen_at: dt.datetime | None) -> Contact:
    if seen_at is not None:
        return upsert_contact(wa_id=wa_id, name=name, seen_at=seen_at)
    return resolve_whatsapp_contact(user=WhatsAppUser(wa_id=wa_id))


def _lid_with_phone(lid: str, wa_id: str, *, name: str, seen_at: dt.datetime | None) -> Contact:
    """An @lid sender whose number WAHA also gave: the number's contact, which keeps the @lid as an
    identity (a contact known by the @lid alone until now is merged into it)."""
    contact = _phone_contact(wa_id, name=name, seen_at=seen_at)
    identity = ContactIdentity.objects.filter(kind=ContactIdentity.Kind.WHATSAPP_WEB, value=lid).first()
    if identity is None:
        try:
            with transaction.atomic():
                ContactIdentity.objects.create(
                    contact=contact, kind=ContactIdentity.Kind.WHATSAPP_WEB, value=lid
                )
        except IntegrityError:
            identity = ContactIdentity.objects.filter(
                kind=ContactIdentity.Kind.WHATSAPP_WEB, value=lid
            ).first()
    if identity is not None and identity.contact_id != contact.pk:
        other = Contact.objects.filter(pk=identity.contact_id).first()
        if other is not None:
            contact = merge_contacts(keep=contact, discard=other)
    return contact


def _alt_phone(payload: dict[str, Any]) -> str:
    """The number behind an @lid sender, when WAHA gives it (GOWS: _data.Info.SenderAlt)."""
    info = _obj(_obj(payload.get("_data")).get("Info"))
    for value in (info.get("SenderAlt"), payload.get("senderAlt")):
        if match := PHONE_CHAT_RE.match(_text(value, 100)):
            return match.group(1)
    return ""


def _contact(
    kind: str, value: str, *, name: str, seen_at: dt.datetime | None, alt_phone: str = ""
) -> Contact:
    """The customer's contact, locked. `seen_at` (an inbound message) moves their last inbound time."""
    if kind == "phone":
        return _phone_contact(value, name=name, seen_at=seen_at)
    if kind == "lid" and alt_phone:
        return _lid_with_phone(value, alt_phone, name=name, seen_at=seen_at)
    if kind == "group" and not name:
        name = f"WhatsApp group {value.split('@', 1)[0]}"[:200]
    return _web_contact(value, name=name, seen_at=seen_at)


# -- events --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Event:
    session: WahaSession
    channel: Channel
    envelope: dict[str, Any]
    payload: dict[str, Any]
    final: bool


def handle_event(*, waha_session: WahaSession, envelope: dict[str, Any], final: bool) -> Outcome:
    """One verified event of this number, in its tenant's schema and the caller's transaction."""
    name = _text(envelope.get("event"), 40)
    session_name = _text(envelope.get("session"), 100)
    if session_name and session_name != waha_session.session:
        # Signed with this number's key but about another session: misconfigured, never mixed in.
        return _ignored(f"event of session {session_name!r}, not {waha_session.session!r}")
    handler = HANDLERS.get(name)
    if handler is None:
        return _ignored(f"event {name!r} is not handled")
    channel = Channel.objects.get(pk=waha_session.channel_id)
    event = Event(waha_session, channel, envelope, _obj(envelope.get("payload")), final)
    return handler(event)


def _touch(event: Event) -> None:
    WahaSession.objects.filter(pk=event.session.pk).update(last_activity_at=timezone.now())


def _on_message(event: Event) -> Outcome:
    payload = event.payload
    from_me = payload.get("fromMe") is True
    message_id = _message_id(payload.get("id"))
    if not message_id:
        return _ignored("message without an id")
    chat_id = _text(payload.get("to") if from_me else payload.get("from"), 200)
    kind, value = _chat(chat_id)
    if not kind:
        return _ignored(f"chat {chat_id[:60]!r} is not a customer's")
    if kind == "group" and not event.session.groups_enabled:
        return _ignored("group chat (groups are off for this number)")
    _touch(event)
    content = content_of(payload)
    timestamp = parse_timestamp(payload.get("timestamp"))
    if from_me:
        return _store_echo(event, kind, value, message_id, content, timestamp)
    name = "" if kind == "group" else _push_name(payload)
    alt_phone = _alt_phone(payload) if kind == "lid" else ""
    contact = _contact(kind, value, name=name, seen_at=timestamp, alt_phone=alt_phone)
    # The contact's lock serialises deliveries of this sender: the check below is authoritative.
    if Message.objects.filter(wamid=message_id).exists():
        return PROCESSED  # a redelivery (or the `message` and `message.any` copies of one message)
    reply_to = _find(event.channel, content.reply_to) if content.reply_to else None
    if kind == "group":
        sender = _push_name(payload) or _text(payload.get("participant"), 60)
        content = _with_group_sender(content, sender)
    [message] = store_inbound_messages(
        drafts=[
            InboundDraft(
                contact=contact,
                channel=event.channel,
                wamid=message_id,
                type=content.type,
                text=content.text,
                payload=scrub(content.payload),
                preview=content.preview,
                timestamp=timestamp,
                reply_to=reply_to,
            )
        ]
    )
    _queue_media(event.channel, message, content)
    return PROCESSED


def _with_group_sender(content: Content, sender: str) -> Content:
    if not sender:
        return content
    payload = {**content.payload, "participant": sender}
    return Content(
        type=content.type,
        text=content.text,
        payload=payload,
        preview=_clip(f"{sender}: {content.preview}"),
        media_url=content.media_url,
        media_mime=content.media_mime,
        media_filename=content.media_filename,
        reply_to=content.reply_to,
    )


def _queue_media(channel: Channel, message: Message, content: Content) -> None:
    if content.type not in ("image", "video", "audio", "document", "sticker"):
        return
    media = MediaFile.objects.create(
        channel=channel,
        message=message,
        direction=MediaFile.Direction.INBOUND,
        kind=content.type,
        mime_type=content.media_mime,
        filename=content.media_filename,
        status=MediaFile.Status.PENDING if content.media_url else MediaFile.Status.FAILED,
        error="" if content.media_url else "The WhatsApp Web gateway sent no file (media download is off).",
    )
    if content.media_url:
        media_pk, schema, url = media.pk, connection.schema_name, content.media_url

        def enqueue() -> None:
            with schema_context(schema):  # the job's schema may be gone by the time it commits
                enqueue_media_download(media_id=media_pk, schema=schema, url=url)

        transaction.on_commit(enqueue)


def _store_echo(
    event: Event, kind: str, value: str, message_id: str, content: Content, timestamp: dt.datetime
) -> Outcome:
    """A message the number sent: ours (already stored by the delivery) or one typed on the phone."""
    if _find(event.channel, message_id) is not None:
        return PROCESSED  # our own send (its id is stored), or a redelivery
    contact = _contact(kind, value, name="", seen_at=None)
    unsent = Message.objects.filter(
        conversation__channel=event.channel,
        conversation__contact=contact,
        direction=Message.Direction.OUTBOUND,
        status=Message.Status.QUEUED,
        wamid__isnull=True,
    ).exclude(type=Message.Type.NOTE)
    if unsent.exists() and not event.final:
        # Perhaps this is the echo of one of them whose send has not stored WAHA's id yet.
        return Outcome("defer", "a send to this chat has not stored its id yet")
    # After its lock: the delivery may have stored the id meanwhile.
    if _find(event.channel, message_id) is not None:
        return PROCESSED
    key = f"{kind}:{value}"
    past = PastMessage(
        wamid=message_id,
        type=content.type,
        text=content.text,
        payload=scrub(content.payload),
        preview=content.preview,
        timestamp=timestamp,
        outbound=True,
        status="sent",
    )
    stored = store_echoes(channel=event.channel, echoes=[(key, past)], contacts={key: contact})
    for message in stored:
        _queue_media(event.channel, message, content)
    return PROCESSED


def _on_ack(event: Event) -> Outcome:
    payload = event.payload
    if payload.get("fromMe") is False:
        return _ignored("ack of a received message")
    raw = payload.get("ack")
    status = (
        ACK_BY_NUMBER.get(raw)
        if isinstance(raw, int) and not isinstance(raw, bool)
        else ACK_BY_NAME.get(_text(payload.get("ackName"), 20).upper())
    )
    if status is None:
        status = ACK_BY_NAME.get(_text(payload.get("ackName"), 20).upper())
    if status is None:
        return _ignored("ack without a status to record")
    message = _find(event.channel, _message_id(payload.get("id")), lock=True)
    if message is None:
        return _settle(event.final, "ack of a message not stored (yet)")
    if message.direction != Message.Direction.OUTBOUND:
        return _ignored("ack of a received message")
    failed = status == Message.Status.FAILED
    apply_message_status(
        message=message,
        status=status,
        timestamp=_event_time(event.envelope),
        error_title="WhatsApp reported an error sending this message." if failed else "",
    )
    return PROCESSED


def _on_reaction(event: Event) -> Outcome:
    payload = event.payload
    reaction = _obj(payload.get("reaction"))
    emoji = _text(reaction.get("text"), 32)
    target = _find(event.channel, _message_id(reaction.get("messageId")), lock=True)
    if target is None:
        return _settle(event.final, "reaction to a message not stored (yet)")
    if payload.get("fromMe") is True:
        set_reaction(target=target, side="business", emoji=emoji)
        return PROCESSED
    kind, value = _chat(_text(payload.get("from"), 200))
    reaction_id = _message_id(payload.get("id"))
    if not kind or (kind == "group" and not event.session.groups_enabled):
        return _ignored("reaction from a chat that is not a customer's")
    contact = _contact(kind, value, name="", seen_at=None)
    if reaction_id and Message.objects.filter(wamid=reaction_id).exists():
        return PROCESSED  # a redelivery
    if reaction_id and target.conversation.contact_id == contact.pk:
        store_inbound_messages(
            drafts=[
                InboundDraft(
                    contact=contact,
                    channel=event.channel,
                    wamid=reaction_id,
                    type=Message.Type.REACTION,
                    text="",
                    payload={"type": "reaction", "reaction": {"message_id": target.wamid, "emoji": emoji}},
                    preview=f"Reacted {emoji}" if emoji else "Removed a reaction",
                    timestamp=parse_timestamp(payload.get("timestamp")),
                    reply_to=target,
                )
            ]
        )
    set_reaction(target=target, side="contact", emoji=emoji)
    return PROCESSED


def _on_revoked(event: Event) -> Outcome:
    payload = event.payload
    ids = [
        _message_id(_obj(payload.get("before")).get("id")),
        _message_id(_obj(payload.get("after")).get("id")),
        _message_id(payload.get("revokedMessageId")),
    ]
    target = _find_revised(event.channel, [i for i in ids if i], lock=True)
    if target is None:
        return _settle(event.final, "revoked message not stored (yet)")
    if (target.payload or {}).get("revoked"):
        return PROCESSED
    target.payload = {
        **(target.payload or {}),
        "revoked": True,
        "revoked_at": _event_time(event.envelope).isoformat(),
    }
    target.preview = REVOKED_PREVIEW
    target.save(update_fields=["payload", "preview"])
    events.message_updated(target)
    return PROCESSED


def _on_edited(event: Event) -> Outcome:
    payload = event.payload
    named = _message_id(payload.get("editedMessageId")) or _message_id(
        _obj(payload.get("_data")).get("editedMessageId")
    )
    text = _text(payload.get("body"), 65536)
    ids = [i for i in (named, _full_id(payload, named)) if i]
    target = _find_revised(event.channel, ids, lock=True)
    if target is None:
        return _settle(event.final, "edited message not stored (yet)")
    if target.text == text or (target.payload or {}).get("revoked"):
        return PROCESSED  # a redelivery, or an edit of a deleted message
    stored = dict(target.payload or {})
    stored.setdefault("original_text", target.text)
    stored["edited_at"] = _event_time(event.envelope).isoformat()
    if target.type == Message.Type.TEXT:
        stored["text"] = {"body": text}
        target.preview = _clip(text)
    target.text = text
    target.payload = scrub(stored)
    target.save(update_fields=["text", "payload", "preview"])
    events.message_updated(target)
    return PROCESSED


def _on_session_status(event: Event) -> Outcome:
    """Recorded unless older than the status already recorded (see record_status); processed either way."""
    status = _text(event.payload.get("status"), 40)
    me = event.envelope.get("me")
    record_status(
        waha_session=event.session,
        status=status,
        me=me if isinstance(me, dict) else None,
        at=_waha_time(event.envelope),
        event=True,
    )
    return PROCESSED


HANDLERS = {
    "message": _on_message,
    "message.any": _on_message,
    "message.ack": _on_ack,
    "message.reaction": _on_reaction,
    "message.revoked": _on_revoked,
    "message.edited": _on_edited,
    "session.status": _on_session_status,
}
