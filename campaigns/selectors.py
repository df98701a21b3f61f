"""Campaign reads for the pages and the export."""

from __future__ import annotations

from typing import Any

from django.db.models import Count, QuerySet

from campaigns.models import Campaign, Recipient
from conversations.models import Channel
from whatsapp.models import MessageTemplate


def failures_by_code(campaign: Campaign) -> list[dict[str, Any]]:
    """Failed recipients grouped by Meta's code (or the rule that refused them) and title."""
    return [
        dict(row)
        for row in Recipient.objects.filter(campaign=campaign, status=Recipient.Status.FAILED)
        .values("error_code", "skip_reason", "error_title")
        .annotate(n=Count("id"))
        .order_by("-n")[:50]
    ]


def skips_by_reason(campaign: Campaign) -> list[dict[str, Any]]:
    return [
        dict(row)
        for row in Recipient.objects.filter(campaign=campaign, status=Recipient.Status.SKIPPED)
        .values("skip_reason")
        .annotate(n=Count("id"))
        .order_by("-n")
    ]


def replies(campaign: Campaign, limit: int = 50) -> QuerySet[Recipient]:
    return (
        Recipient.objects.filter(campaign=campaign, status=Recipient.Status.REPLIED)
        .select_related("contact", "message")
        .order_by("-updated_at")[:limit]
    )


def export_rows(campaign: Campaign) -> Any:
    return (
        Recipient.objects.filter(campaign=campaign)
        .select_related("contact", "message")
        .order_by("id")
        .iterator(chunk_size=2000)
    )


def sendable_templates(channel: Channel) -> list[MessageTemplate]:
    return [
        t
        for t in MessageTemplate.objects.filter(waba_id=channel.waba_id).order_by("name", "language")
        if t.is_approved
    ]
