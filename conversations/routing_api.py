"""API v1 of auto-assignment: GET/PATCH /api/v1/settings/routing/ (owners and admins). Agents' own
availability and capacity: PATCH /api/v1/agents/{id}/ (crm.api.AgentViewSet)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from conversations.models import RoutingSettings
from conversations.services.routing import update_routing_settings
from core.api_schema import ErrorResponseSerializer
from crm.permissions import RolePermission


class RoutingSettingsSerializer(serializers.ModelSerializer[RoutingSettings]):
    mode = serializers.ChoiceField(choices=RoutingSettings.Mode.choices)
    default_capacity = serializers.IntegerField(min_value=1, max_value=1000)
    team = serializers.IntegerField(source="team_id", allow_null=True, required=False)
    idle_minutes = serializers.IntegerField(min_value=0, max_value=24 * 60)

    class Meta:
        model = RoutingSettings
        fields = ["mode", "default_capacity", "team", "idle_minutes"]


class RoutingSettingsView(APIView):
    """GET: how conversations entering the queue find an agent. PATCH: change some of it.
    `mode`: manual, round_robin (the online agent with room who got one longest ago) or least_busy (the
    one holding fewest open conversations); `default_capacity`: most open conversations per agent unless
    the agent has their own; `team`: only that team's members receive conversations (null: everyone);
    `idle_minutes`: online agents idle this long go offline (0: never)."""

    permission_classes = [RolePermission]
    required_roles = {"read": "admin", "write": "admin"}

    @extend_schema(responses={200: RoutingSettingsSerializer})
    def get(self, request: Request) -> Response:
        return Response(RoutingSettingsSerializer(RoutingSettings.load()).data)

    @extend_schema(
        request=RoutingSettingsSerializer,
        responses={200: RoutingSettingsSerializer, 400: ErrorResponseSerializer},
    )
    def patch(self, request: Request) -> Response:
        form = RoutingSettingsSerializer(data=request.data, partial=True)
        form.is_valid(raise_exception=True)
        data: dict[str, Any] = dict(form.validated_data)
        changes: dict[str, Any] = {
            k: data[k] for k in ("mode", "default_capacity", "idle_minutes") if k in data
        }
        if "team_id" in data:
            changes["team_id"] = data["team_id"]
        return Response(RoutingSettingsSerializer(update_routing_settings(**changes)).data)
