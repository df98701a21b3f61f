from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django_tenants.utils import schema_context

from conversations.models import Channel
from tenants.models import Tenant
from whatsapp.client import GraphError
from whatsapp.services import sync_templates


class Command(BaseCommand):
    help = "Fetch every message template of a tenant's WhatsApp numbers from the Graph API."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--tenant", required=True, help="tenant slug")

    def handle(self, *args: Any, **options: Any) -> None:
        tenant = Tenant.objects.filter(slug=options["tenant"]).first()
        if tenant is None:
            raise CommandError(f"No tenant with the slug '{options['tenant']}'.")
        with schema_context(tenant.schema_name):
            for channel in Channel.objects.filter(status=Channel.Status.ACTIVE):
                try:
                    count = sync_templates(channel=channel)
                except GraphError as exc:
                    raise CommandError(f"{channel}: {exc.code} {exc.title}") from exc
                self.stdout.write(f"{channel}: {count} templates")
