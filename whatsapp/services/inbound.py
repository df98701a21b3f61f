"""Inbound messages: their senders' contacts locked in one order, stored, their media queued."""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass

import structlog
from django.utils import timezone

from conversations.models import Channel, MediaFile, Message
from conversations.services import InboundDraft, set_reaction, store_inbound_messages
from crm import outgoing_events
from crm.models import Contact
from crm.services.identities import (
    WhatsAppUser,
    clean_username,
    record_identities,
    resolve_whatsapp_contact,
)
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
    wa_id: str = ""
    parent_user_id: str = ""
    username: str = ""
    scope: str = ""  # the receiving number's WhatsApp Business Account

    def user(self) -> WhatsAppUser:
        return WhatsAppUser(
            wa_id=self.wa_id,
            bsuid=self.user_id,
            parent_bsuid=self.parent_user_id,
            username=self.username,
            name=self.name,
            scope=self.scope,
        )


# Written on every inbound message: not a change of the contact that outgoing webhooks announce.
ACTIVITY_FIELDS = frozenset({"last_inbound_at", "last_outbound_at"})


def sender_key(message: parsing.InboundMessage) -> str:
    """Whom a message is from: the wa_id, else (a user with a username may hide their number) the
    business-scoped user id, prefixed so it cannot be mistaken for a number. "" = nobody."""
    if message.from_wa_id:
        return message.from_wa_id
    user_id = message.from_user_id or message.from_parent_user_id
    return f"user:{user_id}" if user_id else ""


def _apply_sender(contact: Contact, wa_id: str, sender: _Sender) -> list[str]:
    """The profile name fills an empty name only; the customer-service window moves to the latest
    inbound message. Returns the fields that changed."""
    fields = []
    if wa_id and not contact.wa_id:
        contact.wa_id = wa_id
        fields.append("wa_id")
    if sender.name and not contact.name:
        contact.name = sender.name[:200]
        fields.append("name")
    username = clean_username(sender.username)
    if username and contact.username != username:
        contact.username = username
        fields.append("username")
    if contact.last_inbound_at is None or sender.seen_at > contact.last_inbound_at:
        contact.last_inbound_at = sender.seen_at
        fields.append("last_inbound_at")
    return fields


def _needs_identities(contact: Contact, sender: _Sender) -> bool:
    """Whether the sender brings a BSUID the contact does not carry yet (the copy on the contact is
    written together with its identity row, so equal means recorded)."""
    return bool(sender.user_id and contact.whatsapp_user_id != sender.user_id) or bool(
        sender.parent_user_id and not contact.identities.filter(value=sender.parent_user_id).exists()
    )


def upsert_contact(
    *,
    wa_id: str,
    user_id: str = "",
    name: str = "",
    seen_at: dt.datetime,
    parent_user_id: str = "",
    username: str = "",
    scope: str = "",
) -> Contact:
    """The contact by wa_id or phone and by business-scoped user id (merged when these name two
    contacts; a new one when none), locked for this transaction and updated from the sender's profile."""
    sender = _Sender(user_id, name, seen_at, wa_id, parent_user_id, username, scope)
    contact = resolve_whatsapp_contact(user=sender.user(), seen_at=seen_at)
    fields = _apply_sender(contact, wa_id, sender)
    if fields:
        contact.save(update_fields=[*fields, "updated_at"])
    if set(fields) - ACTIVITY_FIELDS:
        outgoing_events.contact_changed(contact)
    return contact


def lock_senders(senders: dict[str, _Sender]) -> dict[str, Contact]:
    """The senders' contacts by sender key (sender_key), locked and updated. Known senders by number
    (the usual case) take one SELECT ... FOR UPDATE in id order and one UPDATE whatever their number; a
    new one, one known by a BSUID alone, or one bringing a BSUID the contact lacks goes through
    upsert_contact (crm.services.identities: unique identities, merges). The contact's row lock
    serialises every worker handling this sender, so the caller's wamid check is authoritative and a
    redelivery can't race its first delivery."""
    contacts: dict[str, Contact] = {}
    by_number = [key for key, sender in senders.items() if sender.wa_id]
    locked = Contact.objects.raw(
        f"SELECT * FROM {Contact._meta.db_table} WHERE wa_id = ANY(%s::text[]) ORDER BY id FOR UPDATE",
        [by_number],
    )
    for found in locked:
        contacts.setdefault(found.wa_id, found)
    changed: dict[str, Contact] = {}
    fields: set[str] = set()
    edited: set[int] = set()  # changed beyond the activity timestamps: announced as contact.updated
    for key, sender in sorted(senders.items()):
        contact = contacts.get(key) if sender.wa_id else None
        if contact is None or _needs_identities(contact, sender):
            changed.pop(key, None)
            contacts[key] = upsert_contact(
                wa_id=sender.wa_id,
                user_id=sender.user_id,
                name=sender.name,
                seen_at=sender.seen_at,
                parent_user_id=sender.parent_user_id,
                username=sender.username,
                scope=sender.scope,
            )
        elif changes := _apply_sender(contact, key, sender):
            changed[key] = contact
            fields.update(changes)
            if set(changes) - ACTIVITY_FIELDS:
                edited.add(contact.pk)
    if changed:
        now = timezone.now()
        for contact in changed.values():
            contact.updated_at = now
        update_rows(Contact, list(changed.values()), [*sorted(fields), "updated_at"])
        outgoing_events.contacts_changed(contact for contact in changed.values() if contact.pk in edited)
    return contacts


def _profile_of(message: parsing.InboundMessage, profiles: dict[str, parsing.Profile]) -> parsing.Profile:
    found = profiles.get(message.from_wa_id) or profiles.get(message.from_user_id)
    if found is None and len(profiles) == 1 and not message.from_wa_id:
        found = next(iter(profiles.values()))  # a sender named only in `contacts`
    return found or parsing.Profile("")


def _apply_identity_change(channel: Channel, message: parsing.InboundMessage, contact: Contact) -> None:
    """A system message telling that the user's BSUID (user_changed_user_id) or number
    (user_changed_number) changed: the new identifier joins the same contact."""
    if message.system_type not in ("user_changed_user_id", "user_changed_number"):
        return
    if not (message.new_user_id or message.new_wa_id):
        return
    record_identities(
        contact=contact,
        user=WhatsAppUser(wa_id=message.new_wa_id, bsuid=message.new_user_id, scope=channel.waba_id),
    )


def ingest_messages(inbound: list[Inbound]) -> list[Message]:
    """Inbound messages of one tenant, in its schema and transaction: senders upserted, redeliveries
    skipped, the new messages stored together (conversations.services.store_inbound_messages)."""
    valid: list[Inbound] = []
    senders: dict[str, _Sender] = {}
    for channel, message, profiles in inbound:
        profile = _profile_of(message, profiles)
        if not message.from_wa_id and not message.from_user_id and (profile.wa_id or profile.user_id):
            message = dataclasses.replace(message, from_wa_id=profile.wa_id, from_user_id=profile.user_id)
        key = sender_key(message)
        if not message.wamid or not key:
            log.warning("whatsapp_message_without_sender", wamid=message.wamid)
            continue
        valid.append((channel, message, profiles))
        user_id = message.from_user_id or profile.user_id
        parent_user_id = message.from_parent_user_id or profile.parent_user_id
        sender = senders.get(key)
        if sender is None:
            senders[key] = _Sender(
                user_id,
                profile.name,
                message.timestamp,
                wa_id=message.from_wa_id,
                parent_user_id=parent_user_id,
                username=profile.username,
                scope=channel.waba_id,
            )
        else:
            sender.user_id = user_id or sender.user_id
            sender.parent_user_id = parent_user_id or sender.parent_user_id
            sender.username = profile.username or sender.username
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
    for channel, message in new:
        if message.system_type:
            _apply_identity_change(channel, message, contacts[sender_key(message)])
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
            contact=contacts[sender_key(message)],
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
