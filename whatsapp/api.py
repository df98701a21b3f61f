"""API v1 routes of the Cloud API channel (mounted under /api/v1/ on tenant hosts): its message templates."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import generics, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from conversations.models import Channel
from core.api_schema import ErrorResponseSerializer
from core.errors import ServiceError
from crm.permissions import RolePermission
from whatsapp.models import MessageTemplate
from whatsapp.services import templates as template_services


class TemplateSerializer(serializers.ModelSerializer):
    body_placeholders = serializers.SerializerMethodField()
    header_format = serializers.SerializerMethodField()
    button_placeholders = serializers.SerializerMethodField()

    class Meta:
        model = MessageTemplate
        fields = [
            "id",
            "waba_id",
            "name",
            "language",
            "category",
            "status",
            "status_reason",
            "quality_score",
            "pending_category",
            "category_change_at",
            "previous_category",
            "parameter_format",
            "components",
            "body_placeholders",
            "header_format",
            "button_placeholders",
        ]

    def get_body_placeholders(self, obj: MessageTemplate) -> list[str]:
        return obj.body_placeholders()

    def get_header_format(self, obj: MessageTemplate) -> str | None:
        return obj.header_format()

    def get_button_placeholders(self, obj: MessageTemplate) -> dict[int, list[str]]:
        return obj.button_placeholders()


class TemplateDraftSerializer(serializers.Serializer):
    """A new template (whatsapp.template_rules describes the draft; its rules are checked by the service,
    which answers 400 invalid_template with every problem in details.problems)."""

    waba_id = serializers.CharField(max_length=64)
    name = serializers.CharField(max_length=600, required=False, allow_blank=True)
    language = serializers.CharField(max_length=20, required=False, allow_blank=True)
    category = serializers.CharField(max_length=30, required=False, allow_blank=True)
    header = serializers.JSONField(required=False)
    body = serializers.CharField(max_length=4000, required=False, allow_blank=True, trim_whitespace=False)
    body_examples = serializers.JSONField(required=False)
    footer = serializers.CharField(max_length=200, required=False, allow_blank=True, trim_whitespace=False)
    buttons = serializers.JSONField(required=False)
    add_security_recommendation = serializers.BooleanField(required=False)
    code_expiration_minutes = serializers.JSONField(required=False)
    otp_button_text = serializers.CharField(max_length=100, required=False, allow_blank=True)


class TemplateListView(generics.ListCreateAPIView):
    """The message templates of the tenant's numbers (?status=APPROVED for the sendable ones). POST submits
    a new one to Meta (owners and admins)."""

    serializer_class = TemplateSerializer
    permission_classes = [RolePermission]
    required_roles = {"read": "agent", "write": "admin"}
    filterset_fields = ["status", "language", "waba_id", "name"]
    ordering = ["name", "language", "id"]

    def get_queryset(self) -> QuerySet[MessageTemplate]:
        return MessageTemplate.objects.order_by("name", "language", "id")

    @extend_schema(
        request=TemplateDraftSerializer,
        responses={
            201: TemplateSerializer,
            400: OpenApiResponse(
                ErrorResponseSerializer,
                description="`invalid_template`: `details.problems` lists each rule broken as "
                "{field, code, message}; `validation_error`: a field of the wrong type",
            ),
            404: OpenApiResponse(
                ErrorResponseSerializer,
                description="`unknown_account`: no number of yours is in that account",
            ),
            409: OpenApiResponse(
                ErrorResponseSerializer, description="`template_exists`: that name and language exist"
            ),
            422: OpenApiResponse(ErrorResponseSerializer, description="`template_refused`: Meta refused it"),
            502: OpenApiResponse(
                ErrorResponseSerializer,
                description="`graph_unavailable` or `graph_auth`: Meta could not be reached or refused the "
                "token; nothing was stored",
            ),
        },
    )
    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        draft = TemplateDraftSerializer(data=request.data)
        draft.is_valid(raise_exception=True)
        data = dict(draft.validated_data)
        template = template_services.create_template(waba_id=data.pop("waba_id"), draft=data)
        return Response(TemplateSerializer(template).data, status=status.HTTP_201_CREATED)


class TemplateDetailView(generics.RetrieveDestroyAPIView):
    """One template; DELETE removes it at Meta and here (owners and admins)."""

    serializer_class = TemplateSerializer
    permission_classes = [RolePermission]
    required_roles = {"read": "agent", "write": "admin"}

    def get_queryset(self) -> QuerySet[MessageTemplate]:
        return MessageTemplate.objects.filter(waba_id__in=template_services.tenant_accounts())

    @extend_schema(
        responses={
            204: None,
            404: OpenApiResponse(ErrorResponseSerializer, description="`not_found`"),
            422: OpenApiResponse(ErrorResponseSerializer, description="`template_refused`: Meta refused"),
            502: OpenApiResponse(
                ErrorResponseSerializer,
                description="`graph_unavailable` or `graph_auth`: nothing was deleted",
            ),
        }
    )
    def delete(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().delete(request, *args, **kwargs)

    def perform_destroy(self, instance: MessageTemplate) -> None:
        template_services.delete_template(template=instance)


class ChannelConnectSerializer(serializers.Serializer):
    provider = serializers.CharField()
    server_url = serializers.CharField(required=False, allow_blank=True)
    api_key = serializers.CharField(required=False, allow_blank=True)
    session = serializers.CharField()
    name = serializers.CharField(required=False, allow_blank=True)


class ChannelConnectedSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    provider = serializers.CharField()
    status = serializers.CharField()
    webhook_url = serializers.CharField()
    webhook_key = serializers.CharField(help_text="Shown once: it is stored encrypted and never shown again")


class ChannelSerializer(serializers.ModelSerializer):
    class Meta:
        model = Channel
        fields = [
            "id",
            "name",
            "display_phone",
            "provider",
            "status",
            "status_reason",
            "waba_id",
            "throughput_cap",
        ]


# How POST /api/v1/whatsapp/channels/ connects a number of another provider: a channel app above this one
# registers `fn(request=, data=) -> dict` (the 201 body; ServiceError on refusal) in its AppConfig.ready(),
# so whatsapp never imports it (waha registers "waha").
ChannelConnector = Callable[..., dict[str, Any]]
_connectors: dict[str, ChannelConnector] = {}


def register_connector(provider: str, connector: ChannelConnector) -> None:
    _connectors[provider] = connector


class ChannelListView(generics.ListCreateAPIView):
    """The workspace's WhatsApp numbers with their ids and providers (a campaign's `channel`). POST
    connects one (owners and admins) through a provider that offers it: `{"provider": "waha",
    "server_url", "api_key", "session", "name"?}` → 201 with its webhook URL and key (shown once)."""

    serializer_class = ChannelSerializer
    permission_classes = [RolePermission]
    required_roles = {"read": "agent", "write": "admin"}
    ordering = ["id"]

    def get_queryset(self) -> QuerySet[Channel]:
        return Channel.objects.order_by("id")

    @extend_schema(
        request=ChannelConnectSerializer,
        responses={
            201: ChannelConnectedSerializer,
            400: OpenApiResponse(
                ErrorResponseSerializer,
                description="`unknown_provider`, `invalid_server_url`, `missing_server_url`, "
                "`missing_api_key`, `invalid_api_key`, `invalid_session_name`",
            ),
            409: OpenApiResponse(ErrorResponseSerializer, description="`session_taken`"),
            422: OpenApiResponse(ErrorResponseSerializer, description="`waha_auth_failed`"),
            502: OpenApiResponse(
                ErrorResponseSerializer, description="`waha_unreachable`, `waha_refused`: nothing was stored"
            ),
        },
    )
    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        data = request.data if isinstance(request.data, dict) else {}
        provider = data.get("provider")
        connector = _connectors.get(provider) if isinstance(provider, str) else None
        if connector is None:
            raise ServiceError(
                "unknown_provider",
                f"Numbers of these providers are connected here: {', '.join(sorted(_connectors)) or 'none'} "
                "(Cloud API numbers: Settings → WhatsApp numbers).",
                field="provider",
            )
        return Response(connector(request=request, data=data), status=status.HTTP_201_CREATED)
