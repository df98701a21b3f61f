"""Retrying a failed outgoing message."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from conversations import channels, events
from conversations.errors import MessageRejected
from conversations.models import Conversation, Message
from conversations.services.drafts import Outbound
from conversations.services.reply import after_outbound, insert_outbound
from conversations.services.sending import (
    TemplateRef,
    check_channel,
    check_recipient,
    check_window,
    enqueue_send,
)
from crm.models import Contact


@transaction.atomic
def retry_message(*, message: Message, user: Any) -> Message:
    """A user's retry of a failed outbound message. One Meta accepted (it has a wamid) is never resent:
    a copy is queued instead."""
    # Locks in the inbound round's order: the contact, then the message, then the conversation.
    contact_id = Conversation.objects.filter(pk=message.conversation_id).values_list("contact_id", flat=True)
    contact = Contact.objects.select_for_update().get(pk__in=contact_id)
    message = Message.objects.select_for_update().get(pk=message.pk)
    if message.direction != Message.Direction.OUTBOUND or message.status != Message.Status.FAILED:
        raise MessageRejected("not_retryable", "Only a failed outgoing message can be retried.")
    conversation = Conversation.objects.select_for_update().get(pk=message.conversation_id)
    conversation.contact = contact
    message.conversation = conversation
    check_channel(conversation)
    template: TemplateRef | None = None
    if message.type == Message.Type.TEMPLATE:
        template_id = (message.payload or {}).get("template_id")
        if template_id:
            category = channels.adapter_for(conversation.channel).template_category(template_id=template_id)
            template = TemplateRef(template_id, category)
    check_recipient(conversation, template=template)
    if message.type != Message.Type.TEMPLATE:
        check_window(conversation)
    if message.wamid:
        outbound = Outbound(message.type, message.payload, message.text, message.preview, False)
        copy, _ = insert_outbound(
            conversation=conversation,
            outbound=outbound,
            sender=user,
            idempotency_key=None,
            reply_to=message.reply_to,
            bulk=message.bulk,
        )
        events.message_created(copy)
        after_outbound(conversation, copy, replier=None)
        enqueue_send(copy)
        return copy
    message.status = Message.Status.QUEUED
    message.error_code = None
    message.error_title = ""
    message.error_details = ""
    message.send_started_at = None
    message.next_attempt_at = None
    message.send_attempts = 0
    message.timestamp = timezone.now()
    message.save(
        update_fields=[
            "status",
            "error_code",
            "error_title",
            "error_details",
            "send_started_at",
            "next_attempt_at",
            "send_attempts",
            "timestamp",
        ]
    )
    events.message_updated(message)
    enqueue_send(message)
    return message
