"""Re-encrypts every stored secret with the first FIELD_ENCRYPTION_KEY, in the public and every tenant schema.

Idempotent: a value already encrypted with the first key is left as it is, so a second run changes
nothing. Each value is replaced only if it is still the one that was read (a compare-and-swap UPDATE):
a token a service writes meanwhile, already under the first key, is never overwritten with the old one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.conf import settings
from django.db import models
from django_tenants.routers import TenantSyncRouter
from django_tenants.utils import get_public_schema_name, get_tenant_model, schema_context, schema_exists

from whatsapp import crypto


@dataclass
class RotationReport:
    rotated: int = 0
    current: int = 0
    # Values no configured key opens, as "schema.app_label.Model.field pk=…": left untouched.
    unreadable: list[str] = field(default_factory=list)
    schemas: int = 0


def _schemas() -> list[str]:
    public = get_public_schema_name()
    tenants = (
        get_tenant_model()
        .objects.exclude(schema_name=public)
        .order_by("schema_name")
        .values_list("schema_name", flat=True)
    )
    return [public, *(schema for schema in tenants if schema_exists(schema))]


def _lives_in(model: type[models.Model], schema: str) -> bool:
    apps_list = settings.SHARED_APPS if schema == get_public_schema_name() else settings.TENANT_APPS
    return TenantSyncRouter().app_in_list(model._meta.app_label, apps_list)


def _rotate_model(
    model: type[models.Model], names: list[str], schema: str, report: RotationReport, *, dry_run: bool
) -> None:
    manager = model._base_manager
    for pk, *values in manager.values_list("pk", *names).order_by("pk").iterator():
        for name, value in zip(names, values, strict=True):
            if crypto.is_current(value):
                if value:
                    report.current += 1
                continue
            try:
                rotated = crypto.rotate(value)
            except crypto.DecryptionError:
                report.unreadable.append(f"{schema}.{model._meta.label}.{name} pk={pk}")
                continue
            if dry_run or manager.filter(pk=pk, **{name: value}).update(**{name: rotated}):
                report.rotated += 1


def rotate_stored_secrets(*, dry_run: bool = False) -> RotationReport:
    report = RotationReport()
    fields = list(crypto.encrypted_fields())
    for schema in _schemas():
        report.schemas += 1
        with schema_context(schema):
            for model, names in fields:
                if _lives_in(model, schema):
                    _rotate_model(model, names, schema, report, dry_run=dry_run)
    return report
