"""GET /api/v1/audit-log/: the workspace's audit events, newest first, for owners and admins (a personal
key of one, or an integration key with the admin role). Cursor pages and filters as every list has."""

from __future__ import annotations

import django_filters
from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, serializers, viewsets

from core import audit
from core.api import FilterBackend, FilterSet, IsoDateTimeFilter
from core.models import AuditEvent
from crm.permissions import RolePermission


class AuditEventSerializer(serializers.ModelSerializer):
    actor = serializers.CharField(source="actor_label", read_only=True)
    target = serializers.SerializerMethodField()

    class Meta:
        model = AuditEvent
        fields = ["id", "created_at", "action", "actor", "actor_id", "ip", "user_agent", "target", "details"]
        read_only_fields = fields

    def get_target(self, event: AuditEvent) -> dict[str, str] | None:
        if not (event.target_type or event.target_label):
            return None
        return {"type": event.target_type, "id": event.target_id, "label": event.target_label}


class AuditEventFilter(FilterSet):
    action = django_filters.ChoiceFilter(choices=sorted(audit.ACTIONS.items()), help_text="An action code")
    actor = django_filters.CharFilter(
        field_name="actor_label", lookup_expr="icontains", max_length=200, help_text="Part of the actor"
    )
    since = IsoDateTimeFilter(field_name="created_at", lookup_expr="gte", help_text="At or after")
    until = IsoDateTimeFilter(field_name="created_at", lookup_expr="lt", help_text="Before")

    class Meta:
        model = AuditEvent
        fields = ["action", "actor", "since", "until"]


@extend_schema_view(
    list=extend_schema(
        summary="List audit events",
        description=(
            "Who did what, when and from where: sign-ins, role and team changes, invitations, API keys, "
            "exports, contact merges and deletions, settings changes, number connections. Newest first. "
            "Owners and admins only."
        ),
    )
)
class AuditEventViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    serializer_class = AuditEventSerializer
    permission_classes = [RolePermission]
    required_roles = {"read": "admin", "write": "admin"}
    filter_backends = [FilterBackend]
    filterset_class = AuditEventFilter
    ordering = ["-id"]

    def get_queryset(self) -> QuerySet[AuditEvent]:
        return audit.events()
