"""Helpers the CRM's service modules share."""

from __future__ import annotations

from typing import Any

from django.db.models import Model, QuerySet


def excluding(queryset: QuerySet[Any], obj: Model | None) -> QuerySet[Any]:
    """The queryset without `obj` (the row being edited, when a rule checks its siblings)."""
    return queryset.exclude(pk=obj.pk) if obj is not None and obj.pk else queryset
