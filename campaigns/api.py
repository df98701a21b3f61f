"""API v1 routes of campaigns (mounted under /api/v1/ on tenant hosts). Supervisors and above read;
owners and admins create and control. Another tenant's campaign is simply not in this schema: 404."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db.models import Count, Q, QuerySet
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import generics, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from campaigns import services
from campaigns.models import Campaign, Recipient
from conversations.models import Channel
from core.api_schema import ErrorResponseSerializer
from crm.permissions import RolePermission, acting_user

ROLES = {"read": "supervisor", "write": "admin"}


class CampaignCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    channel = serializers.IntegerField(help_text="id of a number (GET /api/v1/whatsapp/channels/)")
    template = serializers.CharField(max_length=512, help_text="an approved template's name")
    language = serializers.CharField(max_length=15)
    audience = serializers.JSONField(
        help_text='{"tags": [names], "attributes": {key: value}, "last_inbound_after": date, '
        '"last_inbound_before": date, "phones": [E.164]}'
    )
    parameters = serializers.JSONField(
        required=False,
        help_text='{"body": [...], "header": ..., "buttons": {...}}: literals or {{contact.name}}, '
        "{{contact.first_name}}, {{contact.attributes.<key>}}",
    )
    schedule_at = serializers.DateTimeField(required=False, allow_null=True)
    window_start = serializers.TimeField(required=False, allow_null=True)
    window_end = serializers.TimeField(required=False, allow_null=True)


class CampaignSerializer(serializers.ModelSerializer):
    template = serializers.CharField(source="template_name")
    queued = serializers.SerializerMethodField()
    pending = serializers.SerializerMethodField()
    sent = serializers.SerializerMethodField()
    delivered = serializers.SerializerMethodField()
    read = serializers.SerializerMethodField()
    replied = serializers.SerializerMethodField()
    failed = serializers.SerializerMethodField()
    skipped = serializers.SerializerMethodField()

    class Meta:
        model = Campaign
        fields = [
            "id",
            "name",
            "channel",
            "template",
            "language",
            "category",
            "parameters",
            "audience",
            "schedule_at",
            "window_start",
            "window_end",
            "status",
            "pause_reason",
            "waiting",
            "total",
            "pending",
            "queued",
            "sent",
            "delivered",
            "read",
            "replied",
            "failed",
            "skipped",
            "created_at",
            "started_at",
            "finished_at",
        ]

    def _counts(self, obj: Campaign) -> dict[str, int]:
        cached = getattr(obj, "_counts", None)
        if cached is None and hasattr(obj, "n_pending"):
            # Annotated by the list's queryset: no query per campaign.
            cached = {name: getattr(obj, f"n_{name}") for name in Recipient.Status.values}
            obj._counts = cached  # type: ignore[attr-defined]
        if cached is None:
            cached = services.counters(obj)
            obj._counts = cached  # type: ignore[attr-defined]
        return cached

    def get_pending(self, obj: Campaign) -> int:
        return self._counts(obj)["pending"]

    def get_queued(self, obj: Campaign) -> int:
        return self._counts(obj)["queued"]

    def get_sent(self, obj: Campaign) -> int:
        return self._counts(obj)["sent"]

    def get_delivered(self, obj: Campaign) -> int:
        return self._counts(obj)["delivered"]

    def get_read(self, obj: Campaign) -> int:
        return self._counts(obj)["read"]

    def get_replied(self, obj: Campaign) -> int:
        return self._counts(obj)["replied"]

    def get_failed(self, obj: Campaign) -> int:
        return self._counts(obj)["failed"]

    def get_skipped(self, obj: Campaign) -> int:
        return self._counts(obj)["skipped"]


ERRORS = {
    400: OpenApiResponse(
        ErrorResponseSerializer,
        description="`invalid_audience`, `invalid_parameters`, `template_parameters` (do not fit the "
        "template), `unknown_template`, `template_not_approved`, `invalid_window`, `validation_error`",
    ),
    404: OpenApiResponse(ErrorResponseSerializer, description="`not_found`: no such number or campaign"),
}
STATE_ERRORS = {
    200: None,
    404: OpenApiResponse(ErrorResponseSerializer, description="`not_found`"),
    409: OpenApiResponse(
        ErrorResponseSerializer,
        description="`invalid_state` (not possible in the campaign's status), `channel_inactive`, "
        "`template_not_approved` (resume)",
    ),
}


class CampaignListView(generics.ListCreateAPIView):
    """The workspace's campaigns, newest first. POST creates a draft (owners and admins)."""

    serializer_class = CampaignSerializer
    permission_classes = [RolePermission]
    required_roles = ROLES

    def get_queryset(self) -> QuerySet[Campaign]:
        counts = {
            f"n_{name}": Count("recipients", filter=Q(recipients__status=name))
            for name in Recipient.Status.values
        }
        return Campaign.objects.annotate(**counts).order_by("-id")

    @extend_schema(request=CampaignCreateSerializer, responses={201: CampaignSerializer, **ERRORS})
    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        form = CampaignCreateSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        channel = get_object_or_404(Channel, pk=data["channel"])
        campaign = services.create_campaign(
            name=data["name"],
            channel=channel,
            template=data["template"],
            language=data["language"],
            audience=data["audience"],
            parameters=data.get("parameters"),
            schedule_at=data.get("schedule_at"),
            window_start=data.get("window_start"),
            window_end=data.get("window_end"),
            created_by=acting_user(request),
        )
        return Response(CampaignSerializer(campaign).data, status=status.HTTP_201_CREATED)


class CampaignDetailView(generics.RetrieveAPIView):
    """A campaign with its recipients counted by status."""

    serializer_class = CampaignSerializer
    permission_classes = [RolePermission]
    required_roles = ROLES
    queryset = Campaign.objects.all()


ACTIONS: dict[str, Callable[..., Campaign]] = {
    "start": services.start_campaign,
    "pause": services.pause_campaign,
    "resume": services.resume_campaign,
    "cancel": services.cancel_campaign,
}


class CampaignActionView(generics.GenericAPIView):
    serializer_class = CampaignSerializer
    permission_classes = [RolePermission]
    required_roles = ROLES
    queryset = Campaign.objects.all()
    action_name = ""

    @extend_schema(request=None, responses={**STATE_ERRORS, 200: CampaignSerializer})
    def post(self, request: Request, pk: int) -> Response:
        campaign = self.get_object()
        run = ACTIONS[self.action_name]
        campaign = run(campaign=campaign)
        return Response(CampaignSerializer(campaign).data)


class CampaignStartView(CampaignActionView):
    """Fix the audience and run now (or at schedule_at)."""

    action_name = "start"


class CampaignPauseView(CampaignActionView):
    """Stop queueing; messages queued and not yet being sent are held."""

    action_name = "pause"


class CampaignResumeView(CampaignActionView):
    action_name = "resume"


class CampaignCancelView(CampaignActionView):
    action_name = "cancel"
