"""Reads of team operations: CSAT per agent and team (the reports page), agents one may @mention."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import Avg, Count, Q, QuerySet

from conversations.models import CsatResponse
from conversations.selectors import tenant_time_zone

SATISFIED = 4  # scores of 4 and 5 count as satisfied


@dataclass
class CsatReport:
    responses: int
    average: float | None
    satisfied_percent: int | None
    agents: list[dict[str, Any]]
    teams: list[dict[str, Any]]


def _row(name: str, count: int, average: float | None, satisfied: int) -> dict[str, Any]:
    return {
        "name": name,
        "responses": count,
        "average": round(average, 1) if average is not None else None,
        "satisfied_percent": round(100 * satisfied / count) if count else None,
    }


def _rows(rows: Any) -> list[dict[str, Any]]:
    return list(rows)


def csat_report(*, start: dt.date, end: dt.date) -> CsatReport:
    """Answered surveys over [start, end] (inclusive, the tenant's time zone), overall and grouped by the
    agent and team who held the conversation when it was resolved."""
    tz = tenant_time_zone()
    since = dt.datetime.combine(start, dt.time.min, tzinfo=tz)
    until = dt.datetime.combine(end + dt.timedelta(days=1), dt.time.min, tzinfo=tz)
    answered = CsatResponse.objects.filter(score__isnull=False, answered_at__gte=since, answered_at__lt=until)
    stats = {"n": Count("pk"), "avg": Avg("score"), "ok": Count("pk", filter=Q(score__gte=SATISFIED))}
    total = answered.aggregate(**stats)
    users = {u.pk: u for u in get_user_model().objects.filter(pk__in=answered.values("agent_id"))}
    agents = [
        _row(
            (users[r["agent_id"]].get_full_name() or users[r["agent_id"]].email)
            if r["agent_id"] in users
            else "Unassigned",
            r["n"],
            r["avg"],
            r["ok"],
        )
        for r in _rows(answered.values("agent_id").annotate(**stats).order_by("agent_id"))
    ]
    teams = [
        _row(r["team__name"] or "No team", r["n"], r["avg"], r["ok"])
        for r in _rows(answered.values("team_id", "team__name").annotate(**stats).order_by("team__name"))
    ]
    return CsatReport(
        responses=total["n"],
        average=round(total["avg"], 1) if total["avg"] is not None else None,
        satisfied_percent=round(100 * total["ok"] / total["n"]) if total["n"] else None,
        agents=sorted(agents, key=lambda a: a["name"].casefold()),
        teams=teams,
    )


def mentionable_agents(query: str = "", limit: int = 8) -> QuerySet[Any]:
    """Active agents of this workspace (the tenant's own Agent rows) matching a name or email prefix."""
    users = get_user_model().objects.filter(agent__isnull=False, is_active=True)
    query = query.strip()
    if query:
        users = users.filter(
            Q(first_name__istartswith=query) | Q(last_name__istartswith=query) | Q(email__istartswith=query)
        )
    return users.order_by("first_name", "email")[:limit]
