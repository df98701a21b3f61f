from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from onboarding.services import OnboardingError, onboard_tenant
from tenants.models import Tenant


class Command(BaseCommand):
    help = "Create a tenant with its primary domain and owner, and print its URL."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--slug", required=True)
        parser.add_argument("--name", required=True)
        parser.add_argument("--owner-email", required=True)
        parser.add_argument("--owner-password", required=True)
        parser.add_argument("--plan", default=Tenant.Plan.FREE, choices=Tenant.Plan.values)

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            result = onboard_tenant(
                slug=options["slug"],
                name=options["name"],
                owner_email=options["owner_email"],
                owner_password=options["owner_password"],
                plan=options["plan"],
            )
        except OnboardingError as exc:
            raise CommandError(f"{exc.code}: {exc.message}") from exc
        self.stdout.write(f"Created tenant {result.tenant.slug} with owner {result.owner_email}")
        self.stdout.write(result.url)
