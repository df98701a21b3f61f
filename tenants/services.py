"""Writes to the platform's tenant rows. Creating a tenant (and its owner) is onboarding's
(`onboarding.services.onboard_tenant`): it creates CRM rows, which `tenants` must not import."""

from __future__ import annotations

from django.db import transaction

from core import audit
from tenants.models import Tenant


@transaction.atomic
def set_tenant_active(*, tenant: Tenant, active: bool) -> Tenant:
    changed = tenant.is_active != active
    tenant.is_active = active
    tenant.save(update_fields=["is_active"])
    if changed:  # a platform event, in public whichever schema the caller is on
        audit.record("tenant.reactivated" if active else "tenant.suspended", target=tenant, platform=True)
    return tenant
