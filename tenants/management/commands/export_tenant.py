"""`manage.py export_tenant --tenant acme [--output path]`: one archive of the tenant (tenants.backup).

Without --output the archive goes to the backups storage (settings.STORAGES["backups"])."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from core import audit
from core.errors import ServiceError
from tenants.backup import export_tenant
from tenants.backup_storage import store_backup
from tenants.models import Tenant


class Command(BaseCommand):
    help = "Export a tenant (schema dump, media, manifest) into one tar.gz archive."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--tenant", required=True, help="The tenant's slug.")
        parser.add_argument("--output", help="Where to write the archive (default: the backups storage).")

    def handle(self, *args: Any, **options: Any) -> None:
        tenant = Tenant.objects.filter(slug=options["tenant"]).first()
        if tenant is None:
            raise CommandError(f"No tenant with the slug {options['tenant']!r}.")
        try:
            if options.get("output"):
                result = export_tenant(tenant=tenant, output=Path(options["output"]))
                where = str(result.path)
            else:
                where = "backups storage: " + store_backup(tenant=tenant, reason="manual")
        except ServiceError as exc:
            raise CommandError(f"{exc.code}: {exc.message}") from exc
        audit.record(
            "export.created",
            actor="command:export_tenant",
            target=tenant,
            details={"kind": "tenant_archive", "where": where},
            platform=True,
        )
        self.stdout.write(f"Exported {tenant.slug} to {where}")
