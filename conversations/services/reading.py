"""Reading: unread counts, read receipts and the typing indicator the customer sees."""

from __future__ import annotations

from typing import Any

from django.core.cache import cache  # keys carry the tenant schema (django_tenants.cache.make_key)
from django.db import transaction
from django.utils import timezone

from conversations import channels, events, rules
from conversations.errors import MessageRejected
from conversations.models import Conversation, Message
from tenants.db import connection


@transaction.atomic
def mark_as_read(*, message: Message, user: Any = None) -> Message:
    """Tell Meta the contact's message was read (blue ticks on their side) and clear the unread count."""
    if message.direction != Message.Direction.INBOUND or not message.wamid:
        raise MessageRejected("invalid_read_target", "Only received messages can be marked as read.")
    if message.read_at is None:
        message.read_at = timezone.now()
    mark_read(message.conversation, message.pk)
    return message


def mark_read(
    conversation: Conversation, message_id: int | None, *, typing: bool = False, clear_unread: bool = True
) -> None:
    """Clear the conversation's unread count and, given a message received from WhatsApp, mark it read and
    queue its read receipt (with `typing`, Meta's typing indicator too). Plain UPDATEs: marking read is on
    the inbox's hot path. `clear_unread=False`: the customer sees it read, the agents still see it new
    (the bot read it, not a person)."""
    now = timezone.now()
    if message_id is not None:
        Message.objects.filter(pk=message_id, read_at__isnull=True).update(read_at=now)
        channel = conversation.channel
        if channel is not None and channels.supports(channel, channels.READ_RECEIPTS):
            adapter = channels.adapter_for(channel)
            typing = typing and channels.supports(channel, channels.TYPING)
            schema = connection.schema_name
            transaction.on_commit(
                lambda: adapter.enqueue_read_receipt(message_id=message_id, schema=schema, typing=typing)
            )
    if clear_unread and conversation.unread_count:
        Conversation.objects.filter(pk=conversation.pk).update(unread_count=0, updated_at=now)
        conversation.unread_count = 0
        conversation.updated_at = now
        events.conversation_updated(conversation, change="read")


# Meta shows "typing…" for up to 25 s per request: one request per conversation in this long is enough
# however many agents type and however often their pages ask.
TYPING_INTERVAL_SECONDS = 20


@transaction.atomic
def indicate_typing(*, conversation: Conversation, by: Any = None) -> bool:
    """A person (`by`, a user) or the bot (`by=None`) is composing a reply: the customer sees "typing…"
    (Meta sends it only with a read of a message of theirs: their latest). Only for a message inside the
    24-hour window, to which a reply can go (any message on a number whose provider has no window); at
    most once per TYPING_INTERVAL_SECONDS per conversation (Meta shows it for 25 s or until the reply).
    True when one was queued. The bot's typing leaves the agents' unread count alone: no person has read
    the conversation."""
    if conversation.channel_id is None:
        return False
    received = Message.objects.filter(
        conversation=conversation, direction=Message.Direction.INBOUND, wamid__isnull=False
    )
    if channels.supports(conversation.channel, channels.SERVICE_WINDOW):
        received = received.filter(timestamp__gte=timezone.now() - rules.CUSTOMER_SERVICE_WINDOW)
    latest = received.order_by("-timestamp", "-id").values_list("pk", flat=True).first()
    if latest is None:
        return False
    if not cache.add(f"wa:typing:{conversation.pk}", 1, timeout=TYPING_INTERVAL_SECONDS):
        return False
    mark_read(conversation, latest, typing=True, clear_unread=by is not None)
    return True
