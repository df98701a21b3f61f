"""API conventions for every app: one error shape {"error": {"code", "message", "details"}}, cursor
pagination, rate limits per tenant and key or user. The OpenAPI side is in config/api_schema.py.

This module must not import rest_framework.views/generics at import time: DRF's settings name classes
defined here, and those modules read DRF's settings while they load.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django_ratelimit.core import get_usage
from rest_framework import exceptions, pagination, status, throttling
from rest_framework.response import Response

# Services raise it (no DRF import there, so services load before DRF's settings); re-exported here.
from crm.errors import ServiceError


class ApiError(exceptions.APIException):
    """Raise from services/views for a specific code: ApiError(status=422, code="outside_window", ...)."""

    def __init__(self, *, status_code: int, code: str, message: str, details: Any = None) -> None:
        super().__init__(detail=message, code=code)
        self.status_code = status_code
        self.error_code = code
        self.message = message
        self.details = details or {}


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details or {}}}


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    # Imported here: rest_framework.views reads DRF's settings, which name classes of this module.
    from rest_framework.views import exception_handler as drf_exception_handler

    if isinstance(exc, ApiError):
        return Response(error_body(exc.error_code, exc.message, exc.details), status=exc.status_code)
    if isinstance(exc, ServiceError):
        return Response(error_body(exc.code, exc.message, exc.details), status=exc.status_code)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        details = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
        response.data = error_body("validation_error", "The request has invalid fields.", details)
    elif isinstance(exc, exceptions.APIException):
        codes = exc.get_codes()
        code = codes if isinstance(codes, str) else exc.default_code
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.default_detail)
        response.data = error_body(str(code), str(detail))
        if isinstance(exc, exceptions.Throttled) and getattr(exc, "wait", None):
            response["Retry-After"] = str(int(exc.wait))  # type: ignore[attr-defined]
    if response.status_code == status.HTTP_500_INTERNAL_SERVER_ERROR:
        response.data = error_body("server_error", "Something went wrong on our side.")
    return response


# ---------------------------------------------------------------------------------------------------
# Conventions every API view gets from REST_FRAMEWORK's defaults (see settings.py).
# ---------------------------------------------------------------------------------------------------


class CursorPagination(pagination.CursorPagination):
    """Cursor pages: stable under inserts and no COUNT(*) on big tables. 50 by default, at most 100.

    Views order by `-id` unless they set `ordering` (or the client asks with `?ordering=`, among the
    view's `ordering_fields`).
    """

    page_size = 50
    max_page_size = 100
    page_size_query_param = "page_size"
    ordering = "-id"

    def get_page_size(self, request: Any) -> int:
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        try:
            size = int(raw)
        except ValueError:
            raise ApiError(
                status_code=400,
                code="invalid_page_size",
                message=f"page_size must be a whole number from 1 to {self.max_page_size}.",
                details={"page_size": [raw]},
            ) from None
        if not 1 <= size <= self.max_page_size:
            raise ApiError(
                status_code=400,
                code="invalid_page_size",
                message=f"page_size must be a whole number from 1 to {self.max_page_size}.",
                details={"page_size": [raw]},
            )
        return size


def rate_limit_key(group: str, request: Any) -> str:
    """Tenant and principal: an API key's prefix, else the user, else the client address."""
    schema = getattr(getattr(request, "tenant", None), "schema_name", "public")
    auth = getattr(request, "auth", None)
    prefix = getattr(auth, "prefix", None)
    if prefix:
        who = f"key:{prefix}"
    elif getattr(request, "user", None) is not None and request.user.is_authenticated:
        who = f"user:{request.user.pk}"
    else:
        who = f"ip:{request.META.get('REMOTE_ADDR', '')}"
    return f"{schema}:{who}"


class TenantRateThrottle(throttling.BaseThrottle):
    """settings.API_RATE_LIMIT (default 600/m) per tenant and key or user, counted by django-ratelimit.

    Over the limit DRF raises Throttled(wait): 429, Retry-After, and the one error shape.
    """

    def __init__(self) -> None:
        self._wait: float | None = None

    def allow_request(self, request: Any, view: Any) -> bool:
        usage = get_usage(
            request, group="api", key=rate_limit_key, rate=settings.API_RATE_LIMIT, increment=True
        )
        if usage is None or not usage["should_limit"]:
            return True
        self._wait = max(1, int(usage["time_left"]))
        return False

    def wait(self) -> float | None:
        return self._wait
