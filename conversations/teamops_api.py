"""API v1 of the team-operations settings: the CSAT survey (GET/PATCH /api/v1/settings/csat/)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from conversations.models import CsatSettings
from conversations.services.csat import update_csat_settings
from core.api_schema import ErrorResponseSerializer
from crm.permissions import RolePermission


class CsatSettingsSerializer(serializers.ModelSerializer[CsatSettings]):
    question = serializers.CharField(max_length=1024, allow_blank=False)
    comment_prompt = serializers.CharField(max_length=1024, allow_blank=True)
    thanks_text = serializers.CharField(max_length=1024, allow_blank=True)
    comment_minutes = serializers.IntegerField(min_value=1, max_value=1440)

    class Meta:
        model = CsatSettings
        fields = ["enabled", "question", "ask_comment", "comment_prompt", "comment_minutes", "thanks_text"]


class CsatSettingsView(APIView):
    """GET: the customer-satisfaction survey's settings. PATCH: change some of them (admins and owners).
    When enabled, resolving a conversation sends the customer a 1-5 rating list (within the 24-hour
    window, never to blocked or opted-out contacts, once per resolution)."""

    permission_classes = [RolePermission]
    required_roles = {"read": "admin", "write": "admin"}

    @extend_schema(responses={200: CsatSettingsSerializer})
    def get(self, request: Request) -> Response:
        return Response(CsatSettingsSerializer(CsatSettings.load()).data)

    @extend_schema(
        request=CsatSettingsSerializer,
        responses={200: CsatSettingsSerializer, 400: ErrorResponseSerializer},
    )
    def patch(self, request: Request) -> Response:
        form = CsatSettingsSerializer(data=request.data, partial=True)
        form.is_valid(raise_exception=True)
        changes: dict[str, Any] = dict(form.validated_data)
        return Response(CsatSettingsSerializer(update_csat_settings(**changes)).data)
