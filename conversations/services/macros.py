"""Macros: a named sequence of actions an agent runs on a conversation from the composer. Each action is
its own service call (the reply path for a saved reply, the workflow services for tags, team, status and
snooze), all in one transaction: when one is refused (say the reply, outside the 24-hour window), the
whole macro is undone (nothing half-applied, no event published, nothing sent) and the error names the
step that failed."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db import transaction
from django.utils import timezone

from conversations.errors import WorkflowError
from conversations.models import CannedResponse, Conversation, Macro
from conversations.services.drafts import Draft
from conversations.services.reply import send_reply
from conversations.services.workflow import (
    assign_conversation,
    set_conversation_status,
    set_conversation_tags,
    snooze_conversation,
)
from core.errors import ServiceError
from crm import variables
from crm.models import Tag, Team

ACTION_TYPES = ("reply", "tags", "team", "status", "snooze")
ACTION_LABELS = {
    "reply": "send a saved reply",
    "tags": "add tags",
    "team": "assign a team",
    "status": "set the status",
    "snooze": "snooze",
}
MAX_ACTIONS = 10
MAX_SNOOZE_MINUTES = 60 * 24 * 366


SETTABLE_STATUSES = (Conversation.Status.OPEN, Conversation.Status.PENDING, Conversation.Status.RESOLVED)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _invalid(message: str) -> WorkflowError:
    return WorkflowError("invalid_macro", message)


def _tags(names: Any) -> list[Tag]:
    if not isinstance(names, list) or not names or not all(isinstance(n, str) and n.strip() for n in names):
        raise _invalid("A tags action needs a list of tag names.")
    wanted = {n.strip().casefold(): n.strip() for n in names}
    found = {t.name.casefold(): t for t in Tag.objects.all() if t.name.casefold() in wanted}
    unknown = sorted(name for key, name in wanted.items() if key not in found)
    if unknown:
        raise WorkflowError("unknown_tag", f"No such tag: {', '.join(unknown)}. Create tags first.")
    return list(found.values())


def clean_actions(actions: Any) -> list[dict[str, Any]]:
    """The actions as stored: each checked against this workspace (saved reply, tags, team exist)."""
    if not isinstance(actions, list) or not 1 <= len(actions) <= MAX_ACTIONS:
        raise _invalid(f"A macro has 1 to {MAX_ACTIONS} actions.")
    cleaned: list[dict[str, Any]] = []
    for action in actions:
        kind = action.get("type") if isinstance(action, dict) else None
        if kind not in ACTION_TYPES:
            raise _invalid(f"Unknown action; use one of {', '.join(ACTION_TYPES)}.")
        if kind == "reply":
            canned = action.get("canned")
            if not _is_int(canned):
                raise _invalid("A reply action needs the saved reply's id.")
            if not CannedResponse.objects.filter(pk=canned).exists():
                raise _invalid("No such saved reply.")
            cleaned.append({"type": kind, "canned": canned})
        elif kind == "tags":
            cleaned.append({"type": kind, "tags": sorted(t.name for t in _tags(action.get("tags")))})
        elif kind == "team":
            team = action.get("team")
            if (
                isinstance(team, bool)
                or not isinstance(team, int)
                or not Team.objects.filter(pk=team).exists()
            ):
                raise _invalid("No such team.")
            cleaned.append({"type": kind, "team": team})
        elif kind == "status":
            status = action.get("status")
            if status not in (
                Conversation.Status.OPEN,
                Conversation.Status.PENDING,
                Conversation.Status.RESOLVED,
            ):
                raise _invalid("A status action sets open, pending or resolved.")
            cleaned.append({"type": kind, "status": status})
        else:
            minutes = action.get("minutes")
            if (
                isinstance(minutes, bool)
                or not isinstance(minutes, int)
                or not 1 <= minutes <= MAX_SNOOZE_MINUTES
            ):
                raise _invalid("A snooze action needs minutes, from 1 to a year.")
            cleaned.append({"type": kind, "minutes": minutes})
    return cleaned


@transaction.atomic
def save_macro(*, name: str, actions: Any, macro: Macro | None = None) -> Macro:
    name = " ".join((name or "").split())
    if not name or len(name) > 100:
        raise _invalid("A macro needs a name of at most 100 characters.")
    same_name = Macro.objects.filter(name__iexact=name)
    if macro is not None:
        same_name = same_name.exclude(pk=macro.pk)
    if same_name.exists():
        raise WorkflowError("duplicate_macro", "A macro with that name exists already.")
    cleaned = clean_actions(actions)
    macro = macro or Macro()
    macro.name, macro.actions = name, cleaned
    macro.save()
    return macro


def _run_one(action: dict[str, Any], conversation: Conversation, by: Any) -> None:
    kind = action.get("type")
    if kind == "reply":
        canned = CannedResponse.objects.filter(pk=int(action.get("canned") or 0)).first()
        if canned is None:
            raise _invalid("The saved reply no longer exists.")
        user = getattr(by, "user", by)
        text = variables.render(canned.text, contact=conversation.contact, agent=user)
        send_reply(conversation=conversation, draft=Draft(kind="text", text=text), by=by)
    elif kind == "tags":
        tags = {t.pk: t for t in conversation.tags.all()}
        tags.update({t.pk: t for t in _tags(action.get("tags"))})
        set_conversation_tags(conversation=conversation, tags=list(tags.values()), by=by)
    elif kind == "team":
        team = Team.objects.filter(pk=int(action.get("team") or 0)).first()
        if team is None:
            raise _invalid("The team no longer exists.")
        assign_conversation(conversation=conversation, assignee=conversation.assignee, team=team, by=by)
    elif kind == "status":
        set_conversation_status(conversation=conversation, status=str(action.get("status")), by=by)
    elif kind == "snooze":
        until = timezone.now() + dt.timedelta(minutes=int(action.get("minutes") or 0))
        snooze_conversation(conversation=conversation, until=until, by=by)
    else:
        raise _invalid("Unknown action.")


@transaction.atomic
def run_macro(*, macro: Macro, conversation: Conversation, by: Any) -> Conversation:
    """Every action of the macro in order, or none of them. Raises WorkflowError `macro_failed` (with the
    failing step's number, type and its own code in `details`, and its status) when one is refused."""
    for step, action in enumerate(macro.actions or [], start=1):
        try:
            with transaction.atomic():
                _run_one(action, conversation, by)
        except ServiceError as exc:
            label = ACTION_LABELS.get(str(action.get("type")), "an action")
            raise WorkflowError(
                "macro_failed",
                f"Macro '{macro.name}' stopped at step {step} ({label}): {exc.message} Nothing was changed.",
                status=exc.status,
                details={"step": step, "action": action.get("type"), "reason": exc.code},
            ) from exc
    conversation.refresh_from_db()
    return conversation


def delete_macro(*, macro: Macro) -> None:
    macro.delete()
