"""Helpers the CRM's service modules share."""

from __future__ import annotations

from typing import Any

from django.db.models import Model, QuerySet

from core.errors import ServiceError


def excluding(queryset: QuerySet[Any], obj: Model | None) -> QuerySet[Any]:
    """The queryset without `obj` (the row being edited, when a rule checks its siblings)."""
    return queryset.exclude(pk=obj.pk) if obj is not None and obj.pk else queryset


def ensure_name_free(queryset: QuerySet[Any], obj: Model | None, message: str) -> None:
    """409 `duplicate_name` when a sibling in `queryset` (other than `obj`, the row being edited) holds
    the name already."""
    if excluding(queryset, obj).exists():
        raise ServiceError("duplicate_name", message, field="name", status=409)
