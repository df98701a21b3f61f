"""Host → tenant. Public hosts get the platform; unknown hosts a clear 404 page; suspended tenants a 403."""

from __future__ import annotations

import structlog
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django_tenants.middleware.main import TenantMainMiddleware
from django_tenants.utils import get_public_schema_name

from tenants.db import connection
from tenants.models import Domain, Tenant


def public_tenant() -> Tenant:
    # Not stored: the public schema is the platform itself, not a customer.
    return Tenant(schema_name=get_public_schema_name(), name="Platform", slug="public")


class TenantMiddleware(TenantMainMiddleware):
    def process_request(self, request: HttpRequest) -> HttpResponse | None:
        connection.set_schema_to_public()
        hostname = request.get_host().split(":")[0].lower()
        if hostname in settings.PUBLIC_HOSTS:
            tenant = public_tenant()
        else:
            domain = Domain.objects.select_related("tenant").filter(domain=hostname).first()
            if domain is None:
                return render(request, "errors/unknown_tenant.html", {"host": hostname}, status=404)
            tenant = domain.tenant
            if not tenant.is_active:
                return render(request, "errors/suspended.html", {"tenant": tenant}, status=403)
        tenant.domain_url = hostname
        request.tenant = tenant  # type: ignore[attr-defined]
        connection.set_tenant(tenant)
        structlog.contextvars.bind_contextvars(tenant=tenant.schema_name)
        self.setup_url_routing(request)
        return None
