"""The AI agent in the reports page: conversations it answered without a person (AI-resolved) against
those it handed over, and why, over the report's date range (in the tenant's time zone)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db.models import Count

from conversations.selectors import tenant_time_zone
from knowledge.models import AIHandoff, AIReply


@dataclass
class AIReport:
    answered: int  # conversations with at least one AI answer in the range
    resolved_by_ai: int  # of those, the ones the AI never handed over
    handed_over: int  # conversations the AI handed over in the range
    replies: int
    reasons: list[tuple[str, str, int]]  # (code, label, conversations)

    @property
    def any(self) -> bool:
        return bool(self.answered or self.handed_over)


def ai_report(*, start: dt.date, end: dt.date) -> AIReport:
    tz = tenant_time_zone()
    since = dt.datetime.combine(start, dt.time.min, tzinfo=tz)
    until = dt.datetime.combine(end + dt.timedelta(days=1), dt.time.min, tzinfo=tz)
    replies = AIReply.objects.filter(created_at__gte=since, created_at__lt=until)
    handoffs = AIHandoff.objects.filter(created_at__gte=since, created_at__lt=until)
    answered_ids = set(replies.values_list("conversation_id", flat=True).distinct())
    handed_ids = set(handoffs.values_list("conversation_id", flat=True).distinct())
    counts = dict(
        handoffs.values("reason").annotate(n=Count("conversation", distinct=True)).values_list("reason", "n")
    )
    reasons = [(code, str(label), counts.get(code, 0)) for code, label in AIHandoff.Reason.choices]
    return AIReport(
        answered=len(answered_ids),
        resolved_by_ai=len(answered_ids - handed_ids),
        handed_over=len(handed_ids),
        replies=replies.count(),
        reasons=reasons,
    )
