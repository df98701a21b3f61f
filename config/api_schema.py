"""OpenAPI (drf-spectacular): every operation documents the errors it can answer, in the one shape."""

from __future__ import annotations

from typing import Any

from drf_spectacular.openapi import AutoSchema
from rest_framework import serializers


class ErrorSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="Stable, machine-readable")
    message = serializers.CharField(help_text="For people")
    details = serializers.DictField(help_text="Field name → messages for validation errors", required=False)


class ErrorResponseSerializer(serializers.Serializer):
    error = ErrorSerializer()


_ERRORS = {
    "400": "Invalid input: `details` names each field at fault",
    "401": "No credentials, or a key that is unknown, expired or revoked",
    "403": "Your role does not allow this",
    "404": "Not found in this workspace",
    "429": "Rate limit reached; retry after the Retry-After header's seconds",
}


class ApiAutoSchema(AutoSchema):
    """Every operation documents the error shape for the errors it can answer."""

    def _get_response_bodies(self, direction: Any = "response") -> dict[str, Any]:
        responses: dict[str, Any] = super()._get_response_bodies(direction)
        codes = ["401", "403", "429"]
        if self.method in ("POST", "PUT", "PATCH") or self._is_list_view():
            codes.insert(0, "400")
        if "{" in self.path:
            codes.append("404")
        for code in codes:
            if code not in responses:
                response = self._get_response_for_code(ErrorResponseSerializer, code, direction=direction)
                response["description"] = _ERRORS[code]
                responses[code] = response
        return responses
