"""Input PostgreSQL can never store, refused before any view runs: a NUL character in a query parameter,
or an urlencoded or multipart form field. (An uploaded file's content is the view's to judge, a file may be
binary; Django's multipart parser already takes NUL out of its name.)

PostgreSQL keeps no NUL in text or jsonb: one that reaches a query is a DataError, a 500 (and, in a
streamed export, a truncated file), or worse, one that reaches a write fails it halfway. Every page, API
list and export reads query parameters, so one middleware answers them all: 400 in the API's error shape
under /api/, a plain error page elsewhere (config.errors). JSON bodies are checked by the API's JSON parser
(core.api.JSONParser). Reading a multipart body here parses it once, as CSRF's check would anyway; a
malformed one is Django's own 400 (MultiPartParserError).
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, QueryDict

from config.errors import invalid_field
from core.api import NUL_MESSAGE

NUL = "\x00"


FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def _field_with_nul(params: QueryDict) -> str | None:
    for key, values in params.lists():
        if NUL in key or any(NUL in value for value in values):
            return key.replace(NUL, "\\x00")
    return None


class RejectNulMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        field = _field_with_nul(request.GET)
        if field is None and request.method == "POST" and request.content_type in FORM_TYPES:
            field = _field_with_nul(request.POST)
        if field is not None:
            return invalid_field(request, field, NUL_MESSAGE)
        return self.get_response(request)
