"""SLA policies applied: due times set when a conversation's clocks start (a new conversation: first
response and resolution; a reopened one: resolution again), breaches marked once by the scheduler's
sweep, which notifies the assignee and the supervisors (kind "sla_breach"), and policies edited by
owners and admins. The arithmetic is conversations.sla's."""

from __future__ import annotations

import datetime as dt
from typing import Any

import structlog
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from conversations import events
from conversations.bot import load_settings
from conversations.errors import WorkflowError
from conversations.models import BusinessHours, Channel, Conversation, SlaPolicy
from conversations.sla import deadline_after, hours_of
from crm.models import Agent, Team
from crm.services.notifications import notify

log = structlog.get_logger("sla")

SLA_FIELDS = ["first_response_due_at", "resolution_due_at", "first_response_breached", "resolution_breached"]


def policy_for(conversation: Conversation, policies: list[SlaPolicy]) -> SlaPolicy | None:
    """The most specific policy: the number's, then the team's, then the default (neither)."""
    by_channel = [p for p in policies if p.channel_id and p.channel_id == conversation.channel_id]
    by_team = [
        p for p in policies if p.team_id and p.channel_id is None and p.team_id == conversation.team_id
    ]
    default = [p for p in policies if p.team_id is None and p.channel_id is None]
    for found in (by_channel, by_team, default):
        if found:
            return found[0]
    return None


def _clock(policy: SlaPolicy) -> tuple[list[Any], str]:
    if not policy.business_hours_only:
        return [], "UTC"
    return hours_of(BusinessHours.objects.all()), load_settings().time_zone


def start_sla_clocks(*, conversations: list[Conversation], reopened: set[int]) -> None:
    """Due times for new conversations (both targets) and reopened ones (resolution again, breach flag
    cleared), from their latest inbound message. The caller holds their row locks and saves nothing:
    this writes the SLA fields itself. No policies: no query beyond one."""
    if not conversations:
        return
    policies = list(SlaPolicy.objects.order_by("pk"))
    if not policies:
        return
    cache: dict[int, tuple[list[Any], str]] = {}
    for conversation in conversations:
        policy = policy_for(conversation, policies)
        if policy is None:
            continue
        if policy.pk not in cache:
            cache[policy.pk] = _clock(policy)
        hours, tz = cache[policy.pk]
        start = conversation.last_inbound_at or conversation.created_at or timezone.now()
        fields = []
        if (
            conversation.pk not in reopened
            and policy.first_response_minutes
            and conversation.first_response_at is None
        ):
            conversation.first_response_due_at = deadline_after(
                start, policy.first_response_minutes * 60, hours, tz
            )
            fields.append("first_response_due_at")
        if policy.resolution_minutes:
            conversation.resolution_due_at = deadline_after(start, policy.resolution_minutes * 60, hours, tz)
            conversation.resolution_breached = False
            fields += ["resolution_due_at", "resolution_breached"]
        if fields:
            Conversation.objects.filter(pk=conversation.pk).update(
                **{f: getattr(conversation, f) for f in fields}
            )


def _supervisors() -> list[Any]:
    return [
        a.user
        for a in Agent.objects.select_related("user").filter(
            role__in=[Agent.Role.SUPERVISOR, Agent.Role.ADMIN, Agent.Role.OWNER], user__is_active=True
        )
    ]


def _notify(conversation: Conversation, what: str) -> None:
    recipients = {u.pk: u for u in _supervisors()}
    if conversation.assignee is not None:
        recipients[conversation.assignee.pk] = conversation.assignee
    notify(
        recipients=list(recipients.values()),
        kind="sla_breach",
        title=f"SLA breached: {what} for {conversation.contact}",
        body=f"The {what} target of this conversation has passed.",
        url=f"/inbox/c/{conversation.pk}/",
        conversation=conversation,
    )


def sweep_sla_breaches(*, now: dt.datetime | None = None, limit: int = 500) -> int:
    """Mark conversations whose first response or resolution is overdue (once each) and notify their
    assignee and the supervisors. Conversations the bot still holds, snoozed and resolved ones wait."""
    now = now or timezone.now()
    live = Q(bot_active=False) & Q(status__in=[Conversation.Status.OPEN, Conversation.Status.PENDING])
    first = Q(first_response_breached=False, first_response_at__isnull=True, first_response_due_at__lte=now)
    resolution = Q(resolution_breached=False, resolution_due_at__lte=now)
    due = list(Conversation.objects.filter(live & (first | resolution)).values_list("pk", flat=True)[:limit])
    marked = 0
    for pk in due:
        with transaction.atomic():
            conversation = (
                Conversation.objects.select_for_update(skip_locked=True, of=("self",))
                .select_related("assignee", "contact")
                .filter(pk=pk)
                .first()
            )
            if conversation is None or conversation.bot_active:
                continue
            breached = []
            if (
                not conversation.first_response_breached
                and conversation.first_response_at is None
                and conversation.first_response_due_at is not None
                and conversation.first_response_due_at <= now
            ):
                conversation.first_response_breached = True
                breached.append("first response")
            if (
                not conversation.resolution_breached
                and conversation.status != Conversation.Status.RESOLVED
                and conversation.resolution_due_at is not None
                and conversation.resolution_due_at <= now
            ):
                conversation.resolution_breached = True
                breached.append("resolution")
            if not breached:
                continue
            conversation.save(update_fields=["first_response_breached", "resolution_breached", "updated_at"])
            _notify(conversation, " and ".join(breached))
            events.conversation_updated(conversation, change="sla")
            marked += 1
            log.info("sla_breached", conversation=pk, targets=breached)
    return marked


# --- policies (Settings → SLA) ----------------------------------------------------------------------


def _minutes(value: Any, field: str) -> int | None:
    if value in (None, ""):
        return None
    try:
        minutes = int(value)
    except (TypeError, ValueError):
        minutes = -1
    if isinstance(value, bool) or not 1 <= minutes <= 60 * 24 * 365:
        raise WorkflowError(f"invalid_{field}", "Targets are whole minutes, from 1 to a year.")
    return minutes


@transaction.atomic
def save_sla_policy(
    *,
    name: str,
    first_response_minutes: Any,
    resolution_minutes: Any,
    team_id: int | None = None,
    channel_id: int | None = None,
    business_hours_only: bool = True,
    policy: SlaPolicy | None = None,
) -> SlaPolicy:
    name = " ".join((name or "").split())
    if not name or len(name) > 100:
        raise WorkflowError("invalid_name", "Name the policy (at most 100 characters).")
    first = _minutes(first_response_minutes, "first_response_minutes")
    resolution = _minutes(resolution_minutes, "resolution_minutes")
    if first is None and resolution is None:
        raise WorkflowError("no_target", "Set a first-response or a resolution target.")
    team = Team.objects.filter(pk=team_id).first() if team_id else None
    if team_id and team is None:
        raise WorkflowError("invalid_team", "No such team.")
    channel = Channel.objects.filter(pk=channel_id).first() if channel_id else None
    if channel_id and channel is None:
        raise WorkflowError("invalid_channel", "No such number.")
    if team is not None and channel is not None:
        raise WorkflowError("invalid_scope", "A policy is for a team or for a number, not both.")
    clash = SlaPolicy.objects.filter(team=team, channel=channel)
    if policy is not None:
        clash = clash.exclude(pk=policy.pk)
    if clash.exists():
        raise WorkflowError("duplicate_policy", "There is already a policy for that scope.")
    policy = policy or SlaPolicy()
    policy.name = name
    policy.team = team
    policy.channel = channel
    policy.first_response_minutes = first
    policy.resolution_minutes = resolution
    policy.business_hours_only = bool(business_hours_only)
    policy.save()
    return policy


def delete_sla_policy(*, policy: SlaPolicy) -> None:
    policy.delete()
