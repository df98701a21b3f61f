"""Who the client is, how often it may try to sign in or reset a password, and what roles may do in admin.

Client address (core.net): `client_ip()` believes X-Forwarded-For only from the proxies in
settings.FORWARDED_ALLOW_IPS (empty by default: no one), the same rule uvicorn applies with
`--forwarded-allow-ips`, so a client cannot pick the address its attempts are counted against.

Sign-in throttling (django-ratelimit counters in the Redis cache, keyed by tenant), three counters of
failures:
- per username and address (LOGIN_FAILURE_LIMIT, 5/15m): a guesser is stopped quickly without locking
  the real user out from their own address;
- per username from any address (LOGIN_FAILURE_USER_LIMIT, 50/h): slower, so a guesser who rotates
  addresses still gets few tries per account;
- per address across usernames (LOGIN_FAILURE_IP_LIMIT, 20/15m): against password spraying.
The backend refuses locked-out attempts wherever they come from; the staff and admin sign-in pages
answer 429 with Retry-After and say why.

Password reset: per address (PASSWORD_RESET_IP_LIMIT) the page answers 429; per account
(PASSWORD_RESET_ACCOUNT_LIMIT) it says "sent" as always and sends nothing, so a flood cannot fill an
inbox and the answer never tells whether the account exists. Links use the tenant's configured domain,
never the request's Host.
"""

from __future__ import annotations

import functools
import ipaddress
from typing import Any

import structlog
from django.apps import apps
from django.conf import settings
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth import forms as auth_forms
from django.contrib.auth import views as auth_views
from django.contrib.auth.backends import ModelBackend
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse
from django.utils.translation import ngettext
from django.views.generic.edit import FormView
from django_ratelimit.core import get_usage
from django_tenants.utils import get_public_schema_name

from core.net import client_ip
from crm import sessions
from crm.models import Agent
from crm.selectors import role_of_user
from crm.services import tenant_site
from tenants.db import connection

log = structlog.get_logger("auth")

# ---------------------------------------------------------------------------------------------------
# The client's address (core.net.client_ip; the audit log records it too)
# ---------------------------------------------------------------------------------------------------


def _address_key(address: str) -> str:
    # An IPv6 client usually holds a whole /64: counting per address would give it 2^64 allowances.
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


def _usage(
    request: HttpRequest, group: str, value: str, rate: str, *, increment: bool
) -> dict[str, Any] | None:
    # Keys carry the schema (and the cache's KEY_FUNCTION adds it again): one tenant's counts never
    # lock anyone out of another.
    key = f"{connection.schema_name}:{value}"
    return get_usage(request, group=group, key=lambda _group, _request: key, rate=rate, increment=increment)


def _wait(usage: dict[str, Any] | None, *, reached: bool) -> int | None:
    """Seconds left in the window when the counter is at its limit (reached) or over it, else None."""
    if usage is None:
        return None
    over = usage["count"] >= usage["limit"] if reached else usage["should_limit"]
    return max(1, int(usage["time_left"])) if over else None


# ---------------------------------------------------------------------------------------------------
# Sign-in throttling
# ---------------------------------------------------------------------------------------------------


def _login_counters(request: HttpRequest, username: str) -> list[tuple[str, str, str]]:
    user = username.strip().lower()
    address = _address_key(client_ip(request))
    return [
        ("login-user-ip", f"{user}|{address}", settings.LOGIN_FAILURE_LIMIT),
        ("login-user", user, settings.LOGIN_FAILURE_USER_LIMIT),
        ("login-ip", address, settings.LOGIN_FAILURE_IP_LIMIT),
    ]


def login_lockout(request: HttpRequest, username: str) -> int | None:
    """Seconds until sign-in may be tried again for this username from this address, or None."""
    waits = [
        _wait(_usage(request, group, value, rate, increment=False), reached=True)
        for group, value, rate in _login_counters(request, username)
    ]
    found = [w for w in waits if w is not None]
    return max(found) if found else None


def record_login_failure(request: HttpRequest | None, username: str) -> None:
    if request is None:
        return
    for group, value, rate in _login_counters(request, username):
        _usage(request, group, value, rate, increment=True)


def on_login_failed(
    sender: Any, credentials: dict[str, Any], request: HttpRequest | None = None, **kw: Any
) -> None:
    record_login_failure(request, str(credentials.get("username") or ""))


# Second-factor codes (crm.two_factor_views): failures per user, from any address. Six digits are a
# million guesses: 5 per 15 minutes per account keeps a guesser who has the password far from any.
TWO_FACTOR_FAILURE_LIMIT = "5/15m"


def two_factor_lockout(request: HttpRequest, user_id: int) -> int | None:
    """Seconds until a second-factor code may be tried again for this user, or None."""
    usage = _usage(request, "2fa-user", str(user_id), TWO_FACTOR_FAILURE_LIMIT, increment=False)
    return _wait(usage, reached=True)


def record_two_factor_failure(request: HttpRequest, user_id: int) -> None:
    _usage(request, "2fa-user", str(user_id), TWO_FACTOR_FAILURE_LIMIT, increment=True)


def in_minutes(seconds: int) -> str:
    """ "1 minute", "3 minutes": whole minutes, rounded up, never 0."""
    minutes = max(1, -(-seconds // 60))
    return ngettext("%d minute", "%d minutes", minutes) % minutes


def lockout_message(wait: int) -> str:
    return f"Too many failed sign-ins. Try again in {in_minutes(wait)}."


class LockoutFormMixin:
    """Checks the lockout before the password: a locked-out attempt is refused with a clear message,
    whether or not the password is right, and the view answers 429 (see with_lockout_status)."""

    locked_for: int | None = None
    request: HttpRequest | None
    data: Any

    def clean(self) -> dict[str, Any]:
        if self.request is not None:
            wait = login_lockout(self.request, str(self.data.get("username", "")))
            if wait is not None:
                self.locked_for = wait
                raise ValidationError(lockout_message(wait), code="locked_out")
        return super().clean()  # type: ignore[misc, no-any-return]


class EmailLoginMixin:
    """People sign in with their email (it is the username), so the label and Django's "Please enter a
    correct username and password" say email."""

    fields: Any

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["username"].label = "Email"


class LockoutAuthenticationForm(LockoutFormMixin, EmailLoginMixin, auth_forms.AuthenticationForm):
    error_messages = {
        **auth_forms.AuthenticationForm.error_messages,
        "invalid_login": "Please enter a correct email and password.",
    }


class AdminLockoutAuthenticationForm(LockoutFormMixin, EmailLoginMixin, AdminAuthenticationForm):
    error_messages = {
        **AdminAuthenticationForm.error_messages,
        "invalid_login": "Please enter the correct email and password for a staff account.",
    }

    def confirm_login_allowed(self, user: Any) -> None:
        # The admin's sign-in asks for no second factor: a user who has one (or must) signs in on the
        # staff page, which asks for it, and then opens the admin with that session.
        super().confirm_login_allowed(user)
        if connection.schema_name != get_public_schema_name():
            from crm.services import two_factor

            if two_factor.is_enrolled(user) or two_factor.two_factor_required(user):
                raise ValidationError(
                    "Sign in on the staff sign-in page (/login/), which asks for your second factor, "
                    "then open the admin.",
                    code="two_factor",
                )


def with_lockout_status(response: HttpResponse, form: Any) -> HttpResponse:
    wait = getattr(form, "locked_for", None)
    if wait is not None:
        response.status_code = 429
        response["Retry-After"] = str(wait)
    return response


class LoginView(auth_views.LoginView):
    """The password; then, for a user with a second factor (or whom the workspace requires to have one),
    no session yet: the user's id waits in the anonymous session for crm.two_factor_views."""

    redirect_authenticated_user = True
    authentication_form = LockoutAuthenticationForm

    def form_valid(self, form: Any) -> HttpResponse:
        from crm import two_factor_views

        user = form.get_user()
        if two_factor_views.needs_second_step(user):
            return two_factor_views.begin(self.request, user, next_url=self.get_success_url())
        return super().form_valid(form)

    def form_invalid(self, form: Any) -> HttpResponse:
        return with_lockout_status(super().form_invalid(form), form)


class RateLimitedModelBackend(ModelBackend):
    """Password sign-in with the lockout above, and the tenant admin's permissions from roles.

    On a tenant host, permissions come from the CRM role only (tenant users are never superusers and
    hold no permission rows): owners and admins may view, add, change and delete the tenant apps'
    models, where each ModelAdmin narrows it further (agents, API keys); nobody gets the auth app's
    write permissions: users, passwords and roles are managed through the CRM's agent pages and
    services, which check who may grant what. `auth.view_user` alone is granted, read-only, because
    the admin's user pickers (a contact's owner, a task's assignee) search through the user admin; the
    user admin's own pages are not served on tenant hosts (config.admin). On the public host, Django's
    own rules apply: the platform's operators are real superusers there.
    """

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

    def has_perm(self, user_obj: Any, perm: str, obj: Any = None) -> bool:
        if connection.schema_name == get_public_schema_name():
            return super().has_perm(user_obj, perm, obj)
        app_label, _, codename = perm.partition(".")
        if app_label == "auth":
            return codename == "view_user" and _manages_tenant(user_obj)
        return app_label in _tenant_app_labels() and _manages_tenant(user_obj)

    def has_module_perms(self, user_obj: Any, app_label: str) -> bool:
        if connection.schema_name == get_public_schema_name():
            return super().has_module_perms(user_obj, app_label)
        return app_label in _tenant_app_labels() and _manages_tenant(user_obj)


ADMIN_ROLES = frozenset({Agent.Role.OWNER.value, Agent.Role.ADMIN.value})


def _manages_tenant(user: Any) -> bool:
    return bool(getattr(user, "is_active", False)) and role_of_user(user) in ADMIN_ROLES


@functools.cache
def _tenant_app_labels() -> frozenset[str]:
    # The product's own tenant apps (crm, conversations, whatsapp); Django's contrib apps are excluded.
    labels = set()
    for config in apps.get_app_configs():
        full_name = f"{config.__module__}.{config.__class__.__name__}"
        in_tenant = config.name in settings.TENANT_APPS or full_name in settings.TENANT_APPS
        if in_tenant and not config.name.startswith("django."):
            labels.add(config.label)
    return frozenset(labels)


# ---------------------------------------------------------------------------------------------------
# Password reset and password changes
# ---------------------------------------------------------------------------------------------------


class PasswordResetView(auth_views.PasswordResetView):
    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        usage = _usage(
            request,
            "reset-ip",
            _address_key(client_ip(request)),
            settings.PASSWORD_RESET_IP_LIMIT,
            increment=True,
        )
        wait = _wait(usage, reached=False)
        if wait is None:
            return super().post(request, *args, **kwargs)
        log.info("password_reset_throttled", by="address")
        context = self.get_context_data(
            form=self.get_form_class()(),
            throttled=f"Too many requests. Try again in {in_minutes(wait)}.",
        )
        response = self.render_to_response(context, status=429)
        response["Retry-After"] = str(wait)
        return response

    def form_valid(self, form: Any) -> HttpResponse:
        email = str(form.cleaned_data["email"]).strip().lower()
        # Counted for any address typed, existing or not: the answer must not depend on it.
        usage = _usage(
            self.request, "reset-account", email, settings.PASSWORD_RESET_ACCOUNT_LIMIT, increment=True
        )
        if _wait(usage, reached=False) is None:
            scheme, host = tenant_site()
            form.save(
                domain_override=host,
                use_https=scheme == "https",
                token_generator=self.token_generator,
                from_email=self.from_email,
                email_template_name=self.email_template_name,
                subject_template_name=self.subject_template_name,
                request=self.request,
                html_email_template_name=self.html_email_template_name,
                extra_email_context=self.extra_email_context,
            )
        else:
            log.info("password_reset_throttled", by="account")
        # FormView's redirect, not PasswordResetView's (that would save the form, and send, again).
        return FormView.form_valid(self, form)


class PasswordResetConfirmView(auth_views.PasswordResetConfirmView):
    """A new password from an emailed link: every open socket of the user closes (their sessions
    already end with the old password's hash)."""

    def form_valid(self, form: Any) -> HttpResponse:
        response = super().form_valid(form)
        sessions.close_user_sockets(
            user_id=form.user.pk, code=sessions.CLOSE_SIGNED_OUT, reason="password_changed"
        )
        return response
