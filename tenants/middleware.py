"""Host → tenant. Public hosts get the platform; unknown hosts a clear 404 page; suspended tenants a 403."""

from __future__ import annotations

import time
from typing import Any

import structlog
from django.conf import settings
from django.db.models.signals import post_delete, post_save
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django_tenants.middleware.main import TenantMainMiddleware
from django_tenants.utils import get_public_schema_name

from tenants.db import connection
from tenants.models import Domain, Tenant


def public_tenant() -> Tenant:
    # Not stored: the public schema is the platform itself, not a customer.
    return Tenant(schema_name=get_public_schema_name(), name="Platform", slug="public")


# Host → tenant, kept for a few seconds per process: the lookup cost every request two statements (the
# public search_path and the domain query). A save in this process clears it at once (admin, tests); a
# change made elsewhere (another web process, a shell) applies within TENANT_CACHE_SECONDS.
TENANT_CACHE_SECONDS = 5.0
TENANT_CACHE_MAX = 1000
_tenants: dict[str, tuple[float, Tenant | None]] = {}


def tenant_for_host(hostname: str) -> Tenant | None:
    now = time.monotonic()
    cached = _tenants.get(hostname)
    if cached is not None and cached[0] > now:
        return cached[1]
    domain = Domain.objects.select_related("tenant").filter(domain=hostname).first()
    if len(_tenants) >= TENANT_CACHE_MAX:  # unknown hosts must not grow it without bound
        _tenants.clear()
    tenant = domain.tenant if domain is not None else None
    _tenants[hostname] = (now + TENANT_CACHE_SECONDS, tenant)
    return tenant


def forget_tenants(**_: Any) -> None:
    _tenants.clear()


for _model in (Tenant, Domain):
    for _signal in (post_save, post_delete):
        _signal.connect(forget_tenants, sender=_model, dispatch_uid=f"forget_tenants_{_model.__name__}")


class TenantMiddleware(TenantMainMiddleware):
    def process_request(self, request: HttpRequest) -> HttpResponse | None:
        connection.set_schema_to_public()
        hostname = request.get_host().split(":")[0].lower()
        if hostname in settings.PUBLIC_HOSTS:
            tenant = public_tenant()
        else:
            found = tenant_for_host(hostname)
            if found is None:
                return render(request, "errors/unknown_tenant.html", {"host": hostname}, status=404)
            tenant = found
            if not tenant.is_active:
                return render(request, "errors/suspended.html", {"tenant": tenant}, status=403)
        tenant.domain_url = hostname
        request.tenant = tenant  # type: ignore[attr-defined]
        connection.set_tenant(tenant)
        structlog.contextvars.bind_contextvars(tenant=tenant.schema_name)
        self.setup_url_routing(request)
        return None
