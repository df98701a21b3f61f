"""One admin site, two audiences: the public host shows the platform's models, a tenant host its own.

A tenant's search_path includes public, so without this a tenant superuser would see (and could edit)
the platform's tables; and the platform admin would list tenant tables that public does not have.
"""

from __future__ import annotations

from functools import update_wrapper
from typing import Any

from django.conf import settings
from django.contrib import admin
from django.db.models import Model
from django.http import Http404, HttpRequest
from django_tenants.utils import get_public_schema_name

from tenants.db import connection


def _listed(app_config: Any, apps_list: list[str]) -> bool:
    full_name = f"{app_config.__module__}.{app_config.__class__.__name__}"
    return app_config.name in apps_list or full_name in apps_list


def model_in_current_schema(model: type[Model]) -> bool:
    on_public = connection.schema_name == get_public_schema_name()
    return _listed(model._meta.app_config, settings.SHARED_APPS if on_public else settings.TENANT_APPS)


class TenantAwareAdminSite(admin.AdminSite):
    site_header = "WhatsApp CRM administration"

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
