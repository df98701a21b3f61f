"""Error pages: JSON in the API's shape under /api/, a plain page elsewhere; never a stack trace."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render

from core.errors import error_body
from crm.templatetags.ui import error_layout


def _respond(
    request: HttpRequest, status: int, code: str, message: str, details: dict[str, Any] | None = None
) -> HttpResponse:
    if request.path.startswith("/api/") or request.path.startswith("/webhooks/"):
        return JsonResponse(error_body(code, message, details), status=status)
    return error_page(request, status, message)


def error_page(request: HttpRequest, status: int, message: str) -> HttpResponse:
    """The error page; for someone signed in on their workspace it keeps the navigation (a 500 never
    does: it must render whatever is broken)."""
    layout = error_layout(request) if status != 500 else "base_plain.html"
    return render(
        request, "errors/error.html", {"status": status, "message": message, "layout": layout}, status=status
    )


def invalid_field(request: HttpRequest, field: str, message: str) -> HttpResponse:
    """400 for one bad input, refused before any view ran (config.input_guard)."""
    return _respond(request, 400, "validation_error", "The request has invalid fields.", {field: [message]})


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return _respond(request, 404, "not_found", "This page does not exist.")


def forbidden(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return _respond(request, 403, "forbidden", "You do not have access to this page.")


def server_error(request: HttpRequest) -> HttpResponse:
    return _respond(request, 500, "server_error", "Something went wrong on our side. We have been told.")
