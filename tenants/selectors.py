from __future__ import annotations

from tenants.models import Tenant


def active_tenant_schemas() -> list[str]:
    return list(Tenant.objects.filter(is_active=True).values_list("schema_name", flat=True))


def tenant_schemas() -> list[str]:
    """Every tenant's schema, suspended ones too (housekeeping of stored rows)."""
    return list(Tenant.objects.values_list("schema_name", flat=True))
