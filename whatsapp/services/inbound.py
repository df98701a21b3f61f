"""Inbound messages: their senders' contacts locked in one order, stored, their media queued."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import structlog
from django.utils import timezone

from conversations.models import Channel, MediaFile, Message
from conversations.services import InboundDraft, set_reaction, store_inbound_messages
from crm.models import Contact
from crm.phones import InvalidPhoneNumber, normalize_phone
from tenants.db import connection, update_rows
from whatsapp import metrics, parsing
from whatsapp.services.media import queue_media_download

log = structlog.get_logger("whatsapp")


Inbound = tuple[Channel, parsing.InboundMessage, dict[str, parsing.Profile]]


@dataclass
class _Sender:
    user_id: str
    name: str
    seen_at: dt.datetime


def _apply_sender(contact: Contact, wa_id: str, sender: _Sender) -> list[str]:
    """The profile name fills an empty name only; the customer-service window moves to the latest
    inbound message. Returns the fields that changed."""
    fields = []
    if not contact.wa_id:
        contact.wa_id = wa_id
        fields.append("wa_id")
    if sender.name and not contact.name:
        contact.name = sender.name[:200]
        fields.append("name")
    if sender.user_id and contact.whatsapp_user_id != sender.user_id:
        contact.whatsapp_user_id = sender.user_id[:64]
        fields.append("whatsapp_user_id")
    if contact.last_inbound_at is None or sender.seen_at > contact.last_inbound_at:
        contact.last_inbound_at = sender.seen_at
        fields.append("last_inbound_at")
    return fields


def upsert_contact(*, wa_id: str, user_id: str = "", name: str = "", seen_at: dt.datetime) -> Contact:
    """The contact by wa_id (else by E.164 phone, else a new one), locked for this transaction and
    updated from the sender's profile."""
    try:
        phone = normalize_phone(wa_id)
    except InvalidPhoneNumber:
        phone = "+" + "".join(ch for ch in wa_id if ch.isdigit())
    contact = (
        Contact.objects.select_for_update().filter(wa_id=wa_id).order_by("id").first()
        or Contact.objects.select_for_update().filter(phone=phone).first()
    )
    if contact is None:
        created, _ = Contact.objects.get_or_create(
            phone=phone,
            defaults={
                "wa_id": wa_id,
                "name": name[:200],
                "whatsapp_user_id": user_id[:64],
            },
        )
        contact = Contact.objects.select_for_update().get(pk=created.pk)
    fields = _apply_sender(contact, wa_id, _Sender(user_id, name, seen_at))
    if fields:
        contact.save(update_fields=[*fields, "updated_at"])
    return contact


def lock_senders(senders: dict[str, _Sender]) -> dict[str, Contact]:
    """The senders' contacts by wa_id, locked and updated. Known senders (the usual case) take one
    SELECT ... FOR UPDATE in id order and one UPDATE whatever their number; a new one goes through
    upsert_contact. The contact's row lock serialises every worker handling this sender, so the
    caller's wamid check is authoritative and a redelivery can't race its first delivery."""
    contacts: dict[str, Contact] = {}
    locked = Contact.objects.raw(
        f"SELECT * FROM {Contact._meta.db_table} WHERE wa_id = ANY(%s::text[]) ORDER BY id FOR UPDATE",
        [list(senders)],
    )
    for found in locked:
        contacts.setdefault(found.wa_id, found)
    changed: dict[str, Contact] = {}
    fields: set[str] = set()
    for wa_id, sender in sorted(senders.items()):
        contact = contacts.get(wa_id)
        if contact is None:
            contacts[wa_id] = upsert_contact(
                wa_id=wa_id,
                user_id=sender.user_id,
                name=sender.name,
                seen_at=sender.seen_at,
            )
        elif changes := _apply_sender(contact, wa_id, sender):
            changed[wa_id] = contact
            fields.update(changes)
    if changed:
        now = timezone.now()
        for contact in changed.values():
            contact.updated_at = now
        update_rows(Contact, list(changed.values()), [*sorted(fields), "updated_at"])
    return contacts


def ingest_messages(inbound: list[Inbound]) -> list[Message]:
    """Inbound messages of one tenant, in its schema and transaction: senders upserted, redeliveries
    skipped, the new messages stored together (conversations.services.store_inbound_messages)."""
    valid: list[Inbound] = []
    senders: dict[str, _Sender] = {}
    for channel, message, profiles in inbound:
        if not message.wamid or not message.from_wa_id:
            log.warning("whatsapp_message_without_sender", wamid=message.wamid)
            continue
        valid.append((channel, message, profiles))
        profile = (
            profiles.get(message.from_wa_id) or profiles.get(message.from_user_id) or parsing.Profile("")
        )
        user_id = message.from_user_id or profile.user_id
        sender = senders.get(message.from_wa_id)
        if sender is None:
            senders[message.from_wa_id] = _Sender(user_id, profile.name, message.timestamp)
        else:
            sender.user_id = user_id or sender.user_id
            sender.name = sender.name or profile.name
            sender.seen_at = max(sender.seen_at, message.timestamp)
    if not valid:
        return []
    contacts = lock_senders(senders)
    existing: dict[str, Message] = {}
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT wamid FROM {Message._meta.db_table} WHERE wamid = ANY(%s::text[])",
            [[m.wamid for _, m, _ in valid]],
        )
        redelivered = [wamid for (wamid,) in cursor.fetchall()]
    if redelivered:  # rare: Meta delivered these before
        existing = {str(m.wamid): m for m in Message.objects.filter(wamid__in=redelivered)}
    new: list[tuple[Channel, parsing.InboundMessage]] = []
    seen: set[str] = set()
    for channel, message, _ in valid:
        if message.wamid in existing:
            # A redelivery: nothing is stored twice, but a media download that failed gets another try.
            _ensure_media_download(existing[message.wamid])
        elif message.wamid not in seen:  # the same message twice in one batch
            seen.add(message.wamid)
            new.append((channel, message))
    stored: list[Message] = []
    for chunk in _chunks_without_inner_references(new):
        stored += _store_chunk(chunk, contacts)
    return stored


def _chunks_without_inner_references(
    new: list[tuple[Channel, parsing.InboundMessage]],
) -> list[list[tuple[Channel, parsing.InboundMessage]]]:
    """A reply or reaction to a message of the same batch needs that message stored first: the batch
    is cut before it."""
    chunks: list[list[tuple[Channel, parsing.InboundMessage]]] = [[]]
    wamids: set[str] = set()
    for channel, message in new:
        target = message.reaction_target or message.context_wamid
        if target and target in wamids:
            chunks.append([])
            wamids = set()
        chunks[-1].append((channel, message))
        wamids.add(message.wamid)
    return [chunk for chunk in chunks if chunk]


def _store_chunk(
    chunk: list[tuple[Channel, parsing.InboundMessage]],
    contacts: dict[str, Contact],
) -> list[Message]:
    targets = {t for _, m in chunk if (t := m.reaction_target or m.context_wamid)}
    replied = {m.wamid: m for m in Message.objects.filter(wamid__in=targets)} if targets else {}
    drafts = [
        InboundDraft(
            contact=contacts[message.from_wa_id],
            channel=channel,
            wamid=message.wamid,
            type=message.type,
            text=message.text,
            payload=message.payload,
            preview=message.preview,
            timestamp=message.timestamp,
            is_forwarded=message.forwarded,
            reply_to=replied.get(message.reaction_target or message.context_wamid),
            error_code=message.error_code,
            error_title=message.error_title,
            error_details=message.error_details,
        )
        for channel, message in chunk
    ]
    stored = store_inbound_messages(drafts=drafts)
    for (channel, inbound), message in zip(chunk, stored, strict=True):
        metrics.MESSAGES.labels(direction="in", type=message.type, status="received").inc()
        if inbound.type == Message.Type.REACTION and message.reply_to is not None:
            set_reaction(target=message.reply_to, side="contact", emoji=inbound.reaction_emoji)
        if inbound.media is not None and inbound.media.media_id:
            media = MediaFile.objects.create(
                channel=channel,
                message=message,
                direction=MediaFile.Direction.INBOUND,
                kind=inbound.media.kind,
                media_id=inbound.media.media_id,
                mime_type=inbound.media.mime_type,
                sha256=inbound.media.sha256,
                filename=inbound.media.filename[:255],
            )
            queue_media_download(media)
    return stored


def _ensure_media_download(message: Message) -> None:
    media = MediaFile.objects.filter(message=message).exclude(status=MediaFile.Status.READY).first()
    if media is not None:
        if media.status == MediaFile.Status.FAILED:
            MediaFile.objects.filter(pk=media.pk).update(status=MediaFile.Status.PENDING, attempts=0)
        queue_media_download(media)
