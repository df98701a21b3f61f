"""GET/PATCH /api/v1/settings/security/: the workspace's sign-in policy (owners and admins)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api_schema import ErrorResponseSerializer
from crm.permissions import RolePermission, acting_user
from crm.services import two_factor


class SecuritySettingsSerializer(serializers.Serializer):
    require_two_factor_for_admins = serializers.BooleanField(
        help_text="Owners and admins must use a second factor (TOTP); those without one set it up at their "
        "next sign-in. API keys are not affected."
    )


class SecuritySettingsView(APIView):
    permission_classes = [RolePermission]
    required_roles = {"read": "admin", "write": "admin"}

    @extend_schema(responses={200: SecuritySettingsSerializer})
    def get(self, request: Request) -> Response:
        row = two_factor.security_settings()
        return Response({"require_two_factor_for_admins": row.require_two_factor_for_admins})

    @extend_schema(
        request=SecuritySettingsSerializer,
        responses={200: SecuritySettingsSerializer, 400: ErrorResponseSerializer},
    )
    def patch(self, request: Request) -> Response:
        form = SecuritySettingsSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        row = two_factor.set_two_factor_requirement(
            required=form.validated_data["require_two_factor_for_admins"], by=acting_user(request)
        )
        return Response({"require_two_factor_for_admins": row.require_two_factor_for_admins})
