"""`manage.py create_api_key --tenant acme --name ci [--role admin] [--expires-in-days 90]`.

The key is printed once, alone on the last line, so scripts can take it with `tail -n 1`.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django_tenants.utils import schema_context

from crm import services
from crm.errors import ServiceError
from crm.models import Agent
from tenants.models import Tenant


class Command(BaseCommand):
    help = "Create an API key for a tenant and print it once (last line)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--tenant", required=True, help="The tenant's slug")
        parser.add_argument("--name", required=True)
        parser.add_argument("--role", default=Agent.Role.ADMIN, choices=Agent.Role.values)
        parser.add_argument("--expires-in-days", type=int, default=None)

    def handle(self, *args: Any, **options: Any) -> None:
        tenant = Tenant.objects.filter(slug=options["tenant"]).first()
        if tenant is None:
            raise CommandError(f"unknown_tenant: no tenant with the slug '{options['tenant']}'.")
        with schema_context(tenant.schema_name):
            try:
                issued = services.create_api_key(
                    name=options["name"], role=options["role"], expires_in_days=options["expires_in_days"]
                )
            except ServiceError as exc:
                raise CommandError(f"{exc.code}: {exc.message}") from exc
        key = issued.api_key
        expiry = key.expires_at.isoformat() if key.expires_at else "never"
        self.stdout.write(
            f"API key '{key.name}' for {tenant.slug}: role {key.role}, prefix {key.prefix}, expires {expiry}."
        )
        self.stdout.write("Store it now; it cannot be shown again:")
        self.stdout.write(issued.raw)
