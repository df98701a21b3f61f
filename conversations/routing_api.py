"""API v1 of auto-assignment: GET/PATCH /api/v1/settings/routing/ (owners and admins). Agents' own
availability and capacity: PATCH /api/v1/agents/{id}/ (crm.api.AgentViewSet). SLA policies:
/api/v1/settings/sla-policies/ and /{id}/ (owners and admins)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import generics, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from conversations.models import RoutingSettings, SlaPolicy
from conversations.services.routing import update_routing_settings
from conversations.services.sla import delete_sla_policy, save_sla_policy
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


# --- SLA policies: /api/v1/settings/sla-policies/ (owners and admins), through conversations.services.sla


class SlaPolicySerializer(serializers.ModelSerializer[SlaPolicy]):
    team = serializers.IntegerField(source="team_id", allow_null=True, read_only=True)
    channel = serializers.IntegerField(source="channel_id", allow_null=True, read_only=True)

    class Meta:
        model = SlaPolicy
        fields = [
            "id",
            "name",
            "team",
            "channel",
            "first_response_minutes",
            "resolution_minutes",
            "business_hours_only",
            "created_at",
        ]


class SlaPolicyWriteSerializer(serializers.Serializer):
    """A policy's fields. The service checks the rest: a name, at least one target (whole minutes, 1 to a
    year), the team or number exists, a team or a number (not both), one policy per scope."""

    name = serializers.CharField(max_length=200)
    first_response_minutes = serializers.IntegerField(allow_null=True, required=False, min_value=0)
    resolution_minutes = serializers.IntegerField(allow_null=True, required=False, min_value=0)
    team = serializers.IntegerField(
        allow_null=True, required=False, min_value=1, max_value=2**31 - 1, help_text="a team id, or null"
    )
    channel = serializers.IntegerField(
        allow_null=True,
        required=False,
        min_value=1,
        max_value=2**31 - 1,
        help_text="a WhatsApp number's id, or null (neither: the default policy)",
    )
    business_hours_only = serializers.BooleanField(required=False, default=True)


SLA_ERRORS = OpenApiResponse(
    ErrorResponseSerializer,
    description="`validation_error`, `invalid_name`, `invalid_first_response_minutes`, "
    "`invalid_resolution_minutes`, `no_target`, `invalid_team`, `invalid_channel`, `invalid_scope`, "
    "`duplicate_policy`",
)


def _policy_changes(data: dict[str, Any], policy: SlaPolicy | None = None) -> dict[str, Any]:
    """The service's arguments: the given fields over the policy's current ones (PATCH)."""
    current: dict[str, Any] = {}
    if policy is not None:
        current = {
            "name": policy.name,
            "first_response_minutes": policy.first_response_minutes,
            "resolution_minutes": policy.resolution_minutes,
            "team_id": policy.team_id,
            "channel_id": policy.channel_id,
            "business_hours_only": policy.business_hours_only,
        }
    names = {"team": "team_id", "channel": "channel_id"}
    current.update({names.get(k, k): v for k, v in data.items()})
    current.setdefault("first_response_minutes", None)
    current.setdefault("resolution_minutes", None)
    return current


class SlaPolicyListView(generics.ListAPIView):
    """GET: the SLA policies. POST: add one. The most specific policy applies to a conversation: its
    number's (`channel`), then its team's (`team`), then the default (neither). Targets are minutes,
    counted in business hours when `business_hours_only`."""

    permission_classes = [RolePermission]
    required_roles = {"read": "admin", "write": "admin"}
    serializer_class = SlaPolicySerializer
    queryset = SlaPolicy.objects.all()

    @extend_schema(request=SlaPolicyWriteSerializer, responses={201: SlaPolicySerializer, 400: SLA_ERRORS})
    def post(self, request: Request) -> Response:
        form = SlaPolicyWriteSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        policy = save_sla_policy(**_policy_changes(dict(form.validated_data)))
        return Response(SlaPolicySerializer(policy).data, status=status.HTTP_201_CREATED)


class SlaPolicyDetailView(generics.RetrieveAPIView):
    """GET: one SLA policy. PATCH: change some of its fields (the others stay). DELETE: remove it
    (conversations keep the due times already set)."""

    permission_classes = [RolePermission]
    required_roles = {"read": "admin", "write": "admin"}
    serializer_class = SlaPolicySerializer
    queryset = SlaPolicy.objects.all()

    @extend_schema(
        request=SlaPolicyWriteSerializer(partial=True),
        responses={200: SlaPolicySerializer, 400: SLA_ERRORS},
    )
    def patch(self, request: Request, pk: int) -> Response:
        policy = self.get_object()
        form = SlaPolicyWriteSerializer(data=request.data, partial=True)
        form.is_valid(raise_exception=True)
        saved = save_sla_policy(policy=policy, **_policy_changes(dict(form.validated_data), policy))
        return Response(SlaPolicySerializer(saved).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, pk: int) -> Response:
        delete_sla_policy(policy=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)
