"""Campaign reads for the pages and the export."""

from __future__ import annotations

from typing import Any

from django.db.models import Count, F, QuerySet

from campaigns.models import Campaign, Recipient
from conversations.models import Channel
from crm.models import Contact
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


def opted_out(campaign: Campaign) -> QuerySet[Recipient]:
    """Recipients who opted out of marketing after the campaign's message reached them (STOP, a stop
    word, the template's opt-out button, or a change on their contact): the campaign's unsubscribes."""
    return Recipient.objects.filter(
        campaign=campaign,
        message__sent_at__isnull=False,
        contact__marketing_consent=Contact.MarketingConsent.OPTED_OUT,
        contact__marketing_consent_at__gte=F("message__sent_at"),
    )


def opted_out_after(recipient: Recipient) -> Any:
    """When the recipient opted out, if that came after their campaign message was sent (the export's
    column; the recipient's contact and message are loaded with it)."""
    contact, message = recipient.contact, recipient.message
    if message is None or message.sent_at is None or contact.marketing_consent_at is None:
        return None
    if contact.marketing_consent != Contact.MarketingConsent.OPTED_OUT:
        return None
    return contact.marketing_consent_at if contact.marketing_consent_at >= message.sent_at else None


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
