"""`manage.py remove_tenant --tenant acme [--force]`: suspend, export, and drop after the grace period
(tenants.lifecycle); --force drops it now, after the export."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from core.errors import ServiceError
from tenants.lifecycle import delete_tenant
from tenants.models import Tenant


class Command(BaseCommand):
    help = "Delete a tenant: suspended and exported now, its schema dropped after TENANT_DELETION_GRACE_DAYS."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--tenant", required=True, help="The tenant's slug.")
        parser.add_argument(
            "--force",
            action="store_true",
            help="Drop the schema now (after the export) instead of after the grace period.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        tenant = Tenant.objects.filter(slug=options["tenant"]).first()
        if tenant is None:
            raise CommandError(f"No tenant with the slug {options['tenant']!r}.")
        try:
            result = delete_tenant(tenant=tenant, force=options["force"], actor="command:remove_tenant")
        except ServiceError as exc:
            raise CommandError(f"{exc.code}: {exc.message}") from exc
        if result.purged:
            self.stdout.write(f"Deleted {tenant.slug} now. Its export: {result.export} (backups storage).")
        else:
            self.stdout.write(
                f"Suspended {tenant.slug}; its schema is dropped after "
                f"{tenant.purge_after:%Y-%m-%d %H:%M} UTC (restore_tenant --tenant {tenant.slug} until then) "
                f"- its export: {result.export} (backups storage)."
            )
