"""`manage.py create_api_key --tenant acme --name ci [--role admin] [--expires-in-days 90]`
or `manage.py create_api_key --tenant acme --name mine --user agent@acme.test` (a personal key).

An integration key (the default) is tenant-wide with its own role, supervisor or above (default admin).
A personal key (`--user`) acts as that user, with their role and teams at each request.
The key is printed once, alone on the last line, so scripts can take it with `tail -n 1`.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django_tenants.utils import schema_context

from core.errors import ServiceError
from crm import services
from crm.models import ApiKey
from tenants.models import Tenant


class Command(BaseCommand):
    help = "Create an API key for a tenant and print it once (last line)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--tenant", required=True, help="The tenant's slug")
        parser.add_argument("--name", required=True)
        parser.add_argument(
            "--user", default=None, help="Email of the tenant user a personal key acts as (personal key)"
        )
        parser.add_argument(
            "--role",
            default=None,
            choices=[str(role) for role in ApiKey.INTEGRATION_ROLES],
            help="An integration key's role (default admin); a personal key has its user's",
        )
        parser.add_argument("--expires-in-days", type=int, default=None)

    def handle(self, *args: Any, **options: Any) -> None:
        tenant = Tenant.objects.filter(slug=options["tenant"]).first()
        if tenant is None:
            raise CommandError(f"unknown_tenant: no tenant with the slug '{options['tenant']}'.")
        with schema_context(tenant.schema_name):
            user = None
            if options["user"]:
                user = get_user_model().objects.filter(email__iexact=options["user"]).first()
                if user is None:
                    raise CommandError(f"unknown_user: no user '{options['user']}' in {tenant.slug}.")
            try:
                issued = services.create_api_key(
                    name=options["name"],
                    kind=ApiKey.Kind.PERSONAL if user is not None else ApiKey.Kind.INTEGRATION,
                    role=options["role"],
                    user=user,
                    expires_in_days=options["expires_in_days"],
                )
            except ServiceError as exc:
                raise CommandError(f"{exc.code}: {exc.message}") from exc
            key = issued.api_key
            who = f"personal key of {user.email}" if user is not None else f"integration key, role {key.role}"
        expiry = key.expires_at.isoformat() if key.expires_at else "never"
        self.stdout.write(
            f"API key '{key.name}' for {tenant.slug}: {who}, prefix {key.prefix}, expires {expiry}."
        )
        self.stdout.write("Store it now; it cannot be shown again:")
        self.stdout.write(issued.raw)
