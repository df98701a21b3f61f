"""One admin site, two audiences: the public host shows the platform's models, a tenant host its own.

A tenant's search_path includes public, so without this a tenant admin would see (and could edit) the
platform's tables; and the platform admin would list tenant tables that public does not have.

On a tenant host the admin is for owners and admins (their CRM role, not a Django flag), with model
permissions from that role (crm.auth.RateLimitedModelBackend). Users and groups are not served there:
people, passwords and roles are managed through the CRM's agent pages and services, which enforce who may
change whom (an admin must never reach the owner's password). The public host is the platform admin,
whose operators are real superusers of the public schema.
"""

from __future__ import annotations

from functools import update_wrapper
from typing import Any

from django.conf import settings
from django.contrib import admin
from django.db.models import Model
from django.http import Http404, HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django_tenants.utils import get_public_schema_name

from crm import selectors, sessions
from crm.auth import ADMIN_ROLES, AdminLockoutAuthenticationForm, with_lockout_status
from tenants.db import connection

# Apps whose admin is served on the public host only, though their tables exist in tenant schemas too.
PUBLIC_ONLY_APPS = frozenset({"auth"})


def _listed(app_config: Any, apps_list: list[str]) -> bool:
    full_name = f"{app_config.__module__}.{app_config.__class__.__name__}"
    return app_config.name in apps_list or full_name in apps_list


def _on_public() -> bool:
    return bool(connection.schema_name == get_public_schema_name())


def model_in_current_schema(model: type[Model]) -> bool:
    if _on_public():
        return _listed(model._meta.app_config, settings.SHARED_APPS)
    return model._meta.app_label not in PUBLIC_ONLY_APPS and _listed(
        model._meta.app_config, settings.TENANT_APPS
    )


class TenantAwareAdminSite(admin.AdminSite):
    site_header = "WhatsApp CRM administration"
    # Sign-in lockout checked before the password, with a clear message and 429 (crm.auth).
    login_form = AdminLockoutAuthenticationForm

    def has_permission(self, request: HttpRequest) -> bool:
        if _on_public():
            return super().has_permission(request)
        user = request.user
        return bool(user.is_active) and selectors.role_of_user(user) in ADMIN_ROLES

    def login(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        response = super().login(request, extra_context)
        form = (getattr(response, "context_data", None) or {}).get("form")
        return with_lockout_status(response, form)

    def password_change(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> TemplateResponse:
        response = super().password_change(request, extra_context)
        if request.method == "POST" and response.status_code == 302 and request.user.pk is not None:
            # Other sessions end with the old password's hash; their open sockets close now.
            sessions.close_user_sockets(
                user_id=int(request.user.pk), code=sessions.CLOSE_SIGNED_OUT, reason="password_changed"
            )
        return response

    def _build_app_dict(self, request: HttpRequest, label: str | None = None) -> Any:  # type: ignore[override]
        original = self._registry
        self._registry = {m: a for m, a in original.items() if model_in_current_schema(m)}
        try:
            return super()._build_app_dict(request, label)
        finally:
            self._registry = original

    def admin_view(self, view: Any, cacheable: bool = False) -> Any:
        inner = super().admin_view(view, cacheable)
        model = getattr(getattr(view, "__self__", None), "model", None)
        if model is None:
            return inner

        def guarded(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
            if not model_in_current_schema(model):
                raise Http404("Not available on this host.")
            return inner(request, *args, **kwargs)

        return update_wrapper(guarded, inner)
