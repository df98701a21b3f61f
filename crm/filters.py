"""Filters for the API lists (django-filter) and the contact search backend."""

from __future__ import annotations

from typing import Any

import django_filters
from django.db.models import QuerySet
from django.utils import timezone
from rest_framework.filters import BaseFilterBackend

from core.api import FilterSet, IsoDateTimeFilter
from crm import selectors
from crm.models import Contact, Deal, Note, Task

# FilterSet and IsoDateTimeFilter are the API's (core.api): values PostgreSQL would refuse are a 400.


class ContactFilter(FilterSet):
    tag = django_filters.CharFilter(field_name="tags__name", lookup_expr="iexact", help_text="Tag name")
    company = django_filters.NumberFilter(field_name="company_id")
    owner = django_filters.NumberFilter(field_name="owner_id")
    created_after = IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")
    updated_after = IsoDateTimeFilter(field_name="updated_at", lookup_expr="gte")

    class Meta:
        model = Contact
        fields = ["tag", "company", "owner", "marketing_consent", "blocked"]


class ContactSearchFilter(BaseFilterBackend):
    """`?search=`: name or email fragment, whole words, a tag name, or a phone number in any format."""

    param = "search"

    def filter_queryset(self, request: Any, queryset: QuerySet[Any], view: Any) -> QuerySet[Any]:
        return selectors.search_contacts(queryset, request.query_params.get(self.param, ""))

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        return [
            {
                "name": self.param,
                "required": False,
                "in": "query",
                "description": "Name or email fragment, words, tag name, or phone in any format",
                "schema": {"type": "string"},
            }
        ]


class NoteFilter(FilterSet):
    class Meta:
        model = Note
        fields = ["contact", "author"]


class DealFilter(FilterSet):
    class Meta:
        model = Deal
        fields = ["pipeline", "stage", "status", "owner", "contact", "company"]


class TaskFilter(FilterSet):
    overdue = django_filters.BooleanFilter(method="filter_overdue", help_text="Open and past due")
    due_before = IsoDateTimeFilter(field_name="due_at", lookup_expr="lt")
    due_after = IsoDateTimeFilter(field_name="due_at", lookup_expr="gte")

    class Meta:
        model = Task
        fields = ["assignee", "done", "contact", "deal"]

    def filter_overdue(self, queryset: QuerySet[Task], name: str, value: bool | None) -> QuerySet[Task]:
        if value is None:
            return queryset
        if value:
            return selectors.overdue(queryset)
        return queryset.exclude(done=False, due_at__lt=timezone.now())
