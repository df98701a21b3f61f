from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from tenants.models import Tenant
from waha.sessions import WahaSessionError, connect


class Command(BaseCommand):
    help = (
        "Link a WhatsApp number of a tenant through a WAHA (WhatsApp HTTP API) session: prints the webhook "
        "URL and its HMAC key (shown once), then scan the QR code on Settings → WhatsApp numbers."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--tenant", required=True, help="tenant slug")
        parser.add_argument("--server-url", default="", help="the WAHA server (default: WAHA_URL)")
        parser.add_argument("--api-key", default="", help="its API key (default: WAHA_API_KEY with WAHA_URL)")
        parser.add_argument("--session", default="default", help="the WAHA session name (default: default)")
        parser.add_argument("--name", default="", help="what staff call the number")

    def handle(self, *args: Any, **options: Any) -> None:
        tenant = Tenant.objects.filter(slug=options["tenant"]).first()
        if tenant is None:
            raise CommandError(f"No tenant with the slug '{options['tenant']}'.")
        try:
            connected = connect(
                tenant=tenant,
                server_url=options["server_url"],
                api_key=options["api_key"],
                session=options["session"],
                name=options["name"],
                actor="command:connect_waha",
            )
        except WahaSessionError as exc:
            raise CommandError(f"{exc.message} [{exc.code}]") from exc
        # The API key is never printed back; the webhook key is printed this once.
        self.stdout.write(
            self.style.SUCCESS(
                f"Linked the WAHA session '{connected.waha_session.session}' to {tenant.slug} as number "
                f"{connected.channel.pk} ({connected.waha_session.status})."
            )
        )
        self.stdout.write(f"Webhook URL: {connected.webhook_url}")
        self.stdout.write(f"Webhook HMAC key (shown once): {connected.webhook_key}")
        self.stdout.write(
            "WAHA was configured with both. Now scan the QR code: Settings → WhatsApp numbers → Link with "
            "QR code."
        )
