"""API conventions for every app's DRF views: the one exception handler, cursor pagination, filters that
refuse what PostgreSQL would, NUL-free JSON, rate limits per tenant and key or user. The OpenAPI side is
core/api_schema.py. config/settings.py's REST_FRAMEWORK names these classes; apps import them from here.

This module must not import rest_framework.views/generics at import time: DRF's settings name classes
defined here, and those modules read DRF's settings while they load.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import django_filters
from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import models
from django.http import Http404
from django_filters.rest_framework import DjangoFilterBackend
from django_filters.rest_framework import FilterSet as RestFilterSet
from django_ratelimit.core import get_usage
from rest_framework import exceptions, pagination, parsers, status, throttling
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.response import Response

from core.errors import ServiceError, error_body
from core.net import client_ip


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """The API's one exception handler (REST_FRAMEWORK["EXCEPTION_HANDLER"]): whatever a view or a service
    raises is answered in the one shape, {"error": {"code", "message", "details"}}, built by
    core.errors.error_body. A ServiceError (or any subclass: MessageRejected, WorkflowError, ...) answers
    its own `exc.status` with `exc.body()`, so views never catch and translate service errors by hand;
    Django's Http404/PermissionDenied become DRF's 404/403; DRF's own exceptions (validation, auth,
    throttling with Retry-After, parse errors) keep their status with a stable code; anything unknown
    is left to Django's 500 handling (config/errors.py), which answers the same shape under /api/."""
    # Imported here: rest_framework.views reads DRF's settings, which name classes of this module.
    from rest_framework.views import exception_handler as drf_exception_handler

    if isinstance(exc, ServiceError):
        return Response(exc.body(), status=exc.status)
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


# Conventions every API view gets from REST_FRAMEWORK's defaults (see config/settings.py).


NUL_MESSAGE = "Null characters are not allowed."


def find_nul(document: Any) -> str | None:
    """The path ("", "name", "attributes.note", "tags.2") of a string, key or value, holding a NUL
    character; None when there is none. PostgreSQL stores no NUL in text or jsonb. (A loop, not
    recursion: a document nested as deep as the JSON parser allows must not overflow the stack here.)"""
    pending: list[tuple[str, Any]] = [("", document)]
    while pending:
        path, value = pending.pop()
        if isinstance(value, str):
            if "\x00" in value:
                return path
        elif isinstance(value, dict):
            for key, item in value.items():
                inner = f"{path}.{key}" if path else str(key)
                if "\x00" in str(key):
                    return inner
                pending.append((inner, item))
        elif isinstance(value, list):
            pending.extend((f"{path}.{i}" if path else str(i), item) for i, item in enumerate(value))
    return None


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser, refusing NUL characters anywhere in the document with a 400 that names the field.

    Serializer CharFields refuse NUL themselves, but free-form JSON (contact attributes, template
    parameters, interactive bodies) would reach jsonb, which refuses it with a DataError after the
    request has begun writing; refusing it here is before any write.
    """

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise exceptions.ParseError("JSON parse error - nested too deeply.") from None
        field = find_nul(data)
        if field is not None:
            raise exceptions.ValidationError({field or "non_field_errors": [NUL_MESSAGE]})
        return data


# Filters: every list's django-filter FilterSet derives from FilterSet below (the backend makes the
# FilterSets of `filterset_fields` from it too), so a value PostgreSQL would refuse is a 400 before any
# query runs, never a DataError (or, in a streamed export, a truncated file).


MAX_UTC_OFFSET = dt.timedelta(hours=14)  # Kiribati; no time zone is further from UTC


class UtcIsoDateTimeField(django_filters.fields.IsoDateTimeField):
    """ISO 8601, converted to UTC. Python takes offsets up to ±23:59 and PostgreSQL only up to ±15:59: an
    offset no time zone has, or an instant outside the years 1 to 9999 in UTC, is a 400 here rather than a
    DataError in the database."""

    def to_python(self, value: Any) -> dt.datetime | None:
        parsed = super().to_python(value)
        if parsed is None:
            return None
        offset = parsed.utcoffset()
        if offset is not None and abs(offset) > MAX_UTC_OFFSET:
            raise ValidationError("Enter a UTC offset between -14:00 and +14:00.", code="out_of_range")
        try:
            return parsed.astimezone(dt.UTC)
        except (OverflowError, ValueError):
            raise ValidationError(
                "Enter a date/time between the years 1 and 9999 (UTC).", code="out_of_range"
            ) from None


class IsoDateTimeFilter(django_filters.IsoDateTimeFilter):
    field_class = UtcIsoDateTimeField


class FilterSet(RestFilterSet):
    FILTER_DEFAULTS = {
        **RestFilterSet.FILTER_DEFAULTS,
        models.DateTimeField: {"filter_class": IsoDateTimeFilter},
    }


class FilterBackend(DjangoFilterBackend):
    filterset_base = FilterSet


class CursorPagination(pagination.CursorPagination):
    """Cursor pages: stable under inserts and no COUNT(*) on big tables. 50 by default, at most 100.

    Views order by `-id` unless they set `ordering` (or the client asks with `?ordering=`, among the
    view's `ordering_fields`).
    """

    page_size = 50
    max_page_size = 100
    page_size_query_param = "page_size"
    ordering = "-id"

    def paginate_queryset(self, queryset: Any, request: Any, view: Any = None) -> list[Any] | None:
        self._model = queryset.model
        return super().paginate_queryset(queryset, request, view)

    def decode_cursor(self, request: Any) -> pagination.Cursor | None:
        # DRF answers 404 for a cursor it cannot read; the list exists, the parameter is wrong: 400.
        try:
            cursor = super().decode_cursor(request)
        except exceptions.NotFound:
            raise self._invalid_cursor() from None
        if cursor is None or cursor.position is None:
            return cursor
        # The position goes into SQL as a value of the ordering field: a forged one that does not fit that
        # field (text for an id, an offset PostgreSQL refuses, a NUL) must not reach the database.
        try:
            position: Any = self._clean_position(str(cursor.position))  # text, whatever the stubs say
        except ValidationError:
            raise self._invalid_cursor() from None
        return pagination.Cursor(offset=cursor.offset, reverse=cursor.reverse, position=position)

    def _clean_position(self, position: str) -> str:
        if "\x00" in position:
            raise ValidationError("NUL")
        try:
            field = self._model._meta.get_field(self.ordering[0].lstrip("-"))
        except Exception:  # an annotation or an unknown model: DRF's own handling applies
            return position
        if isinstance(field, models.DateTimeField):
            value = UtcIsoDateTimeField().to_python(position)
            return value.isoformat() if value else position
        return str(field.to_python(position))

    def _invalid_cursor(self) -> ServiceError:
        return ServiceError(
            "invalid_cursor",
            "The cursor is not one this API gave out: follow `next` and `previous` as they are.",
            details={self.cursor_query_param: ["Invalid cursor."]},
        )

    def get_page_size(self, request: Any) -> int:
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        try:
            size = int(raw)
        except ValueError:
            raise self._invalid_page_size(raw) from None
        if not 1 <= size <= self.max_page_size:
            raise self._invalid_page_size(raw)
        return size

    def _invalid_page_size(self, raw: str) -> ServiceError:
        return ServiceError(
            "invalid_page_size",
            f"page_size must be a whole number from 1 to {self.max_page_size}.",
            details={"page_size": [raw]},
        )


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
        who = f"ip:{client_ip(request)}"
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


class AnyAcceptNegotiation(BaseContentNegotiation):
    """For downloads (a media file, a CSV export): the body is answered whatever the client's Accept names
    (the file's type, `text/csv`, `*/*`, nothing) instead of DRF's 406; an error is still rendered by the
    API's first renderer, JSON, in the one error shape."""

    def select_parser(self, request: Any, parsers: Any) -> Any:
        return parsers[0] if parsers else None

    def select_renderer(self, request: Any, renderers: Any, format_suffix: Any = None) -> Any:
        return renderers[0], renderers[0].media_type
