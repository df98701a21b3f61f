"""Auto-assignment: a conversation entering the agents' queue (handed over by the bot, or a new inbound
message with no bot) goes to an online agent with room, by round robin or to the least busy; when nobody
has room it waits in the queue, and the oldest waiting ones are assigned as room frees (an agent resolves
or comes online, and the scheduler's sweep every minute). A reopened conversation goes back to its last
agent when they are online with room.

Race safety: every decision is taken under one transaction-scoped advisory lock per workspace, held
until the assignment commits, so two workers never both see the same free slot (no agent is over-filled)
and a conversation is never assigned twice (its row lock is held too). Lock order is always the
conversation's row first, then the advisory lock (the inbound round locks its conversations first); the
sweep takes queued rows with SKIP LOCKED, so it never waits on an inbound round while holding anything.
Every assignment goes through workflow.assign_conversation (system line, realtime event)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import structlog
from django.db import transaction
from django.db.models import Count, F, IntegerField, OuterRef, Q, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from conversations.errors import WorkflowError
from conversations.models import Conversation, RoutingSettings
from conversations.selectors import Viewer
from conversations.services.workflow import assign_conversation
from crm.models import Agent, Team
from tenants.db import connection

log = structlog.get_logger("routing")

# What counts against an agent's capacity: conversations still needing them.
HELD_STATUSES = (Conversation.Status.OPEN, Conversation.Status.PENDING)

# The workspace acting: sees everything, named in the thread's system lines.
ROUTER = Viewer(user=None, role=Agent.Role.OWNER, key_name="Auto-assignment", system=True)


def current_settings() -> RoutingSettings:
    """The workspace's routing settings, without writing (an unsaved default when never set)."""
    return RoutingSettings.objects.filter(pk=1).first() or RoutingSettings(pk=1)


def _lock_routing() -> None:
    # Advisory locks are per database, not per schema: the key names the workspace.
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_advisory_xact_lock(hashtext(%s))", [f"wacrm:routing:{connection.schema_name}"]
        )


def held_count(user_id: Any) -> Any:
    """Open conversations an agent holds, as a subquery on Agent."""
    return Coalesce(
        Subquery(
            Conversation.objects.filter(assignee_id=OuterRef(user_id), status__in=HELD_STATUSES)
            .order_by()
            .values("assignee_id")
            .annotate(n=Count("*"))
            .values("n")[:1],
            output_field=IntegerField(),
        ),
        Value(0),
    )


def agents_with_room(settings: RoutingSettings, *, team_id: int | None = None) -> QuerySet[Agent]:
    """Online, active agents (of the team when given) holding fewer open conversations than their
    capacity, in the mode's order: round robin, the one assigned longest ago (never first); least busy,
    the one holding fewest, then longest ago."""
    agents = Agent.objects.filter(availability=Agent.Availability.ONLINE, user__is_active=True)
    if team_id is not None:
        agents = agents.filter(teams=team_id)
    agents = agents.annotate(
        held=held_count("user_id"),
        limit=Coalesce("capacity", Value(settings.default_capacity)),
    ).filter(held__lt=F("limit"))
    longest_ago = F("last_assigned_at").asc(nulls_first=True)
    if settings.mode == RoutingSettings.Mode.LEAST_BUSY:
        return agents.order_by("held", longest_ago, "pk")
    return agents.order_by(longest_ago, "pk")


def _has_room(settings: RoutingSettings, user_id: int, *, besides: int) -> bool:
    """The agent is online, active and has room for one more beside conversation `besides`."""
    agent = (
        Agent.objects.filter(user_id=user_id, availability=Agent.Availability.ONLINE, user__is_active=True)
        .annotate(
            held=Coalesce(
                Subquery(
                    Conversation.objects.filter(assignee_id=user_id, status__in=HELD_STATUSES)
                    .exclude(pk=besides)
                    .order_by()
                    .values("assignee_id")
                    .annotate(n=Count("*"))
                    .values("n")[:1],
                    output_field=IntegerField(),
                ),
                Value(0),
            ),
            limit=Coalesce("capacity", Value(settings.default_capacity)),
        )
        .values("held", "limit")
        .first()
    )
    return agent is not None and agent["held"] < agent["limit"]


def _assign(conversation: Conversation, agent: Agent) -> None:
    assign_conversation(
        conversation=conversation,
        assignee=agent.user,
        team=conversation.team,
        by=ROUTER,
        seen_assignee_id=conversation.assignee_id,
    )
    now = timezone.now()
    Agent.objects.filter(pk=agent.pk).update(last_assigned_at=now)
    agent.last_assigned_at = now
    log.info("conversation_routed", conversation=conversation.pk, agent=agent.pk)


@transaction.atomic
def route_conversation(
    *, conversation: Conversation, reopened: bool = False, settings: RoutingSettings | None = None
) -> Agent | None:
    """Give a conversation in the queue to an agent with room (None: it stays queued, or routing is
    manual). The caller holds the conversation's row lock with a fresh row (the inbound round, the bot
    handover) or this takes it. `reopened`: the customer wrote again after it was resolved or snoozed,
    so its last agent keeps it when online with room, else it is routed afresh (back to the queue when
    nobody has room)."""
    settings = settings or current_settings()
    if settings.mode == RoutingSettings.Mode.MANUAL:
        return None
    if conversation.bot_active or conversation.status != Conversation.Status.OPEN:
        return None
    if conversation.assignee_id is not None and not reopened:
        return None
    _lock_routing()
    # Re-read under the row lock: another worker may have assigned it before we got the routing lock.
    conversation.refresh_from_db(
        from_queryset=Conversation.objects.select_for_update(),
        fields=["assignee", "team", "status", "bot_active"],
    )
    if conversation.bot_active or conversation.status != Conversation.Status.OPEN:
        return None
    last = conversation.assignee_id
    if last is not None:
        if not reopened:
            return None
        if _has_room(settings, last, besides=conversation.pk):
            return Agent.objects.filter(user_id=last).first()
    candidates = agents_with_room(settings, team_id=conversation.team_id or settings.team_id)
    if last is not None:
        candidates = candidates.exclude(user_id=last)
    agent = candidates.select_related("user").first()
    if agent is None:
        if last is not None:
            # Its agent is away or full and nobody else has room: back to the queue.
            assign_conversation(
                conversation=conversation,
                assignee=None,
                team=conversation.team,
                by=ROUTER,
                seen_assignee_id=last,
            )
        return None
    _assign(conversation, agent)
    return agent


def route_inbound(*, conversations: list[Conversation], reopened: set[int]) -> None:
    """After an inbound round stored its messages (the caller holds the conversations' row locks):
    route those that entered the queue. Costs nothing for conversations already with an agent."""
    waiting = [
        c
        for c in conversations
        if not c.bot_active
        and c.status == Conversation.Status.OPEN
        and (c.assignee_id is None or c.pk in reopened)
    ]
    if not waiting:
        return
    settings = current_settings()
    if settings.mode == RoutingSettings.Mode.MANUAL:
        return
    for conversation in waiting:
        route_conversation(conversation=conversation, reopened=conversation.pk in reopened, settings=settings)


def queued_conversations() -> QuerySet[Conversation]:
    """The agents' queue, oldest waiting first: open, no agent, not with the bot."""
    return Conversation.objects.filter(
        status=Conversation.Status.OPEN, assignee__isnull=True, bot_active=False
    ).order_by(F("last_inbound_at").asc(nulls_last=True), "pk")


def assign_queued_conversations(*, limit: int = 200) -> int:
    """Assign the oldest queued conversations while agents have room (room freed: a resolve, an agent
    online, the scheduler's sweep). Returns how many were assigned."""
    settings = current_settings()
    if settings.mode == RoutingSettings.Mode.MANUAL:
        return 0
    assigned = 0
    for pk in list(queued_conversations().values_list("pk", flat=True)[:limit]):
        if not agents_with_room(settings).exists():
            break
        with transaction.atomic():
            # SKIP LOCKED: an inbound round holding it routes it itself; never wait while others wait on us.
            conversation = Conversation.objects.select_for_update(skip_locked=True).filter(pk=pk).first()
            if conversation is None:
                continue
            if route_conversation(conversation=conversation, settings=settings) is not None:
                assigned += 1
    return assigned


def assign_queued_on_commit() -> None:
    """Room may have freed: fill it from the queue once the freeing change commits."""
    transaction.on_commit(lambda: assign_queued_conversations())


def mark_idle_agents_offline(*, now: Any = None) -> int:
    """Online agents with no sign of life for the workspace's idle_minutes go offline (their open
    conversations stay theirs; new ones go to others)."""
    settings = current_settings()
    if not settings.idle_minutes:
        return 0
    cutoff = (now or timezone.now()) - dt.timedelta(minutes=settings.idle_minutes)
    return Agent.objects.filter(
        Q(last_seen_at__lt=cutoff) | Q(last_seen_at__isnull=True),
        availability=Agent.Availability.ONLINE,
    ).update(availability=Agent.Availability.OFFLINE)


SEEN_THROTTLE_SECONDS = 60


def touch_agent(*, user: Any, now: Any = None) -> None:
    """A sign of life from the agent (a page or a socket ping): keeps them from going idle. At most one
    write a minute."""
    touch_agents(user_ids=[user.pk], now=now)


def touch_agents(*, user_ids: list[int], now: Any = None) -> None:
    """touch_agent for many agents in one UPDATE (the pings of a web process's sockets, batched)."""
    now = now or timezone.now()
    Agent.objects.filter(user_id__in=user_ids).filter(
        Q(last_seen_at__isnull=True) | Q(last_seen_at__lt=now - dt.timedelta(seconds=SEEN_THROTTLE_SECONDS))
    ).update(last_seen_at=now)


@transaction.atomic
def update_routing_settings(
    *,
    mode: str | None = None,
    default_capacity: int | None = None,
    team_id: Any = ...,
    idle_minutes: int | None = None,
) -> RoutingSettings:
    """Owners/admins (the caller checks the role). `team_id=None` clears the team restriction."""
    settings = RoutingSettings.load()
    settings = RoutingSettings.objects.select_for_update().get(pk=settings.pk)
    if mode is not None:
        if mode not in RoutingSettings.Mode.values:
            raise WorkflowError("invalid_mode", "Mode must be manual, round_robin or least_busy.")
        settings.mode = mode
    if default_capacity is not None:
        if (
            not isinstance(default_capacity, int)
            or isinstance(default_capacity, bool)
            or not 1 <= default_capacity <= 1000
        ):
            raise WorkflowError("invalid_capacity", "Capacity must be a whole number from 1 to 1000.")
        settings.default_capacity = default_capacity
    if idle_minutes is not None:
        if (
            not isinstance(idle_minutes, int)
            or isinstance(idle_minutes, bool)
            or not 0 <= idle_minutes <= 24 * 60
        ):
            raise WorkflowError("invalid_idle_minutes", "Idle minutes must be a whole number from 0 to 1440.")
        settings.idle_minutes = idle_minutes
    if team_id is not ...:
        if team_id is None:
            settings.team = None
        else:
            team = Team.objects.filter(pk=team_id).first() if isinstance(team_id, int) else None
            if team is None:
                raise WorkflowError("invalid_team", "No such team.")
            settings.team = team
    settings.save()
    assign_queued_on_commit()
    return settings
