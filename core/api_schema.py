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
    "400": "Invalid input: `details` names each field or query parameter at fault",
    "401": "No credentials, or a key that is unknown, expired or revoked",
    "403": "Your role does not allow this",
    "404": "Not found in this workspace",
    "409": "Conflicts with the workspace's current state; `code` says how (e.g. `duplicate_name`, "
    "`pipeline_in_use`, an Idempotency-Key still in use)",
    "429": "Rate limit reached; retry after the Retry-After header's seconds",
}


class ApiAutoSchema(AutoSchema):
    """Every operation documents the error shape for the errors it can answer.

    400 everywhere: any query parameter can be refused (a NUL character, a filter value out of range, a
    cursor we did not give out), not only bodies. 409 on every write: a business rule compares with
    what exists. Other statuses (422) are documented by the view with extend_schema.
    """

    def _get_response_bodies(self, direction: Any = "response") -> dict[str, Any]:
        responses: dict[str, Any] = super()._get_response_bodies(direction)
        codes = ["400", "401", "403", "429"]
        if "{" in self.path:
            codes.append("404")
        if self.method in ("POST", "PUT", "PATCH", "DELETE"):
            codes.append("409")
        for code in codes:
            if code not in responses:
                response = self._get_response_for_code(ErrorResponseSerializer, code, direction=direction)
                response["description"] = _ERRORS[code]
                responses[code] = response
        return responses
