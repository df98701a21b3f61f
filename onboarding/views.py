"""Signup pages (public host), the one-time sign-in and the checklist's dismissal (tenant host). Thin:
parse, rate-limit, call a service, render."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model, login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_ratelimit.core import get_usage

from core.errors import ServiceError, error_body
from crm.auth import ADMIN_ROLES, client_ip
from crm.selectors import role_of_user
from onboarding import checklist, signup
from onboarding.forms import SignupForm

LOGIN_BACKEND = "crm.auth.RateLimitedModelBackend"


def _over_limit(request: HttpRequest, group: str, value: str, rate: str) -> int | None:
    """Count one attempt; seconds to wait when over the limit, else None. Keys are the platform's own
    (the public host has no tenant) and carry the group."""
    usage = get_usage(request, group=group, key=lambda _g, _r: value, rate=rate, increment=True)
    if usage is None or not usage["should_limit"]:
        return None
    return max(1, int(usage["time_left"]))


def _too_many(request: HttpRequest, wait: int) -> HttpResponse:
    response = render(
        request,
        "onboarding/message.html",
        {"title": "Too many attempts", "text": "Too many signup attempts from here. Please try again later."},
        status=429,
    )
    response["Retry-After"] = str(wait)
    return response


@require_http_methods(["GET", "POST"])
def signup_page(request: HttpRequest) -> HttpResponse:
    mode = signup.signup_mode()
    if mode == "closed":
        return render(request, "onboarding/signup.html", {"closed": True}, status=403)
    form = SignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        wait = _over_limit(request, "signup.ip", client_ip(request), settings.SIGNUP_IP_LIMIT)
        if wait is not None:
            return _too_many(request, wait)
        data = form.cleaned_data
        try:
            signup.validate_signup(
                business_name=data["business_name"],
                slug=data["slug"].strip().lower(),
                owner_name=data["owner_name"],
                email=data["email"].strip().lower(),
                password=data["password"],
            )
        except ServiceError as exc:
            form.add_error(exc.field if exc.field in form.fields else None, exc.message)
        else:
            email = data["email"].strip().lower()
            # Over the per-address limit an e-mail gets nothing more, and the page says "sent" as
            # always: a flood cannot fill an inbox, and the answer tells nothing about the address.
            if _over_limit(request, "signup.email", email, settings.SIGNUP_EMAIL_LIMIT) is None:
                signup.start_signup(
                    business_name=data["business_name"],
                    slug=data["slug"],
                    owner_name=data["owner_name"],
                    email=email,
                    password=data["password"],
                )
            return redirect("signup-sent")
    status = 400 if request.method == "POST" else 200
    return render(request, "onboarding/signup.html", {"form": form, "mode": mode}, status=status)


@require_GET
def signup_sent(request: HttpRequest) -> HttpResponse:
    return render(request, "onboarding/signup_sent.html")


@require_GET
def subdomain_check(request: HttpRequest) -> HttpResponse:
    """The live check: JSON, or the status line's HTML for htmx. Rate-limited per client address."""
    wait = _over_limit(request, "signup.check", client_ip(request), settings.SIGNUP_CHECK_LIMIT)
    if wait is not None:
        response = JsonResponse(
            error_body("rate_limited", "Too many checks. Please wait a moment."), status=429
        )
        response["Retry-After"] = str(wait)
        return response
    result = signup.check_subdomain(slug=str(request.GET.get("slug", ""))[:64])
    if request.headers.get("HX-Request"):
        return render(request, "onboarding/_subdomain_status.html", {"check": result})
    return JsonResponse(
        {"slug": result.slug, "available": result.available, "code": result.code, "message": result.message}
    )


def _error_page(request: HttpRequest, exc: ServiceError, *, next_url: str, next_label: str) -> HttpResponse:
    context = {"title": "This link does not work", "text": exc.message, "code": exc.code}
    context.update(next_url=next_url, next_label=next_label)
    return render(request, "onboarding/message.html", context, status=exc.status)


@require_http_methods(["GET", "POST"])
def signup_verify(request: HttpRequest, token: str) -> HttpResponse:
    """GET shows a button, POST verifies: mail scanners that open links must not use them up."""
    try:
        if request.method == "GET":
            pending = signup.signup_for_token(token)
            return render(request, "onboarding/verify.html", {"signup": pending})
        verified = signup.verify_signup(token=token)
    except ServiceError as exc:
        return _error_page(request, exc, next_url="/signup/", next_label="Sign up")
    if verified.login_url:
        # Not a redirect: the page's CSP (form-action 'self') forbids a form's POST to end on another
        # host, and the workspace is one. A page that moves on by itself (and offers the link) does.
        return render(
            request, "onboarding/ready.html", {"signup": verified.signup, "url": verified.login_url}
        )
    return render(
        request,
        "onboarding/message.html",
        {
            "title": "E-mail confirmed",
            "text": (
                "Thanks! Your workspace is waiting for approval. We will e-mail you as soon as it is ready."
            ),
        },
    )


@require_GET
def welcome(request: HttpRequest, token: str) -> HttpResponse:
    """Tenant host: redeem the one-time link from signup and sign the new owner in on this host."""
    tenant: Any = request.tenant  # type: ignore[attr-defined]
    try:
        user_id = signup.redeem_login_token(tenant=tenant, token=token)
    except ServiceError as exc:
        return _error_page(request, exc, next_url="/login/", next_label="Sign in")
    user = get_user_model().objects.filter(pk=user_id, is_active=True).first()
    if user is None:
        return _error_page(
            request,
            ServiceError("invalid_token", "This sign-in link is not valid.", status=404),
            next_url="/login/",
            next_label="Sign in",
        )
    login(request, user, backend=LOGIN_BACKEND)
    return redirect("inbox:inbox")


@require_POST
def dismiss_checklist(request: HttpRequest) -> HttpResponse:
    if not request.user.is_authenticated:
        return redirect(f"{settings.LOGIN_URL}?next=/inbox/")
    if role_of_user(request.user) not in ADMIN_ROLES:
        raise PermissionDenied("Only owners and admins can dismiss the checklist.")
    checklist.dismiss_checklist(tenant=request.tenant, by_email=request.user.email)  # type: ignore[attr-defined]
    if request.headers.get("HX-Request"):
        return HttpResponse("")
    return redirect("inbox:inbox")
