"""Writes for conversations and messages. Each write that others should see calls conversations.events."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db import transaction
from django.utils import timezone

from conversations import events
from conversations.models import Conversation, Message
from conversations.selectors import Viewer, can_see, viewer_for
from crm.models import Agent, Tag, Team

# ---------------------------------------------------------------------------------------------------
# Messages: inbound storage, outbound queueing and sending, statuses (the WhatsApp channel's side).
# ---------------------------------------------------------------------------------------------------


# (messages section ends)


# ---------------------------------------------------------------------------------------------------
# Conversation workflow: assignment, status, snooze, tags, unread, bot handover (the inbox's side).
# ---------------------------------------------------------------------------------------------------


class WorkflowError(Exception):
    """A workflow action that cannot be done; `code` is stable for API clients and tests."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _name(user: Any) -> str:
    if user is None:
        return "The bot"
    return str(user.get_full_name() or user.email)


def _record_system_event(*, conversation: Conversation, text: str, by: Any = None) -> Message:
    """A line in the thread saying what happened (assignment, status, bot handover): the audit trail
    agents read. It is never sent to WhatsApp."""
    message = Message.objects.create(
        conversation=conversation,
        direction=Message.Direction.OUTBOUND,
        type=Message.Type.SYSTEM,
        text=text,
        preview=text[:200],
        status=Message.Status.SENT,
        sender=by,
        timestamp=timezone.now(),
    )
    events.message_created(message)
    return message


def _check_can_act(conversation: Conversation, by: Any) -> Viewer:
    viewer = viewer_for(by)
    if not can_see(viewer, conversation):
        raise WorkflowError("not_found", "This conversation does not exist or is not yours to see.")
    return viewer


@transaction.atomic
def assign_conversation(
    *, conversation: Conversation, assignee: Any | None, team: Team | None, by: Any
) -> Conversation:
    """Assign to an agent and/or a team (None clears). Agents may hand over only what is theirs or
    unassigned; supervisors and admins may assign anything."""
    viewer = _check_can_act(conversation, by)
    if not viewer.can_supervise and conversation.assignee_id not in (None, by.pk):
        raise WorkflowError("forbidden", "Only a supervisor can reassign another agent's conversation.")
    if assignee is not None and not Agent.objects.filter(user_id=assignee.pk, user__is_active=True).exists():
        raise WorkflowError("invalid_assignee", "That person is not an active agent of this workspace.")
    previously = (conversation.assignee_id, conversation.team_id)
    if previously == (getattr(assignee, "pk", None), getattr(team, "pk", None)):
        return conversation
    conversation.assignee = assignee
    conversation.team = team
    conversation.save(update_fields=["assignee", "team", "updated_at"])
    if assignee is None and team is None:
        text = f"{_name(by)} unassigned this conversation"
    else:
        target = " / ".join(str(x) for x in (assignee and _name(assignee), team and team.name) if x)
        text = f"{_name(by)} assigned this conversation to {target}"
    _record_system_event(conversation=conversation, text=text, by=by)
    events.conversation_updated(conversation, change="assigned", previously=previously)
    return conversation


@transaction.atomic
def take_conversation(*, conversation: Conversation, by: Any) -> Conversation:
    """The agent takes it: assigned to them and the bot stops answering (takeover)."""
    _check_can_act(conversation, by)
    previously = (conversation.assignee_id, conversation.team_id)
    if conversation.assignee_id not in (None, by.pk) and not viewer_for(by).can_supervise:
        raise WorkflowError("forbidden", "This conversation is already assigned to someone else.")
    conversation.assignee = by
    was_bot = conversation.bot_active
    conversation.bot_active = False
    conversation.save(update_fields=["assignee", "bot_active", "updated_at"])
    text = f"{_name(by)} took this conversation"
    if was_bot:
        text += " over from the bot"
    _record_system_event(conversation=conversation, text=text, by=by)
    events.conversation_updated(conversation, change="assigned", previously=previously)
    return conversation


@transaction.atomic
def set_conversation_status(*, conversation: Conversation, status: str, by: Any) -> Conversation:
    _check_can_act(conversation, by)
    if status not in Conversation.Status.values or status == Conversation.Status.SNOOZED:
        raise WorkflowError(
            "invalid_status", "Status must be open, pending or resolved (snooze needs a time)."
        )
    if conversation.status == status:
        return conversation
    conversation.status = status
    conversation.snoozed_until = None
    conversation.resolved_at = timezone.now() if status == Conversation.Status.RESOLVED else None
    conversation.save(update_fields=["status", "snoozed_until", "resolved_at", "updated_at"])
    label = Conversation.Status(status).label.lower()
    _record_system_event(conversation=conversation, text=f"{_name(by)} marked this {label}", by=by)
    events.conversation_updated(conversation, change="status")
    return conversation


@transaction.atomic
def snooze_conversation(*, conversation: Conversation, until: dt.datetime, by: Any) -> Conversation:
    """Hidden from the open list until `until` (or the contact's next message), then open again."""
    _check_can_act(conversation, by)
    if until <= timezone.now():
        raise WorkflowError("invalid_snooze", "Snooze until a time in the future.")
    conversation.status = Conversation.Status.SNOOZED
    conversation.snoozed_until = until
    conversation.save(update_fields=["status", "snoozed_until", "updated_at"])
    _record_system_event(
        conversation=conversation,
        text=f"{_name(by)} snoozed this until {timezone.localtime(until):%Y-%m-%d %H:%M %Z}",
        by=by,
    )
    events.conversation_updated(conversation, change="status")
    return conversation


def wake_snoozed_conversations(*, now: dt.datetime | None = None) -> int:
    """Reopen snoozed conversations whose time has come (the scheduler calls this every minute)."""
    due = list(
        Conversation.objects.filter(
            status=Conversation.Status.SNOOZED, snoozed_until__lte=now or timezone.now()
        ).values_list("pk", flat=True)[:1000]
    )
    for pk in due:
        with transaction.atomic():
            conversation = Conversation.objects.select_for_update().get(pk=pk)
            if conversation.status != Conversation.Status.SNOOZED:
                continue
            conversation.status = Conversation.Status.OPEN
            conversation.snoozed_until = None
            conversation.save(update_fields=["status", "snoozed_until", "updated_at"])
            _record_system_event(conversation=conversation, text="Snooze ended: open again")
            events.conversation_updated(conversation, change="status")
    return len(due)


@transaction.atomic
def set_conversation_tags(*, conversation: Conversation, tags: list[Tag], by: Any) -> Conversation:
    _check_can_act(conversation, by)
    conversation.tags.set(tags)
    conversation.save(update_fields=["updated_at"])
    events.conversation_updated(conversation, change="tagged")
    return conversation


@transaction.atomic
def mark_conversation_unread(*, conversation: Conversation, by: Any) -> Conversation:
    _check_can_act(conversation, by)
    conversation.unread_count = max(conversation.unread_count, 1)
    conversation.save(update_fields=["unread_count", "updated_at"])
    events.conversation_updated(conversation, change="unread")
    return conversation


@transaction.atomic
def mark_conversation_read(*, conversation: Conversation, by: Any) -> Conversation:
    """Opening a conversation clears its unread count for everyone (the count is the team's, not one
    agent's: whoever reads the customer has read them)."""
    if conversation.unread_count == 0:
        return conversation
    conversation.unread_count = 0
    conversation.save(update_fields=["unread_count", "updated_at"])
    events.conversation_updated(conversation, change="read")
    return conversation


@transaction.atomic
def set_bot_active(*, conversation: Conversation, active: bool, by: Any) -> Conversation:
    """Hand the conversation to the bot (active) or take it back for humans."""
    _check_can_act(conversation, by)
    if conversation.bot_active == active:
        return conversation
    conversation.bot_active = active
    conversation.save(update_fields=["bot_active", "updated_at"])
    text = (
        f"{_name(by)} handed this conversation to the bot"
        if active
        else f"{_name(by)} took over from the bot"
    )
    _record_system_event(conversation=conversation, text=text, by=by)
    events.conversation_updated(conversation, change="bot")
    return conversation


@transaction.atomic
def add_private_note(*, conversation: Conversation, text: str, author: Any) -> Message:
    """A note only staff see: stored in the thread, never sent to WhatsApp."""
    _check_can_act(conversation, author)
    text = text.strip()
    if not text:
        raise WorkflowError("empty_note", "Write something in the note.")
    if len(text) > 4096:
        raise WorkflowError("note_too_long", "A note can be at most 4096 characters.")
    note = Message.objects.create(
        conversation=conversation,
        direction=Message.Direction.OUTBOUND,
        type=Message.Type.NOTE,
        text=text,
        preview=text[:200],
        status=Message.Status.SENT,
        sender=author,
        timestamp=timezone.now(),
    )
    events.message_created(note)
    return note


@transaction.atomic
def record_agent_reply(*, conversation: Conversation, by: Any) -> Conversation:
    """After an agent's own message: the bot stops for this conversation and the first response time
    is recorded once."""
    fields = []
    if conversation.bot_active:
        conversation.bot_active = False
        fields.append("bot_active")
    if conversation.first_response_at is None:
        conversation.first_response_at = timezone.now()
        fields.append("first_response_at")
    if fields:
        conversation.save(update_fields=[*fields, "updated_at"])
        if "bot_active" in fields:
            _record_system_event(
                conversation=conversation, text=f"{_name(by)} replied: the bot stopped", by=by
            )
        events.conversation_updated(conversation, change="bot" if "bot_active" in fields else "updated")
    return conversation


def handle_new_inbound_message(*, message: Message) -> None:
    """Called by the WhatsApp side for every new inbound message, after it is stored: a snoozed
    conversation wakes up, and the bot answers while it is on."""
    from conversations import bot

    conversation = message.conversation
    if conversation.status == Conversation.Status.SNOOZED:
        with transaction.atomic():
            conversation.status = Conversation.Status.OPEN
            conversation.snoozed_until = None
            conversation.save(update_fields=["status", "snoozed_until", "updated_at"])
            events.conversation_updated(conversation, change="status")
    if conversation.bot_active:
        bot.answer(message=message)


# (workflow section ends)
