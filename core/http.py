"""The one way a page or an htmx/fetch endpoint answers a ServiceError (the API's is config's DRF
exception handler): the error body for scripts (htmx, fetch, anything asking for JSON), the error page
for a person's browser navigation. Views catch nothing else by hand."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render

from core.errors import ServiceError


def wants_error_body(request: HttpRequest) -> bool:
    """A script asked (htmx, fetch with JSON, a POST from the page's scripts), not a navigation."""
    if request.headers.get("HX-Request") == "true":
        return True
    if "json" in request.headers.get("Accept", "") or request.content_type == "application/json":
        return True
    return request.method != "GET" or request.path.startswith("/api/")


def service_error_response(
    request: HttpRequest, exc: ServiceError, *, layout: str = "base_plain.html"
) -> HttpResponse:
    """`layout`: the page the error page extends (an app passes its own, with its navigation)."""
    if wants_error_body(request):
        return JsonResponse(exc.body(), status=exc.status)
    context = {"status": exc.status, "message": exc.message, "layout": layout}
    return render(request, "errors/error.html", context, status=exc.status)


class ServiceErrorMiddleware:
    """The pages' one handler (settings.MIDDLEWARE): a ServiceError that a page, htmx or fetch view lets
    through is answered by `service_error_response` above, with its own status and code, never a 500.
    So a view catches a ServiceError only to show it beside a form field (form.add_service_error); every
    other refusal it simply lets rise. DRF views never get here: the API's one handler
    (core.api.exception_handler, REST_FRAMEWORK["EXCEPTION_HANDLER"]) answers them first."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if isinstance(exception, ServiceError):
            return service_error_response(request, exception)
        return None
