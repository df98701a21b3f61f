"""The pages' one handler for a ServiceError (core.http.ServiceErrorMiddleware): the error body for a
script, the error page for a person's navigation, each with the error's own status; anything else is not
its business."""

from __future__ import annotations

import json

import pytest
from django.http import HttpResponse

from core.errors import ServiceError
from core.http import ServiceErrorMiddleware


class Conflict(ServiceError):
    status = 409


def _middleware() -> ServiceErrorMiddleware:
    return ServiceErrorMiddleware(lambda request: HttpResponse("ok"))


def test_an_htmx_request_gets_the_error_body_with_the_errors_status(rf):
    request = rf.post("/deals/1/move/", HTTP_HX_REQUEST="true")
    response = _middleware().process_exception(request, ServiceError("invalid_stage", "No.", field="stage"))
    assert response is not None and response.status_code == 400
    assert json.loads(response.content) == {
        "error": {"code": "invalid_stage", "message": "No.", "details": {"stage": ["No."]}}
    }


def test_a_subclass_answers_its_own_default_status(rf):
    request = rf.post("/x/", content_type="application/json")
    response = _middleware().process_exception(request, Conflict("already_assigned", "Taken."))
    assert response is not None and response.status_code == 409
    assert json.loads(response.content)["error"]["code"] == "already_assigned"


@pytest.mark.django_db
def test_a_navigation_gets_the_error_page_not_json(rf):
    request = rf.get("/reports/")
    response = _middleware().process_exception(request, ServiceError("forbidden", "Not for you.", status=403))
    assert response is not None and response.status_code == 403
    assert response["Content-Type"].startswith("text/html")
    assert "Not for you." in response.content.decode()


def test_other_exceptions_are_left_to_django(rf):
    assert _middleware().process_exception(rf.get("/"), ValueError("boom")) is None


def test_the_middleware_is_installed_after_authentication():
    from django.conf import settings

    middleware = settings.MIDDLEWARE
    assert middleware.index("core.http.ServiceErrorMiddleware") > middleware.index(
        "django.contrib.auth.middleware.AuthenticationMiddleware"
    )
