"""`manage.py restore_tenant --tenant acme`: undo a deletion within its grace period (tenants.lifecycle)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from core.errors import ServiceError
from tenants.lifecycle import restore_tenant
from tenants.models import Tenant


class Command(BaseCommand):
    help = (
        "Restore a tenant being deleted (within the grace period): active again, stored webhooks processed."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--tenant", required=True, help="The tenant's slug.")

    def handle(self, *args: Any, **options: Any) -> None:
        tenant = Tenant.objects.filter(slug=options["tenant"]).first()
        if tenant is None:
            raise CommandError(
                f"No tenant with the slug {options['tenant']!r}. After the purge, use import_tenant with its "
                "deletion export."
            )
        try:
            requeued = restore_tenant(tenant=tenant, actor="command:restore_tenant")
        except ServiceError as exc:
            raise CommandError(f"{exc.code}: {exc.message}") from exc
        self.stdout.write(
            f"Restored {tenant.slug}; {requeued} stored webhook event(s) queued for processing."
        )
