"""API v1 for outgoing webhooks (owners and admins): endpoints, their delivery log, redelivery.

Receivers verify `X-Webhook-Signature` (`sha256=` + hex HMAC-SHA256 of the raw body with the endpoint's
secret, compared in constant time); `X-Webhook-Id` is the event's id, the same in every retry and
redelivery. Another tenant's endpoint is not in this schema: 404.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import generics, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from core.api_schema import ErrorResponseSerializer
from crm.outgoing_events import EVENTS
from crm.permissions import RolePermission, acting_user
from integrations import services
from integrations.models import WebhookDelivery, WebhookEndpoint

ROLES = {"read": "admin", "write": "admin"}


class WebhookEndpointSerializer(serializers.ModelSerializer):
    class Meta:
        model = WebhookEndpoint
        fields = [
            "id",
            "url",
            "description",
            "events",
            "active",
            "failure_streak",
            "disabled_reason",
            "created_at",
        ]
        read_only_fields = fields


class WebhookEndpointCreatedSerializer(WebhookEndpointSerializer):
    secret = serializers.CharField(help_text="Shown only in this response: store it to verify signatures.")

    class Meta(WebhookEndpointSerializer.Meta):
        fields = [*WebhookEndpointSerializer.Meta.fields, "secret"]
        read_only_fields = fields


class WebhookEndpointInputSerializer(serializers.Serializer):
    url = serializers.CharField(max_length=2000)
    events = serializers.ListField(child=serializers.ChoiceField(choices=EVENTS), allow_empty=False)
    description = serializers.CharField(max_length=200, required=False, allow_blank=True)
    active = serializers.BooleanField(required=False)


class WebhookDeliverySerializer(serializers.ModelSerializer):
    class Meta:
        model = WebhookDelivery
        fields = [
            "id",
            "event_id",
            "event",
            "status",
            "attempts",
            "status_code",
            "response_excerpt",
            "error",
            "duration_ms",
            "next_retry_at",
            "redelivery_of",
            "created_at",
            "last_attempt_at",
        ]
        read_only_fields = fields


ERRORS = {
    400: OpenApiResponse(
        ErrorResponseSerializer,
        description="`validation_error`, `invalid_events`, `invalid_url`, `scheme_not_allowed`, "
        "`port_not_allowed`, `address_not_allowed` (a private address), `host_not_found`, "
        "`credentials_in_url`, `too_many_endpoints`",
    ),
    404: OpenApiResponse(ErrorResponseSerializer, description="`not_found`"),
}


class WebhookListView(generics.ListCreateAPIView):
    """The workspace's webhook endpoints. POST subscribes a URL to events; the response holds the signing
    secret, shown this once."""

    serializer_class = WebhookEndpointSerializer
    permission_classes = [RolePermission]
    required_roles = ROLES
    queryset = WebhookEndpoint.objects.order_by("id")

    @extend_schema(
        request=WebhookEndpointInputSerializer, responses={201: WebhookEndpointCreatedSerializer, **ERRORS}
    )
    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        form = WebhookEndpointInputSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        endpoint, secret = services.create_endpoint(
            url=data["url"],
            events=data["events"],
            description=data.get("description", ""),
            created_by=acting_user(request),
        )
        if data.get("active") is False:
            services.update_endpoint(endpoint=endpoint, active=False)
        body = WebhookEndpointSerializer(endpoint).data
        return Response({**body, "secret": secret}, status=status.HTTP_201_CREATED)


class WebhookDetailView(generics.RetrieveDestroyAPIView):
    """One endpoint (never its secret). PATCH changes its URL, events, description or switches it on/off."""

    serializer_class = WebhookEndpointSerializer
    permission_classes = [RolePermission]
    required_roles = ROLES
    queryset = WebhookEndpoint.objects.all()

    @extend_schema(
        request=WebhookEndpointInputSerializer(partial=True),
        responses={200: WebhookEndpointSerializer, **ERRORS},
    )
    def patch(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        endpoint = self.get_object()
        form = WebhookEndpointInputSerializer(data=request.data, partial=True)
        form.is_valid(raise_exception=True)
        endpoint = services.update_endpoint(endpoint=endpoint, **form.validated_data)
        return Response(WebhookEndpointSerializer(endpoint).data)

    def perform_destroy(self, instance: WebhookEndpoint) -> None:
        services.delete_endpoint(endpoint=instance)


class WebhookDeliveryListView(generics.ListAPIView):
    """An endpoint's deliveries, newest first: the latest attempt's status code, response excerpt,
    duration and the next retry."""

    serializer_class = WebhookDeliverySerializer
    permission_classes = [RolePermission]
    required_roles = ROLES

    def get_queryset(self) -> QuerySet[WebhookDelivery]:
        if getattr(self, "swagger_fake_view", False):  # drf-spectacular, building the schema
            return WebhookDelivery.objects.none()
        endpoint = get_object_or_404(WebhookEndpoint, pk=self.kwargs["pk"])
        return WebhookDelivery.objects.filter(endpoint=endpoint).order_by("-id")


class WebhookRedeliverView(generics.GenericAPIView):
    """Send a delivery's event again (same event id and body) as a new delivery."""

    serializer_class = WebhookDeliverySerializer
    permission_classes = [RolePermission]
    required_roles = ROLES

    @extend_schema(
        request=None,
        responses={
            202: WebhookDeliverySerializer,
            404: OpenApiResponse(ErrorResponseSerializer, description="`not_found`"),
            409: OpenApiResponse(ErrorResponseSerializer, description="`endpoint_disabled`"),
        },
    )
    def post(self, request: Request, pk: int, delivery_id: int) -> Response:
        delivery = get_object_or_404(
            WebhookDelivery.objects.select_related("endpoint"), pk=delivery_id, endpoint_id=pk
        )
        copy = services.redeliver(delivery=delivery)
        return Response(WebhookDeliverySerializer(copy).data, status=status.HTTP_202_ACCEPTED)
