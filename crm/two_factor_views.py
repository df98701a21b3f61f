"""The second factor's pages: the sign-in step after the password (/login/two-factor/) and Settings → Two-
factor authentication (enrol with a QR code, recovery codes shown once, turn off; the workspace policy for
owners and admins).

After a right password, a user who has a second factor (or must enrol one) gets no session: their id,
the backend and where to go next wait in the anonymous session for PENDING_SECONDS. Codes are throttled
per user (crm.auth.TWO_FACTOR_FAILURE_LIMIT) from any address; the page answers 429 past it.
"""

from __future__ import annotations

import time
from typing import Any

from django.contrib import messages
from django.contrib.auth import get_user_model, login
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from core.errors import ServiceError
from crm.auth import in_minutes, record_two_factor_failure, two_factor_lockout
from crm.services import two_factor
from crm.views import can, member_required

PENDING_KEY = "two_factor_pending"
PENDING_SECONDS = 300


def needs_second_step(user: Any) -> bool:
    return two_factor.is_enrolled(user) or two_factor.two_factor_required(user)


def begin(request: HttpRequest, user: Any, *, next_url: str) -> HttpResponse:
    request.session[PENDING_KEY] = {
        "user": user.pk,
        "backend": getattr(user, "backend", "crm.auth.RateLimitedModelBackend"),
        "next": next_url,
        "at": int(time.time()),
    }
    return redirect("two-factor-login")


def _pending(request: HttpRequest) -> tuple[Any, dict[str, Any]] | None:
    pending = request.session.get(PENDING_KEY)
    if not isinstance(pending, dict) or time.time() - pending.get("at", 0) > PENDING_SECONDS:
        request.session.pop(PENDING_KEY, None)
        return None
    user_id = pending.get("user")
    if not isinstance(user_id, int):
        return None
    user = get_user_model().objects.filter(pk=user_id, is_active=True).first()
    return (user, pending) if user is not None else None


def _throttled(request: HttpRequest, user: Any) -> str | None:
    wait = two_factor_lockout(request, int(user.pk))
    return f"Too many wrong codes. Try again in {in_minutes(wait)}." if wait is not None else None


@require_http_methods(["GET", "POST"])
def two_factor_login(request: HttpRequest) -> HttpResponse:
    found = _pending(request)
    if found is None:
        messages.info(request, "Sign in again.")
        return redirect("login")
    user, pending = found
    enrolled = two_factor.is_enrolled(user)
    context: dict[str, Any] = {"enrol": not enrolled}
    status = 200
    if request.method == "POST":
        code = request.POST.get("code", "")
        throttled = _throttled(request, user)
        if throttled:
            context["error"], status = throttled, 429
        else:
            try:
                codes = (
                    two_factor.confirm_two_factor(user=user, code=code)
                    if not enrolled
                    else two_factor.verify_second_factor(user=user, code=code)
                )
            except ServiceError as exc:
                record_two_factor_failure(request, int(user.pk))
                context["error"], status = exc.message, 400
            else:
                del request.session[PENDING_KEY]
                login(request, user, backend=pending["backend"])
                if not enrolled:
                    return render(
                        request,
                        "registration/two_factor_codes.html",
                        {"codes": codes, "next": pending["next"]},
                    )
                if codes == "recovery":
                    left = two_factor.recovery_codes_left(user)
                    messages.warning(request, f"You signed in with a recovery code: {left} left.")
                return redirect(pending["next"])
    if not enrolled:
        device = two_factor.device_of(user) or two_factor.start_two_factor(user=user)
        context |= _enrolment(device, user)
    response = render(request, "registration/two_factor.html", context, status=status)
    return response


def _enrolment(device: Any, user: Any) -> dict[str, Any]:
    uri = two_factor.provisioning_uri(device=device, user=user)
    return {"qr": two_factor.qr_svg(uri), "key": two_factor.manual_key(device)}


@require_http_methods(["GET", "POST"])
@member_required()
def two_factor_settings(request: HttpRequest) -> HttpResponse:
    user: Any = request.user
    action = request.POST.get("action", "") if request.method == "POST" else ""
    context: dict[str, Any] = {"nav": "settings"}
    status = 200
    if action == "policy":
        if not can(request, "admin"):
            return HttpResponse(status=403)
        two_factor.set_two_factor_requirement(required=request.POST.get("required") == "on", by=user)
        messages.success(request, "Sign-in policy saved.")
        return redirect("crm:two-factor")
    if action in ("confirm", "disable", "regenerate"):
        throttled = _throttled(request, user)
        code = request.POST.get("code", "")
        try:
            if throttled:
                raise ServiceError("throttled", throttled, status=429)
            if action == "confirm":
                context["codes"] = two_factor.confirm_two_factor(user=user, code=code)
            elif action == "regenerate":
                context["codes"] = two_factor.regenerate_recovery_codes(user=user, code=code)
            else:
                two_factor.disable_two_factor(user=user, code=code)
                messages.success(request, "Two-factor authentication is off.")
                return redirect("crm:two-factor")
        except ServiceError as exc:
            if exc.code == "invalid_code":
                record_two_factor_failure(request, int(user.pk))
            context["error"], status = exc.message, exc.status
    elif action == "start":
        try:
            two_factor.start_two_factor(user=user)
        except ServiceError as exc:
            context["error"], status = exc.message, exc.status
    device = two_factor.device_of(user)
    context |= {
        "device": device,
        "enrolled": device is not None and device.confirmed_at is not None,
        "required": two_factor.two_factor_required(user),
        "manages_policy": can(request, "admin"),
        "policy": two_factor.security_settings(),
    }
    if context["enrolled"]:
        context["left"] = two_factor.recovery_codes_left(user)
    elif device is not None:
        context |= _enrolment(device, user)
    return render(request, "crm/settings/two_factor.html", context, status=status)
