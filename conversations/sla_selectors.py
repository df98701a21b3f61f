"""SLA attainment for the reports page: per agent and per team, of conversations created in the range
that had a target, the share whose first response / resolution came in time (still running: not counted)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Count, F, Q

from conversations.models import Conversation
from conversations.selectors import tenant_time_zone

FIRST_MET = Q(first_response_due_at__isnull=False, first_response_at__isnull=False) & Q(
    first_response_at__lte=F("first_response_due_at")
)
FIRST_MISSED = Q(first_response_due_at__isnull=False) & (
    Q(first_response_breached=True) | Q(first_response_at__gt=F("first_response_due_at"))
)
RESOLUTION_MET = (
    Q(resolution_due_at__isnull=False, resolution_breached=False, resolved_at__isnull=False)
    & Q(status=Conversation.Status.RESOLVED)
    & Q(resolved_at__lte=F("resolution_due_at"))
)
RESOLUTION_MISSED = Q(resolution_due_at__isnull=False) & (
    Q(resolution_breached=True)
    | Q(status=Conversation.Status.RESOLVED, resolved_at__gt=F("resolution_due_at"))
)


def _share(met: int, missed: int) -> float | None:
    return round(100 * met / (met + missed)) if met + missed else None


@dataclass
class SlaReport:
    overall: dict[str, Any]
    agents: list[dict[str, Any]] = field(default_factory=list)
    teams: list[dict[str, Any]] = field(default_factory=list)

    @property
    def any(self) -> bool:
        return bool(self.overall["first_total"] or self.overall["resolution_total"])


def _row(name: str, counts: Any) -> dict[str, Any]:
    return {
        "name": name,
        "first_met": counts["first_met"],
        "first_missed": counts["first_missed"],
        "first_total": counts["first_met"] + counts["first_missed"],
        "first_attainment": _share(counts["first_met"], counts["first_missed"]),
        "resolution_met": counts["resolution_met"],
        "resolution_missed": counts["resolution_missed"],
        "resolution_total": counts["resolution_met"] + counts["resolution_missed"],
        "resolution_attainment": _share(counts["resolution_met"], counts["resolution_missed"]),
    }


COUNTS = {
    "first_met": Count("pk", filter=FIRST_MET),
    "first_missed": Count("pk", filter=FIRST_MISSED),
    "resolution_met": Count("pk", filter=RESOLUTION_MET),
    "resolution_missed": Count("pk", filter=RESOLUTION_MISSED),
}


def sla_report(*, start: dt.date, end: dt.date) -> SlaReport:
    tz = tenant_time_zone()
    since = dt.datetime.combine(start, dt.time.min, tzinfo=tz)
    until = dt.datetime.combine(end + dt.timedelta(days=1), dt.time.min, tzinfo=tz)
    created = Conversation.objects.filter(created_at__gte=since, created_at__lt=until).filter(
        Q(first_response_due_at__isnull=False) | Q(resolution_due_at__isnull=False)
    )
    overall = _row("All", created.aggregate(**COUNTS))
    agents = [
        _row(
            " ".join(x for x in (row["assignee__first_name"], row["assignee__last_name"]) if x)
            or row["assignee__email"],
            row,
        )
        for row in created.filter(assignee__isnull=False)
        .values("assignee_id", "assignee__first_name", "assignee__last_name", "assignee__email")
        .annotate(**COUNTS)
        .order_by("assignee__first_name", "assignee__email")
    ]
    teams = [
        _row(row["team__name"], row)
        for row in created.filter(team__isnull=False)
        .values("team_id", "team__name")
        .annotate(**COUNTS)
        .order_by("team__name")
    ]
    return SlaReport(overall=overall, agents=agents, teams=teams)
