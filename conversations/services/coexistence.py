"""A number also used in the WhatsApp Business app ("coexistence"): what the business sends from the
app's phone (echoes) and the chats it had there before (history) are stored as this app's messages,
marked with their origin. None of them is ever sent (they have a wamid and are not queued), none wakes
the bot or counts as unread, and a history import publishes no realtime events at all: a history chunk
holds hundreds of chats, and an inbox refreshing for each would be a storm for nothing that needs an
answer."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.db.models import Q
from django.utils import timezone

from conversations import events
from conversations.models import Conversation, Message
from crm import outgoing_events
from crm.models import Contact
from crm.phones import InvalidPhoneNumber, normalize_phone
from tenants.db import update_rows

# history_context.status → our status for a message the business sent ("pending" and unknown ones: it
# left the phone, nothing more is known).
HISTORY_STATUS = {
    "sent": Message.Status.SENT,
    "delivered": Message.Status.DELIVERED,
    "read": Message.Status.READ,
    "played": Message.Status.PLAYED,
    "failed": Message.Status.FAILED,
    "error": Message.Status.FAILED,
}
HISTORY_BATCH = 1000


@dataclass(frozen=True)
class PastMessage:
    """A message of a chat in the WhatsApp Business app: sent from it (`outbound`) or received there."""

    wamid: str
    type: str
    text: str
    payload: dict[str, Any]
    preview: str
    timestamp: dt.datetime
    outbound: bool
    status: str = ""


def _phone_of(wa_id: str) -> str:
    try:
        return normalize_phone(wa_id)
    except InvalidPhoneNumber:
        return "+" + "".join(ch for ch in wa_id if ch.isdigit())


def contacts_for(
    wa_ids: list[str], *, names: dict[str, str] | None = None, lock: bool = False
) -> dict[str, Contact]:
    """The contacts of these customers by wa_id (else by phone), created where missing in one INSERT
    (a concurrent insert of the same phone is skipped, then found). With `lock`, locked in id order (the
    inbound path's order, so the two never deadlock)."""
    wanted = sorted(set(wa_ids))
    if not wanted:
        return {}
    phones = {wa_id: _phone_of(wa_id) for wa_id in wanted}

    def load() -> dict[str, Contact]:
        found = Contact.objects.filter(Q(wa_id__in=wanted) | Q(phone__in=list(phones.values()))).order_by(
            "id"
        )
        if lock:
            found = found.select_for_update()
        by_wa_id: dict[str, Contact] = {}
        by_phone = {phone: wa_id for wa_id, phone in phones.items()}
        for contact in found:
            key = contact.wa_id if contact.wa_id in phones else by_phone.get(contact.phone or "")
            if key:
                by_wa_id.setdefault(key, contact)
        return by_wa_id

    contacts = load()
    missing = [wa_id for wa_id in wanted if wa_id not in contacts]
    if missing:
        Contact.objects.bulk_create(
            [
                Contact(phone=phones[wa_id], wa_id=wa_id, name=((names or {}).get(wa_id) or "")[:200])
                for wa_id in missing
            ],
            ignore_conflicts=True,
        )
        contacts = load()
        # One batch for the round (a number another worker inserted meanwhile is announced by both).
        outgoing_events.contacts_changed(
            [contacts[wa_id] for wa_id in missing if wa_id in contacts], created=True
        )
    return contacts


def _latest_conversations(contacts: list[Contact], channel: Any) -> dict[int, Conversation]:
    """Each contact's latest conversation on the number, locked."""
    table = Conversation._meta.db_table
    latest = Conversation.objects.raw(
        f"SELECT * FROM {table} WHERE id IN ("
        f"  SELECT DISTINCT ON (contact_id) id FROM {table}"
        "   WHERE contact_id = ANY(%s::bigint[]) AND channel_id = %s ORDER BY contact_id, id DESC"
        ") ORDER BY id FOR UPDATE",
        [[c.pk for c in contacts], channel.pk],
    )
    return {conversation.contact_id: conversation for conversation in latest}


def _known_wamids(wamids: list[str]) -> set[str]:
    found: set[str] = set()
    for start in range(0, len(wamids), HISTORY_BATCH):
        batch = Message.objects.filter(wamid__in=wamids[start : start + HISTORY_BATCH])
        found.update(str(wamid) for wamid in batch.values_list("wamid", flat=True))
    return found


def _message(conversation: Conversation, past: PastMessage, origin: str) -> Message:
    if past.outbound:
        status = HISTORY_STATUS.get(past.status, Message.Status.SENT)
        times = {"sent_at": past.timestamp}
        if status in (Message.Status.DELIVERED, Message.Status.READ, Message.Status.PLAYED):
            times["delivered_at"] = past.timestamp
        if status in (Message.Status.READ, Message.Status.PLAYED):
            times["read_at"] = past.timestamp
    else:
        status, times = Message.Status.RECEIVED, {}
    return Message(
        conversation=conversation,
        direction=Message.Direction.OUTBOUND if past.outbound else Message.Direction.INBOUND,
        type=past.type,
        text=past.text,
        payload=past.payload,
        preview=past.preview[:200],
        status=status,
        wamid=past.wamid,
        timestamp=past.timestamp,
        origin=origin,
        **times,
    )


def store_echoes(
    *, channel: Any, echoes: list[tuple[str, PastMessage]], contacts: dict[str, Contact] | None = None
) -> list[Message]:
    """Messages the business sent from the WhatsApp Business app, as (customer wa_id, message): stored as
    outbound and sent, in the customer's latest conversation on the number (a new one, with the bot off,
    if there is none), each once (by wamid); the inbox hears of them as of any new message. `contacts`:
    the customers' contacts by the echoes' keys, already locked by the caller (a channel whose customers
    are not all known by a number, e.g. WAHA's @lid chats), instead of finding them by wa_id."""
    if not echoes:
        return []
    if contacts is None:
        contacts = contacts_for([wa_id for wa_id, _ in echoes], lock=True)
    known = _known_wamids([past.wamid for _, past in echoes])
    new: list[tuple[Contact, PastMessage]] = []
    for wa_id, past in echoes:
        if past.wamid not in known and wa_id in contacts:
            known.add(past.wamid)
            new.append((contacts[wa_id], past))
    if not new:
        return []
    involved = list({contact.pk: contact for contact, _ in new}.values())
    conversations = _latest_conversations(involved, channel)
    created = Conversation.objects.bulk_create(
        [
            Conversation(contact=contact, channel=channel, bot_active=False)
            for contact in involved
            if contact.pk not in conversations
        ]
    )
    conversations.update({c.contact_id: c for c in created})
    messages = [
        _message(conversations[contact.pk], past, Message.Origin.BUSINESS_APP) for contact, past in new
    ]
    Message.objects.bulk_create(messages)
    now = timezone.now()
    touched: dict[int, Conversation] = {}
    for message in messages:
        conversation = message.conversation
        if conversation.last_message_at is None or message.timestamp > conversation.last_message_at:
            conversation.last_message_at = message.timestamp
        conversation.updated_at = now
        touched[conversation.pk] = conversation
    update_rows(Conversation, list(touched.values()), ["last_message_at", "updated_at"])
    for contact in involved:
        latest = max(p.timestamp for c, p in new if c.pk == contact.pk)
        if contact.last_outbound_at is None or latest > contact.last_outbound_at:
            contact.last_outbound_at = latest
            contact.updated_at = now
    update_rows(Contact, involved, ["last_outbound_at", "updated_at"])
    fresh = {c.pk for c in created}
    events.publish_events(
        [
            *(events.conversation_event(c, change="created") for c in created),
            *(events.message_created_event(m) for m in messages),
            *(events.conversation_event(c) for pk, c in touched.items() if pk not in fresh),
        ]
    )
    return messages


@dataclass(frozen=True)
class HistoryImport:
    contacts: int
    conversations: int  # new ones
    messages: int  # new ones


def import_history(*, channel: Any, threads: dict[str, list[PastMessage]]) -> HistoryImport:
    """Past chats of the WhatsApp Business app (customer wa_id → its messages): contacts created where
    missing, each chat added to the customer's latest conversation on the number or to a new, resolved
    one dated by its messages, the messages stored with their own times and directions, each once. No
    unread counts, no bot, no events; a redelivered chunk adds nothing. The statements do not grow with
    the chunk (a few per thousand messages)."""
    threads = {wa_id: messages for wa_id, messages in threads.items() if messages}
    if not threads:
        return HistoryImport(0, 0, 0)
    contacts = contacts_for(list(threads), lock=True)
    known = _known_wamids([past.wamid for messages in threads.values() for past in messages])
    pending: dict[int, list[PastMessage]] = {}
    by_pk: dict[int, Contact] = {}
    for wa_id, items in threads.items():
        contact = contacts.get(wa_id)
        if contact is None:
            continue
        fresh = []
        for past in items:
            if past.wamid not in known and past.type != Message.Type.REACTION:
                known.add(past.wamid)
                fresh.append(past)
        if fresh:
            pending[contact.pk] = fresh
            by_pk[contact.pk] = contact
    if not pending:
        return HistoryImport(len(contacts), 0, 0)
    conversations = _latest_conversations(list(by_pk.values()), channel)
    now = timezone.now()
    new_conversations = [
        Conversation(
            contact=by_pk[pk],
            channel=channel,
            bot_active=False,
            status=Conversation.Status.RESOLVED,
            resolved_at=max(p.timestamp for p in pending[pk]),
        )
        for pk in pending
        if pk not in conversations
    ]
    created = Conversation.objects.bulk_create(new_conversations)
    for conversation in created:
        # Dated by the chat, not by the import: reports count it where it happened.
        conversation.created_at = min(p.timestamp for p in pending[conversation.contact_id])
    conversations.update({c.contact_id: c for c in created})
    messages = [
        _message(conversations[pk], past, Message.Origin.HISTORY)
        for pk, batch in pending.items()
        for past in batch
    ]
    # A chunk redelivered while the first delivery is still being stored: the unique wamid decides.
    Message.objects.bulk_create(messages, batch_size=HISTORY_BATCH, ignore_conflicts=True)
    touched = list(conversations.values())
    for conversation in touched:
        batch = pending.get(conversation.contact_id, [])
        latest = max((p.timestamp for p in batch), default=None)
        inbound = max((p.timestamp for p in batch if not p.outbound), default=None)
        if latest and (conversation.last_message_at is None or latest > conversation.last_message_at):
            conversation.last_message_at = latest
        if inbound and (conversation.last_inbound_at is None or inbound > conversation.last_inbound_at):
            conversation.last_inbound_at = inbound
    update_rows(Conversation, touched, ["last_message_at", "last_inbound_at"])
    update_rows(Conversation, created, ["created_at"])
    changed_contacts = []
    for pk, batch in pending.items():
        contact = by_pk[pk]
        inbound = max((p.timestamp for p in batch if not p.outbound), default=None)
        outbound = max((p.timestamp for p in batch if p.outbound), default=None)
        changed = False
        # The customer-service window follows the customer's latest message, wherever it was read.
        if inbound and (contact.last_inbound_at is None or inbound > contact.last_inbound_at):
            contact.last_inbound_at, changed = inbound, True
        if outbound and (contact.last_outbound_at is None or outbound > contact.last_outbound_at):
            contact.last_outbound_at, changed = outbound, True
        if changed:
            contact.updated_at = now
            changed_contacts.append(contact)
    update_rows(Contact, changed_contacts, ["last_inbound_at", "last_outbound_at", "updated_at"])
    return HistoryImport(len(contacts), len(created), len(messages))


def update_contact_names(*, names: dict[str, str]) -> int:
    """Contacts added or renamed in the WhatsApp Business app's address book (wa_id → name): the
    business's own name for the customer replaces the stored one; customers not known yet become
    contacts. Returns how many existing contacts were renamed."""
    names = {wa_id: name[:200] for wa_id, name in names.items() if name}
    if not names:
        return 0
    contacts = contacts_for(list(names), names=names, lock=True)
    now = timezone.now()
    renamed = []
    for wa_id, contact in contacts.items():
        if contact.name != names[wa_id]:
            contact.name = names[wa_id]
            contact.updated_at = now
            renamed.append(contact)
    update_rows(Contact, renamed, ["name", "updated_at"])
    outgoing_events.contacts_changed(renamed)
    return len(renamed)
