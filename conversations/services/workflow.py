"""Conversation workflow: assignment, status, snooze, tags, unread, bot handover, private notes (the
inbox's and the API's side). Every write re-reads the conversation under its row lock first."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import F
from django.urls import reverse
from django.utils import timezone

from conversations import events, rules
from conversations.errors import WorkflowError
from conversations.models import Conversation, Message
from conversations.selectors import Viewer, viewer_for
from conversations.services.common import (
    actor_name,
    check_can_act,
    person_name,
    record_system_event,
    store_internal_message,
    user_of,
)
from conversations.services.mentions import record_mentions
from conversations.services.reading import mark_read
from crm.models import Agent, Tag, Team
from crm.services.agents import ROOM_FREED_HOOKS
from crm.services.notifications import notify

# Auto-assignment (services.routing, which builds on this module) registers here in AppConfig.ready():
# a conversation the bot hands over entered the agents' queue (called under its row lock).
QUEUE_ENTERED_HOOKS: list[Callable[..., Any]] = []
# Called with a conversation just resolved (CSAT asks for a rating: conversations.services.csat, which sends
# through the reply path and so cannot be imported here; registered in ConversationsConfig.ready()).
RESOLVED_HOOKS: list[Callable[..., Any]] = []

# "The assignee as the caller's row was loaded": the default expectation of take/assign.
AS_LOADED: Any = object()
_AS_LOADED = AS_LOADED


def _taken_meanwhile(seen: int | None, now: int | None, viewer: Viewer) -> bool:
    """Someone else got the conversation between the caller's look at it and this lock."""
    return now != seen and now is not None and now != viewer.user_id


@transaction.atomic
def assign_conversation(
    *,
    conversation: Conversation,
    assignee: Any | None,
    team: Team | None,
    by: Any,
    seen_assignee_id: int | None = _AS_LOADED,
) -> Conversation:
    """Assign to an agent and/or a team (None clears). Agents may hand over only what is theirs or
    unassigned; supervisors and admins may assign anything. `seen_assignee_id`: the assignee the caller
    saw (default: as the caller's row was loaded); when an agent's unassigned conversation was taken
    meanwhile, 409 already_assigned."""
    seen = conversation.assignee_id if seen_assignee_id is _AS_LOADED else seen_assignee_id
    viewer = _check_can_act_or_taken(conversation, by, seen)
    if not viewer.can_supervise and conversation.assignee_id not in (None, viewer.user_id):
        if _taken_meanwhile(seen, conversation.assignee_id, viewer):
            raise _already_assigned(conversation)
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
        text = f"{actor_name(viewer)} unassigned this conversation"
    else:
        target = " / ".join(str(x) for x in (assignee and person_name(assignee), team and team.name) if x)
        text = f"{actor_name(viewer)} assigned this conversation to {target}"
    record_system_event(conversation=conversation, text=text, by=viewer)
    events.conversation_updated(conversation, change="assigned", previously=previously)
    if assignee is not None and assignee.pk not in (previously[0], viewer.user_id):
        notify_assignee(conversation=conversation, assignee=assignee, by_name=actor_name(viewer))
    return conversation


def notify_assignee(*, conversation: Conversation, assignee: Any, by_name: str) -> None:
    """The notification centre tells an agent someone else gave them a conversation (in the caller's
    transaction: it exists exactly when the assignment does)."""
    notify(
        recipients=[assignee],
        kind="assignment",
        title=f"{by_name} assigned you the conversation with {conversation.contact}",
        url=reverse("inbox:conversation", args=[conversation.pk]),
        conversation=conversation,
    )


def _already_assigned(conversation: Conversation) -> WorkflowError:
    holder = conversation.assignee
    who = person_name(holder) if holder is not None else "someone else"
    return WorkflowError("already_assigned", f"{who} has just taken this conversation.")


@transaction.atomic
def take_conversation(
    *, conversation: Conversation, by: Any, seen_assignee_id: int | None = _AS_LOADED
) -> Conversation:
    """The agent takes it: assigned to them and the bot stops answering (takeover).

    Two agents taking the same unassigned conversation at once: the row lock makes the second wait,
    and it then finds the conversation taken and answers 409 already_assigned, changing nothing.
    `seen_assignee_id` is the assignee the caller saw (default: as the caller's row was loaded); a
    supervisor may take over another agent's conversation only when that is what they saw."""
    seen = conversation.assignee_id if seen_assignee_id is _AS_LOADED else seen_assignee_id
    viewer = _check_can_act_or_taken(conversation, by, seen)
    if viewer.user is None:
        raise WorkflowError("forbidden", "An integration key is no person: assign to an agent instead.")
    if conversation.assignee_id == viewer.user_id and not conversation.bot_active:
        return conversation
    if _taken_meanwhile(seen, conversation.assignee_id, viewer):
        raise _already_assigned(conversation)
    if conversation.assignee_id not in (None, viewer.user_id) and not viewer.can_supervise:
        raise WorkflowError("forbidden", "This conversation is already assigned to someone else.")
    previously = (conversation.assignee_id, conversation.team_id)
    conversation.assignee = viewer.user
    was_bot = conversation.bot_active
    conversation.bot_active = False
    conversation.save(update_fields=["assignee", "bot_active", "updated_at"])
    text = f"{actor_name(viewer)} took this conversation"
    if was_bot:
        text += " over from the bot"
    record_system_event(conversation=conversation, text=text, by=viewer)
    events.conversation_updated(conversation, change="assigned", previously=previously)
    return conversation


def _check_can_act_or_taken(conversation: Conversation, by: Any, seen: int | None) -> Viewer:
    """Like check_can_act, but an agent who lost sight of the conversation because someone took it
    meanwhile learns that (409), rather than that it does not exist: they saw it a moment ago."""
    try:
        return check_can_act(conversation, by)
    except WorkflowError:
        viewer = by if isinstance(by, Viewer) else viewer_for(by)
        if _taken_meanwhile(seen, conversation.assignee_id, viewer):
            raise _already_assigned(conversation) from None
        raise


@transaction.atomic
def set_conversation_status(*, conversation: Conversation, status: str, by: Any) -> Conversation:
    if status not in Conversation.Status.values or status == Conversation.Status.SNOOZED:
        raise WorkflowError(
            "invalid_status", "Status must be open, pending or resolved (snooze needs a time)."
        )
    viewer = check_can_act(conversation, by)
    if conversation.status == status:
        return conversation
    conversation.status = status
    conversation.snoozed_until = None
    conversation.resolved_at = timezone.now() if status == Conversation.Status.RESOLVED else None
    conversation.save(update_fields=["status", "snoozed_until", "resolved_at", "updated_at"])
    if status == Conversation.Status.RESOLVED:
        for resolved_hook in RESOLVED_HOOKS:
            resolved_hook(conversation)
    if status == Conversation.Status.RESOLVED and conversation.assignee_id is not None:
        # The agent has room for one more: auto-assignment fills it from the queue once this commits.
        for hook in ROOM_FREED_HOOKS:
            transaction.on_commit(hook)
    label = Conversation.Status(status).label.lower()
    record_system_event(
        conversation=conversation, text=f"{actor_name(viewer)} marked this {label}", by=viewer
    )
    events.conversation_updated(conversation, change="status")
    return conversation


@transaction.atomic
def snooze_conversation(*, conversation: Conversation, until: dt.datetime, by: Any) -> Conversation:
    """Hidden from the open list until `until` (or the contact's next message), then open again."""
    if until <= timezone.now():
        raise WorkflowError("invalid_snooze", "Snooze until a time in the future.")
    viewer = check_can_act(conversation, by)
    conversation.status = Conversation.Status.SNOOZED
    conversation.snoozed_until = until
    conversation.save(update_fields=["status", "snoozed_until", "updated_at"])
    record_system_event(
        conversation=conversation,
        text=f"{actor_name(viewer)} snoozed this until {timezone.localtime(until):%Y-%m-%d %H:%M %Z}",
        by=viewer,
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
            record_system_event(conversation=conversation, text="Snooze ended: open again")
            events.conversation_updated(conversation, change="status")
    return len(due)


@transaction.atomic
def set_conversation_tags(*, conversation: Conversation, tags: list[Tag], by: Any) -> Conversation:
    check_can_act(conversation, by)
    conversation.tags.set(tags)
    conversation.save(update_fields=["updated_at"])
    events.conversation_updated(conversation, change="tagged")
    return conversation


@transaction.atomic
def mark_conversation_unread(*, conversation: Conversation, by: Any) -> Conversation:
    check_can_act(conversation, by)
    if conversation.unread_count:
        return conversation
    # A conditional increment: the count is the inbound round's, never written back from a stale read.
    Conversation.objects.filter(pk=conversation.pk, unread_count=0).update(
        unread_count=F("unread_count") + 1, updated_at=timezone.now()
    )
    conversation.refresh_from_db(fields=["unread_count", "updated_at"])
    events.conversation_updated(conversation, change="unread")
    return conversation


@transaction.atomic
def mark_conversation_read(*, conversation: Conversation, by: Any) -> Conversation:
    """A person has the thread in front of them (the page asks explicitly once the thread is visible;
    opening its URL does not, so a link preview or a prefetch gives no customer blue ticks): the unread
    count clears for everyone (the count is the team's, not one agent's: whoever reads the customer has
    read them) and Meta is told."""
    if conversation.unread_count == 0:
        return conversation
    latest = None
    if conversation.channel_id is not None:
        # Blue ticks on the customer's phone: Meta marks everything up to this message as read.
        latest = (
            Message.objects.filter(
                conversation=conversation, direction=Message.Direction.INBOUND, wamid__isnull=False
            )
            .order_by("-timestamp", "-id")
            .values_list("pk", flat=True)
            .first()
        )
    mark_read(conversation, latest)
    return conversation


@transaction.atomic
def set_bot_active(*, conversation: Conversation, active: bool, by: Any) -> Conversation:
    """Hand the conversation to the bot (active) or take it back for humans."""
    viewer = check_can_act(conversation, by)
    if conversation.bot_active == active:
        return conversation
    conversation.bot_active = active
    conversation.save(update_fields=["bot_active", "updated_at"])
    name = actor_name(viewer)
    text = f"{name} handed this conversation to the bot" if active else f"{name} took over from the bot"
    record_system_event(conversation=conversation, text=text, by=viewer)
    events.conversation_updated(conversation, change="bot")
    return conversation


def hand_over_from_bot(*, conversation: Conversation) -> None:
    """The bot has nothing more to say to the customer (conversations.bot.answer): the conversation goes
    to the agents' queue, and the inbox hears of it as of any bot handover. The caller (the inbound
    round) holds the conversation's row lock."""
    if not conversation.bot_active:
        return
    conversation.bot_active = False
    conversation.save(update_fields=["bot_active", "updated_at"])
    events.conversation_updated(conversation, change="bot")
    for hook in QUEUE_ENTERED_HOOKS:
        hook(conversation=conversation)


UNCHANGED: Any = object()


@transaction.atomic
def update_conversation(
    *,
    conversation: Conversation,
    by: Any,
    assignee_id: int | None = UNCHANGED,
    team_id: int | None = UNCHANGED,
    status: str = UNCHANGED,
    snoozed_until: dt.datetime | None = UNCHANGED,
    bot_active: bool = UNCHANGED,
    tag_names: list[str] = UNCHANGED,
) -> Conversation:
    """Several workflow changes at once (the API's PATCH), all or nothing: each goes through its own
    service above (the inbox's rules, system lines and events), in one transaction, so a refused one
    undoes the others and publishes nothing. UNCHANGED leaves a field alone."""
    # Locked once up front; a conversation someone took since the caller loaded it is a 409, whatever
    # the other fields say (they were meant for the conversation as it was).
    seen = conversation.assignee_id
    by = _check_can_act_or_taken(conversation, by, seen)
    assigning = assignee_id is not UNCHANGED or team_id is not UNCHANGED
    if assigning and not by.can_supervise and _taken_meanwhile(seen, conversation.assignee_id, by):
        raise _already_assigned(conversation)
    if (
        status is not UNCHANGED
        and status == Conversation.Status.SNOOZED
        and snoozed_until in (UNCHANGED, None)
    ):
        raise WorkflowError("invalid_snooze", "Snoozing needs snoozed_until, a time in the future.")
    if snoozed_until is not UNCHANGED and snoozed_until is not None:
        if status not in (UNCHANGED, Conversation.Status.SNOOZED):
            raise WorkflowError("invalid_snooze", "snoozed_until goes with status snoozed (or no status).")
        status = Conversation.Status.SNOOZED
    if snoozed_until is None and status is UNCHANGED:
        raise WorkflowError("invalid_snooze", "To end a snooze, set the status (open, pending or resolved).")
    tags: list[Tag] | None = None
    if tag_names is not UNCHANGED:
        wanted = {name.strip().casefold(): name.strip() for name in tag_names if name.strip()}
        found = {t.name.casefold(): t for t in Tag.objects.filter(name__in=list(wanted.values()))}
        if len(found) < len(wanted):
            # Case-insensitive second look for the rest: "VIP" names the tag "vip".
            for tag in Tag.objects.exclude(pk__in=[t.pk for t in found.values()]):
                if tag.name.casefold() in wanted:
                    found.setdefault(tag.name.casefold(), tag)
        unknown = sorted(name for key, name in wanted.items() if key not in found)
        if unknown:
            raise WorkflowError("unknown_tag", f"No such tag: {', '.join(unknown)}. Create tags first.")
        tags = list(found.values())
    if status is not UNCHANGED:
        if status == Conversation.Status.SNOOZED:
            assert snoozed_until is not None and snoozed_until is not UNCHANGED  # checked above
            snooze_conversation(conversation=conversation, until=snoozed_until, by=by)
        else:
            set_conversation_status(conversation=conversation, status=status, by=by)
    if bot_active is not UNCHANGED:
        set_bot_active(conversation=conversation, active=bot_active, by=by)
    if tags is not None:
        set_conversation_tags(conversation=conversation, tags=tags, by=by)
    # The assignment last: an agent who hands the conversation to someone else may no longer see it,
    # and the other changes are checked against what they see.
    if assigning:
        assignee = conversation.assignee if assignee_id is UNCHANGED else None
        if assignee_id not in (UNCHANGED, None):
            assignee = get_user_model().objects.filter(pk=assignee_id).first()
            if assignee is None:
                raise WorkflowError(
                    "invalid_assignee", "That person is not an active agent of this workspace."
                )
        team = conversation.team if team_id is UNCHANGED else None
        if team_id not in (UNCHANGED, None):
            team = Team.objects.filter(pk=team_id).first()
            if team is None:
                raise WorkflowError("invalid_team", "No such team.")
        assign_conversation(
            conversation=conversation, assignee=assignee, team=team, by=by, seen_assignee_id=seen
        )
    return conversation


@transaction.atomic
def add_private_note(*, conversation: Conversation, text: str, author: Any, checked: bool = False) -> Message:
    """A note only staff see: stored in the thread, never sent to WhatsApp. `checked`: the reply path
    has already locked the row and checked the author."""
    if not checked:
        check_can_act(conversation, author)
    text = (text or "").strip()
    if not text:
        raise WorkflowError("empty_note", "Write something in the note.")
    if len(text) > rules.TEXT_LIMIT:
        raise WorkflowError("note_too_long", f"A note can be at most {rules.TEXT_LIMIT} characters.")
    note = store_internal_message(
        conversation=conversation, kind=Message.Type.NOTE, text=text, by=user_of(author)
    )
    record_mentions(note=note, author=user_of(author))
    return note
