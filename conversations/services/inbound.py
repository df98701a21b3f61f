"""Inbound messages and delivery statuses, as a channel hands them over: stored in batches, with
conversations found, opened or reopened, counts moved, events published and the bot answering."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.utils import timezone

from conversations import bot, events
from conversations.models import Conversation, Message
from conversations.services.automation import answer_as_bot, handle_consent_keywords
from conversations.services.csat import absorb_answers
from conversations.services.routing import route_inbound
from conversations.services.sla import start_sla_clocks
from crm.models import Contact
from tenants.db import insert_rows, update_rows


@dataclass
class InboundDraft:
    """A new inbound message of `contact` on `channel`, ready to store."""

    contact: Contact
    channel: Any
    wamid: str
    type: str
    text: str
    payload: dict[str, Any]
    preview: str
    timestamp: dt.datetime
    is_forwarded: bool = False
    reply_to: Message | None = None
    error_code: int | None = None
    error_title: str = ""
    error_details: str = ""


CONVERSATION_INBOUND_FIELDS = [
    "status",
    "resolved_at",
    "snoozed_until",
    "unread_count",
    "last_message_at",
    "last_inbound_at",
    "updated_at",
]


Pair = tuple[int, int | None]  # (contact, number)


def _conversations_for_inbound(
    drafts: list[InboundDraft],
) -> tuple[dict[Pair, Conversation], list[Conversation]]:
    """Each (contact, number)'s latest conversation, locked (reopened by store_inbound_messages if
    resolved), or a new one; and the new ones. The caller holds the contacts' row locks, so no other
    worker creates a conversation for them meanwhile and the latest one cannot change under us."""
    contacts = {draft.contact.pk: draft.contact for draft in drafts}
    pairs: dict[Pair, Any] = {(draft.contact.pk, draft.channel.pk): draft.channel for draft in drafts}
    table = Conversation._meta.db_table
    # Plain SQL: this runs in every inbound round, where the ORM's compiling was most of the cost.
    latest = Conversation.objects.raw(
        f"SELECT * FROM {table} WHERE id IN ("
        f"  SELECT DISTINCT ON (contact_id, channel_id) id FROM {table}"
        "   WHERE contact_id = ANY(%s::bigint[]) AND channel_id = ANY(%s::bigint[])"
        "   ORDER BY contact_id, channel_id, id DESC"
        ") ORDER BY id FOR UPDATE",
        [list(contacts), list({n for _, n in pairs if n is not None})],
    )
    found: dict[Pair, Conversation] = {}
    for conversation in latest:
        key = (conversation.contact_id, conversation.channel_id)
        if key in pairs:
            found[key] = conversation
    new = [(contacts[c], channel) for (c, n), channel in pairs.items() if (c, n) not in found]
    # A new conversation starts with the bot only when it has something to say, else it goes straight
    # to the agents' queue: the inbox shows bot_active as "the bot is answering". (Cached per batch.)
    with_bot = bool(new) and bot.speaks_first()
    created = Conversation.objects.bulk_create(
        [Conversation(contact=contact, channel=channel, bot_active=with_bot) for contact, channel in new]
    )
    for conversation in created:
        found[(conversation.contact_id, conversation.channel_id)] = conversation
    for conversation in found.values():
        # The caller's contact carries this batch's changes (window, name); the bot reads it.
        conversation.contact = contacts[conversation.contact_id]
    return found, created


def store_inbound_messages(*, drafts: list[InboundDraft]) -> list[Message]:
    """New inbound messages, in order: conversations found or opened and reopened, counts and times
    moved, events published, and the bot answers where it is on. The caller holds the senders' contact
    row locks and has checked that the wamids are new (the unique wamid would refuse them anyway).

    The number of statements does not grow with the batch (one to find and lock the conversations,
    one INSERT for the messages, one UPDATE for the conversations, one for the events) unless the bot
    answers: a worker under load takes many messages per transaction, and per-message statements were
    most of its CPU."""
    if not drafts:
        return []
    conversations, created = _conversations_for_inbound(drafts)
    messages = [
        Message(
            conversation=conversations[(draft.contact.pk, draft.channel.pk)],
            direction=Message.Direction.INBOUND,
            type=draft.type,
            text=draft.text,
            payload=draft.payload,
            preview=draft.preview[:200],
            status=Message.Status.RECEIVED,
            wamid=draft.wamid,
            reply_to=draft.reply_to,
            is_forwarded=draft.is_forwarded,
            error_code=draft.error_code,
            error_title=draft.error_title[:300],
            error_details=draft.error_details,
            timestamp=draft.timestamp,
        )
        for draft in drafts
    ]
    insert_rows(Message, messages)
    # Ratings and comments answering a CSAT survey: they neither reopen a resolved conversation nor wake
    # the bot (conversations.services.csat).
    csat_answers = absorb_answers(messages)
    now = timezone.now()
    changes: dict[int, str] = {}
    first_inbound = []
    for message in messages:
        conversation = message.conversation
        changes.setdefault(conversation.pk, "updated")
        first_inbound.append(conversation.last_inbound_at is None)
        if (
            conversation.status in (Conversation.Status.RESOLVED, Conversation.Status.SNOOZED)
            and message.pk not in csat_answers
        ):
            changes[conversation.pk] = "reopened"
            conversation.status = Conversation.Status.OPEN
            conversation.resolved_at = None
            conversation.snoozed_until = None
        if message.type != Message.Type.REACTION:
            conversation.unread_count += 1
        if conversation.last_message_at is None or message.timestamp > conversation.last_message_at:
            conversation.last_message_at = message.timestamp
        if conversation.last_inbound_at is None or message.timestamp > conversation.last_inbound_at:
            conversation.last_inbound_at = message.timestamp
        conversation.updated_at = now
    touched = {message.conversation.pk: message.conversation for message in messages}
    update_rows(Conversation, list(touched.values()), CONVERSATION_INBOUND_FIELDS)
    events.publish_events(
        [
            *(events.conversation_event(conversation, change="created") for conversation in created),
            *(events.message_created_event(message) for message in messages),
            *(events.conversation_event(c, change=changes[pk]) for pk, c in touched.items()),
        ]
    )
    # STOP / START (and the tenant's words for them) change the contact's consent and are confirmed;
    # the bot does not also answer them.
    keywords = handle_consent_keywords(messages)
    for message, first in zip(messages, first_inbound, strict=True):
        if message.pk in keywords or message.pk in csat_answers:
            continue
        if message.conversation.bot_active and message.type != Message.Type.REACTION:
            answer_as_bot(message=message, first_inbound=first)
    reopened = {pk for pk, change in changes.items() if change == "reopened"}
    # SLA clocks start for new conversations and restart for reopened ones (only when policies exist).
    starting = [c for pk, c in touched.items() if pk in reopened or c in created]
    start_sla_clocks(conversations=starting, reopened=reopened)
    # Auto-assignment: conversations that entered the agents' queue (no bot) or were reopened.
    route_inbound(conversations=list(touched.values()), reopened=reopened)
    return messages


STATUS_TIME_FIELD = {"sent": "sent_at", "delivered": "delivered_at", "read": "read_at", "played": "read_at"}


def apply_message_status(
    *,
    message: Message,
    status: str,
    timestamp: dt.datetime,
    error_code: int | None = None,
    error_title: str = "",
    error_details: str = "",
) -> bool:
    """Merge a delivery status monotonically; returns whether anything changed. The caller locks the row."""
    changed = merge_message_status(
        message=message,
        status=status,
        timestamp=timestamp,
        error_code=error_code,
        error_title=error_title,
        error_details=error_details,
    )
    if changed:
        message.save(update_fields=changed)
        events.message_updated(message)
    return bool(changed)


def merge_message_status(
    *,
    message: Message,
    status: str,
    timestamp: dt.datetime,
    error_code: int | None = None,
    error_title: str = "",
    error_details: str = "",
) -> list[str]:
    """apply_message_status without saving or publishing (a caller applying many writes them at once):
    sets the fields on `message` and returns the changed ones."""
    rank = Message.STATUS_RANK
    changed: list[str] = []
    time_field = STATUS_TIME_FIELD.get(status)
    if time_field and getattr(message, time_field) is None:
        setattr(message, time_field, timestamp)
        changed.append(time_field)
    if status in rank and rank[status] > rank.get(message.status, 0):
        message.status = status
        changed.append("status")
        if status == Message.Status.FAILED:
            message.error_code = error_code
            message.error_title = error_title[:300]
            message.error_details = error_details
            changed += ["error_code", "error_title", "error_details"]
    return changed
