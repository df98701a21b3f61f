"""The number's and the contact's sending rules, and handing a queued message to the channel."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db import transaction

from conversations import channels, rules
from conversations.errors import MessageRejected
from conversations.models import Conversation, Message
from crm.models import Contact
from tenants.db import connection


def check_channel(conversation: Conversation) -> Any:
    """The number to send from, when it can send (a number is the channel app's row until it moves)."""
    channel = conversation.channel
    if channel is None:
        raise MessageRejected("no_channel", "This conversation has no WhatsApp number to send from.")
    if not channel.is_active:
        raise MessageRejected(
            "channel_inactive",
            channel.unavailable_reason,
            {"channel": channel.pk, "status": channel.status},
        )
    return channel


def check_window(conversation: Conversation) -> None:
    """Free-form messages within the 24-hour window, where the number's provider has one."""
    if not channels.supports(conversation.channel, channels.SERVICE_WINDOW):
        return
    if not rules.is_window_open(conversation.contact.last_inbound_at):
        raise MessageRejected(
            "outside_window",
            "The 24-hour customer-service window is closed: the contact has not written in the last 24 "
            "hours. Send an approved template instead.",
            {"last_inbound_at": conversation.contact.last_inbound_at},
        )


def enqueue_send(message: Message) -> None:
    """On commit, hand the message to its number's channel, which queues the send (agent replies never
    wait on bulk)."""
    adapter = channels.adapter_for(message.conversation.channel)
    # The schema is captured now: in a worker the on-commit hook may run after a schema_context exited.
    message_id, bulk, schema = message.pk, message.bulk, connection.schema_name
    transaction.on_commit(lambda: adapter.enqueue_send(message_id=message_id, bulk=bulk, schema=schema))


@dataclass(frozen=True)
class TemplateRef:
    """The template a message sends, as the consent rules see it."""

    pk: int | None
    category: str


def check_recipient(conversation: Conversation, *, template: TemplateRef | None = None) -> None:
    """Blocks and consent, read from the locked contact."""
    contact = conversation.contact
    if contact.blocked:
        raise MessageRejected(
            "contact_blocked",
            "This contact is blocked: nothing can be sent to them. Unblock them in their contact details "
            "first.",
            {"contact": contact.pk},
        )
    if (
        template is not None
        and (template.category or "").upper() == "MARKETING"
        and contact.marketing_consent == Contact.MarketingConsent.OPTED_OUT
    ):
        raise MessageRejected(
            "opted_out",
            "This contact opted out of marketing messages: a marketing template cannot be sent to them. "
            "Utility and authentication templates, and replies within the 24-hour window, still can.",
            {"contact": contact.pk, "template": template.pk},
        )


def check_sendable(*, conversation: Conversation) -> Any:
    """The number's and the contact's rules, before work that costs (a media upload to Meta); send_reply
    checks them again under lock. Returns the number to send from."""
    channel = check_channel(conversation)
    check_recipient(conversation)
    return channel
