"""What the workflow, reply and contact-panel services share: naming who acted, the thread's internal
lines (system lines, notes) and the locked re-check that the actor still sees the conversation."""

from __future__ import annotations

from typing import Any

from django.utils import timezone

from conversations import events
from conversations.errors import WorkflowError
from conversations.models import Conversation, Message
from conversations.selectors import Viewer, can_see, viewer_for


def person_name(user: Any) -> str:
    if user is None:
        return "The bot"
    return str(user.get_full_name() or user.email)


def actor_name(by: Any) -> str:
    """A person's name, or the integration key's (a Viewer without a user)."""
    if isinstance(by, Viewer):
        if by.system:
            return by.key_name
        if by.user is None:
            return f"Integration {by.key_name}".strip()
        return person_name(by.user)
    return person_name(by)


def user_of(by: Any) -> Any:
    return by.user if isinstance(by, Viewer) else by


def record_system_event(*, conversation: Conversation, text: str, by: Any = None) -> Message:
    """A line in the thread saying what happened (assignment, status, bot handover): the audit trail
    agents read. It is never sent to WhatsApp."""
    return store_internal_message(
        conversation=conversation, kind=Message.Type.SYSTEM, text=text, by=user_of(by)
    )


def store_internal_message(*, conversation: Conversation, kind: str, text: str, by: Any) -> Message:
    """A thread line that never goes to WhatsApp (system line, private note). Stored as sent so no
    sender ever picks it up."""
    message = Message.objects.create(
        conversation=conversation,
        direction=Message.Direction.OUTBOUND,
        type=kind,
        text=text,
        preview=text[:200],
        status=Message.Status.SENT,
        sender=by,
        timestamp=timezone.now(),
    )
    events.message_created(message)
    return message


def check_can_act(conversation: Conversation, by: Any) -> Viewer:
    """Re-read the conversation under its row lock (into the caller's instance) and check that `by` (a
    user, or a Viewer such as an integration key's) still sees it. Workflow writes lock only the
    conversation, which the inbound round locks after the contacts: no lock-order cycle."""
    conversation.refresh_from_db(from_queryset=Conversation.objects.select_for_update())
    viewer = by if isinstance(by, Viewer) else viewer_for(by)
    if not can_see(viewer, conversation):
        raise WorkflowError("not_found", "This conversation does not exist or is not yours to see.")
    return viewer
