"""The caller's own notifications in the API: GET /api/v1/notifications/ (newest first, cursor pages,
`?unread=true`), POST /api/v1/notifications/{id}/read/, POST /api/v1/notifications/read-all/, and
GET/PATCH /api/v1/notifications/preferences/ (e-mail on or off per kind). A person's: the session's
user or a personal key's; an integration key acts as nobody and is refused (403 no_person). Another
user's notification is 404."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view, inline_serializer
from rest_framework import mixins, serializers, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response

from core.errors import ServiceError
from crm.models import Notification
from crm.permissions import acting_user
from crm.services import notifications as service


class NotificationSerializer(serializers.ModelSerializer):
    conversation = serializers.IntegerField(source="conversation_id", read_only=True, allow_null=True)

    class Meta:
        model = Notification
        fields = ["id", "kind", "title", "body", "url", "conversation", "read_at", "created_at"]
        read_only_fields = fields


PREFERENCES = inline_serializer(
    "NotificationPreferences",
    {str(kind): serializers.BooleanField(required=False) for kind in service.EMAIL_DEFAULTS},
)


def _person(request: Request) -> Any:
    user = acting_user(request)
    if user is None:
        raise ServiceError(
            "no_person", "Notifications belong to a person: use a session or a personal key.", status=403
        )
    return user


@extend_schema_view(
    list=extend_schema(
        summary="List my notifications",
        parameters=[OpenApiParameter("unread", bool, description="Only those not read yet")],
    ),
)
class NotificationViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    serializer_class = NotificationSerializer
    queryset = Notification.objects.none()  # the schema's id type; get_queryset() gives the caller's own
    lookup_value_regex = r"[0-9]+"
    ordering = "-id"

    def get_queryset(self) -> QuerySet[Notification]:
        rows = Notification.objects.filter(user=_person(self.request))
        if self.request.query_params.get("unread") in ("true", "1"):
            rows = rows.filter(read_at__isnull=True)
        return rows

    @extend_schema(
        summary="Mark one of my notifications read", request=None, responses=NotificationSerializer
    )
    @action(detail=True, methods=["post"])
    def read(self, request: Request, pk: str | None = None) -> Response:
        try:
            notification_id = int(pk or "")
        except ValueError:
            raise NotFound from None
        notification = service.mark_notification_read(user=_person(request), notification_id=notification_id)
        return Response(NotificationSerializer(notification).data)

    @extend_schema(
        summary="Mark all my notifications read",
        request=None,
        responses=inline_serializer("NotificationsRead", {"marked": serializers.IntegerField()}),
    )
    @action(detail=False, methods=["post"], url_path="read-all")
    def read_all(self, request: Request) -> Response:
        return Response({"marked": service.mark_all_notifications_read(user=_person(request))})

    @extend_schema(
        summary="My e-mail preferences per notification kind",
        description="In-app notifications are always on; these say which kinds also come by e-mail.",
        request=PREFERENCES,
        responses=PREFERENCES,
    )
    @action(detail=False, methods=["get", "patch"])
    def preferences(self, request: Request) -> Response:
        user = _person(request)
        if request.method == "PATCH":
            data = request.data if isinstance(request.data, dict) else None
            if data is None or not all(isinstance(v, bool) for v in data.values()):
                raise ServiceError("invalid_preferences", "Send an object of kind: true or false.")
            return Response(service.set_email_preferences(user=user, choices=dict(data)))
        return Response(service.email_preferences(user_ids=[user.pk])[user.pk])
