"""Knowledge reads for pages and the API (the active tenant's schema)."""

from __future__ import annotations

from django.db.models import QuerySet

from knowledge.models import Faq, Source


def sources() -> QuerySet[Source]:
    """Every source but FAQ pairs' own (managed as FAQs). `text` is deferred: it can be megabytes."""
    return Source.objects.exclude(kind=Source.Kind.FAQ).defer("text").select_related("created_by")


def faqs() -> QuerySet[Faq]:
    return Faq.objects.select_related("source", "created_by")


def processing_count() -> int:
    return Source.objects.filter(status=Source.Status.PROCESSING).count()
