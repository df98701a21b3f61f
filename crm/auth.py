"""Sign-in throttling: 5 failures per 15 minutes per IP and per username (settings.LOGIN_FAILURE_LIMIT).

Counted by django-ratelimit in the Redis cache, keyed by tenant. The backend refuses locked-out
attempts wherever they come from (staff sign-in, admin sign-in); the sign-in page answers 429 with
Retry-After.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth import views as auth_views
from django.contrib.auth.backends import ModelBackend
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django_ratelimit.core import get_usage

from tenants.db import connection


def _keys(request: HttpRequest, username: str) -> list[tuple[str, str]]:
    schema = connection.schema_name
    ip = request.META.get("REMOTE_ADDR", "")
    return [("login-ip", f"{schema}:{ip}"), ("login-user", f"{schema}:{username.strip().lower()}")]


def _usage(request: HttpRequest, group: str, value: str, *, increment: bool) -> dict[str, Any] | None:
    return get_usage(
        request,
        group=group,
        key=lambda _group, _request: value,
        rate=settings.LOGIN_FAILURE_LIMIT,
        increment=increment,
    )


def login_lockout(request: HttpRequest, username: str) -> int | None:
    """Seconds until sign-in may be tried again for this IP or username, or None when it may now."""
    waits = []
    for group, value in _keys(request, username):
        usage = _usage(request, group, value, increment=False)
        if usage is not None and usage["count"] >= usage["limit"]:
            waits.append(max(1, int(usage["time_left"])))
    return max(waits) if waits else None


def record_login_failure(request: HttpRequest | None, username: str) -> None:
    if request is None:
        return
    for group, value in _keys(request, username):
        _usage(request, group, value, increment=True)


def on_login_failed(
    sender: Any, credentials: dict[str, Any], request: HttpRequest | None = None, **kw: Any
) -> None:
    record_login_failure(request, str(credentials.get("username") or ""))


class RateLimitedModelBackend(ModelBackend):
    def authenticate(
        self,
        request: HttpRequest | None,
        username: str | None = None,
        password: str | None = None,
        **kwargs: Any,
    ) -> Any:
        if request is not None and login_lockout(request, username or "") is not None:
            raise PermissionDenied("Too many failed sign-ins.")
        return super().authenticate(request, username=username, password=password, **kwargs)


class LoginView(auth_views.LoginView):
    redirect_authenticated_user = True

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        wait = login_lockout(request, request.POST.get("username", ""))
        if wait is None:
            return super().post(request, *args, **kwargs)
        form = self.get_form()
        form.errors.clear()
        form.add_error(None, f"Too many failed sign-ins. Try again in {max(1, wait // 60)} minute(s).")
        response = self.render_to_response(self.get_context_data(form=form), status=429)
        response["Retry-After"] = str(wait)
        return response
