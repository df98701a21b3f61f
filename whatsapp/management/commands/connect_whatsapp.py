from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from tenants.models import Tenant
from whatsapp.services import ChannelError, connect_channel


class Command(BaseCommand):
    help = "Connect a WhatsApp Cloud API number to a tenant (or re-authorise it with a new token)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--tenant", required=True, help="tenant slug")
        parser.add_argument("--phone-number-id", required=True)
        parser.add_argument("--waba-id", required=True)
        parser.add_argument("--access-token", required=True)
        parser.add_argument("--display-phone", default="")
        parser.add_argument(
            "--app-secret", default="", help="override of WHATSAPP_APP_SECRET for this number"
        )
        parser.add_argument("--name", default="")
        parser.add_argument(
            "--throughput-cap", type=int, default=None, help="messages per second (default 80)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        tenant = Tenant.objects.filter(slug=options["tenant"]).first()
        if tenant is None:
            raise CommandError(f"No tenant with the slug '{options['tenant']}'.")
        try:
            channel = connect_channel(
                tenant=tenant,
                phone_number_id=options["phone_number_id"],
                waba_id=options["waba_id"],
                access_token=options["access_token"],
                display_phone=options["display_phone"],
                app_secret=options["app_secret"],
                name=options["name"],
                throughput_cap=options["throughput_cap"],
            )
        except ChannelError as exc:
            raise CommandError(exc.message) from exc
        # The token is never printed back.
        self.stdout.write(
            self.style.SUCCESS(
                f"Connected {channel.display_phone or channel.phone_number_id} to {tenant.slug} "
                f"(phone_number_id {channel.phone_number_id}, {channel.throughput_cap} msg/s)."
            )
        )
