"""The one reply path. Whoever writes into a conversation (an agent in the inbox, an API client, the
bot, a consent confirmation) hands a Draft to send_reply, which applies every rule in one transaction:
who may reply, the 24-hour window, consent and blocks, storing, stopping the bot, first-response
bookkeeping and auto-assignment, the realtime events, and queueing the send on commit."""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from conversations import bot, events
from conversations.errors import MessageRejected, WorkflowError
from conversations.models import Conversation, Message
from conversations.selectors import Viewer, can_see, viewer_for
from conversations.services.common import actor_name, record_system_event
from conversations.services.drafts import DRAFT_KINDS, Draft, Outbound, prepare_draft
from conversations.services.sending import check_channel, check_recipient, check_window, enqueue_send
from conversations.services.workflow import add_private_note
from crm.models import Contact


def _lock_for_reply(conversation: Conversation) -> None:
    """Fresh contact and conversation rows under lock, in the inbound round's order (contacts, then
    conversations): the window, consent and block are read as they are now, and a concurrent inbound
    message or workflow change waits instead of being overwritten."""
    contact = Contact.objects.select_for_update().get(pk=conversation.contact_id)
    conversation.refresh_from_db(from_queryset=Conversation.objects.select_for_update())
    conversation.contact = contact


def _replier(conversation: Conversation, by: Any) -> Viewer:
    """The role check of a human reply: an agent of this workspace (or an integration key) who still
    sees the conversation as locked now (it may have been reassigned since the caller loaded it)."""
    viewer = by if isinstance(by, Viewer) else viewer_for(by)
    if not can_see(viewer, conversation):
        raise WorkflowError("not_found", "This conversation does not exist or is not yours to see.")
    return viewer


def _existing_by_key(conversation: Conversation, key: str | None) -> Message | None:
    if not key:
        return None
    existing = Message.objects.filter(idempotency_key=key).first()
    if existing is not None and existing.conversation_id != conversation.pk:
        raise MessageRejected(
            "idempotency_key_reused", "That idempotency key was used for another conversation."
        )
    return existing


def insert_outbound(
    *,
    conversation: Conversation,
    outbound: Outbound,
    sender: Any,
    idempotency_key: str | None,
    reply_to: Message | None,
    bulk: bool,
) -> tuple[Message, bool]:
    """The queued row; (row, False) when the same idempotency key raced in from another request."""
    now = timezone.now()
    try:
        with transaction.atomic():
            message = Message.objects.create(
                conversation=conversation,
                direction=Message.Direction.OUTBOUND,
                type=outbound.type,
                text=outbound.text,
                payload=outbound.payload,
                preview=outbound.preview[:200],
                status=Message.Status.QUEUED,
                reply_to=reply_to,
                sender=sender if getattr(sender, "pk", None) else None,
                idempotency_key=idempotency_key or None,
                bulk=bulk,
                timestamp=now,
            )
    except IntegrityError:
        existing = (
            Message.objects.filter(idempotency_key=idempotency_key).first() if idempotency_key else None
        )
        if existing is None:
            raise
        return existing, False
    return message, True


@transaction.atomic
def send_reply(
    *,
    conversation: Conversation,
    draft: Draft,
    by: Any = None,
    automated: bool = False,
    locked: bool = False,
) -> Message:
    """Write `draft` into the conversation. `by`: the agent (a user) or a Viewer (an integration key);
    `automated`: the bot or the system (no role check, and it neither stops the bot nor counts as a
    response). `locked`: the caller already holds the contact's and conversation's row locks with
    fresh rows (the inbound round), so none are taken again.

    An agent's reply (not a reaction or a note) stops the bot, records the first response and who sent
    it, and assigns an unassigned conversation to them when the workspace's setting says so.
    Raises MessageRejected (a sending rule: window, consent, block, channel...) or WorkflowError."""
    if by is None and not automated:
        # A human reply without a human would skip the role check: refuse the call, not the customer.
        raise TypeError("send_reply needs `by` (an agent or a Viewer) unless it is automated.")
    if draft.kind not in DRAFT_KINDS:
        raise MessageRejected("invalid_type", f"Cannot send a draft of kind '{draft.kind}'.")
    existing = _existing_by_key(conversation, draft.idempotency_key)
    if existing is not None:
        return existing
    if not locked:
        _lock_for_reply(conversation)
    viewer = None if automated else _replier(conversation, by)
    user = viewer.user if viewer is not None else None
    if draft.reply_to is not None and draft.reply_to.conversation_id != conversation.pk:
        raise MessageRejected("invalid_reply_to", "The quoted message belongs to another conversation.")
    if draft.kind == "note":
        return add_private_note(conversation=conversation, text=draft.text, author=user, checked=True)
    outbound = prepare_draft(conversation, draft)
    check_channel(conversation)
    check_recipient(conversation, template=outbound.template)
    if outbound.free_form:
        check_window(conversation)
    message, created = insert_outbound(
        conversation=conversation,
        outbound=outbound,
        sender=user,
        idempotency_key=draft.idempotency_key,
        reply_to=draft.target if draft.kind == "reaction" else draft.reply_to,
        bulk=draft.bulk,
    )
    if not created:
        return message
    events.message_created(message)
    after_outbound(
        conversation,
        message,
        replier=viewer if draft.kind != "reaction" else None,
    )
    enqueue_send(message)
    if draft.kind == "media" and draft.media is not None and draft.media.message_id is None:
        type(draft.media).objects.filter(pk=draft.media.pk, message__isnull=True).update(message=message)
    if draft.kind == "reaction" and draft.target is not None:
        set_reaction(target=draft.target, side="business", emoji=draft.emoji)
    return message


def after_outbound(conversation: Conversation, message: Message, *, replier: Viewer | None) -> None:
    """The conversation after a message went out: its activity time, and for a human reply the bot's
    handover, the first response and the auto-assignment. One UPDATE of the locked row, one event."""
    fields = ["last_message_at"]
    conversation.last_message_at = message.timestamp
    change = "updated"
    previously = (conversation.assignee_id, conversation.team_id)
    lines: list[str] = []
    if replier is not None:
        user = replier.user
        name = actor_name(replier)
        if conversation.first_response_at is None:
            conversation.first_response_at = message.timestamp
            conversation.first_response_by = user
            fields += ["first_response_at", "first_response_by"]
        if conversation.bot_active:
            conversation.bot_active = False
            fields.append("bot_active")
            change = "bot"
            lines.append(f"{name} replied: the bot stopped")
        if user is not None and conversation.assignee_id is None and bot.load_settings().assign_on_reply:
            conversation.assignee = user
            fields.append("assignee")
            change = "assigned"
            lines.append(f"{name} replied and was assigned this conversation")
    conversation.save(update_fields=[*fields, "updated_at"])
    Contact.objects.filter(pk=conversation.contact_id).update(last_outbound_at=message.timestamp)
    for line in lines:
        record_system_event(conversation=conversation, text=line, by=replier.user if replier else None)
    events.conversation_updated(
        conversation, change=change, previously=previously if change == "assigned" else None
    )


def set_reaction(*, target: Message, side: str, emoji: str) -> None:
    reactions = dict(target.reactions or {})
    if emoji:
        reactions[side] = emoji
    else:
        reactions.pop(side, None)
    target.reactions = reactions
    target.save(update_fields=["reactions"])
    events.message_updated(target)
