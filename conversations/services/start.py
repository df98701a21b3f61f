"""Starting a conversation: a person writes first to a contact on a number."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from conversations import bot, events
from conversations.errors import MessageRejected
from conversations.models import Conversation, Message
from conversations.selectors import Viewer, viewer_for
from conversations.services.drafts import Draft
from conversations.services.reply import send_reply
from crm.models import Contact


@transaction.atomic
def start_conversation(
    *, contact: Contact, channel: Any, draft: Draft, by: Any
) -> tuple[Conversation, Message]:
    """Write to a contact on a number: into their open conversation there, or a new one (usually with
    a template, the window being closed). A conversation a person starts is theirs: the bot is off and,
    with the workspace's auto-assignment on, it is assigned to them. Refused sends leave nothing behind
    (not even the new conversation). WorkflowError not_found when the open conversation is one the
    caller may not see."""
    if draft.idempotency_key:
        existing = Message.objects.filter(idempotency_key=draft.idempotency_key).first()
        if existing is not None:
            if existing.conversation.contact_id != contact.pk:
                raise MessageRejected(
                    "idempotency_key_reused", "That idempotency key was used for another conversation."
                )
            return existing.conversation, existing
    # The inbound round's lock order: the contact, then its conversation.
    contact = Contact.objects.select_for_update().get(pk=contact.pk)
    conversation = (
        Conversation.objects.select_for_update()
        .filter(contact=contact, channel=channel)
        .exclude(status=Conversation.Status.RESOLVED)
        .order_by("-id")
        .first()
    )
    if conversation is None:
        viewer = by if isinstance(by, Viewer) else viewer_for(by)
        user = viewer.user
        assignee = user if user is not None and bot.load_settings().assign_on_reply else None
        conversation = Conversation.objects.create(
            contact=contact, channel=channel, bot_active=False, assignee=assignee
        )
        events.conversation_updated(conversation, change="created")
    conversation.contact = contact
    conversation.channel = channel
    message = send_reply(conversation=conversation, draft=draft, by=by, locked=True)
    return conversation, message
