from __future__ import annotations

from typing import Any

import httpx
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db.models import QuerySet
from django_tenants.utils import schema_context

from conversations.models import Channel
from crm.phones import InvalidPhoneNumber, normalize_phone
from tenants.models import Tenant
from whatsapp import crypto, payloads, simulators


class Command(BaseCommand):
    help = (
        "Post a signed inbound WhatsApp text webhook to the running app, as Meta would (for a WAHA number: "
        "as WAHA would, through the WAHA sandbox when the number's server is one)."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--tenant", required=True, help="tenant slug")
        parser.add_argument(
            "--from", dest="sender", default="", help="the customer's number, e.g. +15551234567"
        )
        parser.add_argument(
            "--user-id",
            default="",
            help="the customer's business-scoped user id (BSUID), e.g. US.13491208655302741918; "
            "without --from the message carries no phone number, as from a user with a username",
        )
        parser.add_argument("--username", default="", help="the customer's WhatsApp username")
        parser.add_argument("--text", required=True)
        parser.add_argument("--name", default="", help="the customer's WhatsApp profile name")
        parser.add_argument("--phone-number-id", default="", help="default: the tenant's first number")
        parser.add_argument(
            "--number",
            default="",
            help="the tenant's number by its display phone (+15550001111), phone number id or channel id "
            "(e.g. a WAHA number); default: the tenant's first number",
        )
        parser.add_argument(
            "--url",
            default=f"http://127.0.0.1:{settings.SITE_PORT or 8000}/webhooks/whatsapp/",
            help="the webhook URL (sent with Host: BASE_DOMAIN)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if not options["sender"] and not options["user_id"]:
            raise CommandError("Give the customer's number (--from) or user id (--user-id), or both.")
        tenant = Tenant.objects.filter(slug=options["tenant"]).first()
        if tenant is None:
            raise CommandError(f"No tenant with the slug '{options['tenant']}'.")
        with schema_context(tenant.schema_name):
            channels = Channel.objects.all()
            if options["phone_number_id"]:
                channels = channels.filter(phone_number_id=options["phone_number_id"])
            if options["number"]:
                channels = _matching(channels, options["number"])
            channel = channels.first()
        if channel is None and options["phone_number_id"]:
            raise CommandError(
                f"{tenant.slug} has no WhatsApp number with the id {options['phone_number_id']}."
            )
        if channel is None and options["number"]:
            raise CommandError(f"{tenant.slug} has no WhatsApp number {options['number']}.")
        if channel is None:
            raise CommandError(f"{tenant.slug} has no WhatsApp number; run connect_whatsapp first.")
        wa_id = ""
        if options["sender"]:
            try:
                wa_id = normalize_phone(options["sender"]).lstrip("+")
            except InvalidPhoneNumber:
                # Fictional numbers (+1 555 ...) are what a simulation uses; a wa_id is just digits.
                wa_id = "".join(ch for ch in options["sender"] if ch.isdigit())
            if not 8 <= len(wa_id) <= 15:
                raise CommandError(f"'{options['sender']}' is not a phone number.")
        simulator = simulators.simulator_for(channel.provider)
        if simulator is not None:
            if not wa_id:
                raise CommandError(f"A {channel.get_provider_display()} number needs the customer's --from.")
            try:
                with schema_context(tenant.schema_name):
                    done = simulator(
                        channel,
                        sender=wa_id,
                        text=options["text"],
                        name=options["name"],
                        webhook_base=options["url"].split("/webhooks/")[0],
                    )
            except simulators.SimulationError as exc:
                raise CommandError(str(exc)) from exc
            self.stdout.write(self.style.SUCCESS(done))
            return
        if options["user_id"]:
            event = payloads.user_text_event(
                phone_number_id=channel.phone_number_id,
                user_id=options["user_id"],
                wa_id=wa_id,
                username=options["username"],
                text=options["text"],
                name=options["name"],
            )
        else:
            event = payloads.text_event(
                phone_number_id=channel.phone_number_id,
                wa_id=wa_id,
                text=options["text"],
                name=options["name"],
            )
        body = payloads.encode(event)
        secret = crypto.decrypt(channel.app_secret_encrypted) or settings.WHATSAPP_APP_SECRET or ""
        try:
            response = httpx.post(
                options["url"],
                content=body,
                headers={
                    "Content-Type": "application/json",
                    "Host": settings.BASE_DOMAIN,
                    "X-Hub-Signature-256": payloads.sign(body, secret),
                },
                timeout=10,
            )
        except httpx.HTTPError as exc:
            raise CommandError(f"Could not reach {options['url']}: {exc}") from exc
        if response.status_code != 200:
            raise CommandError(f"The webhook answered {response.status_code}: {response.text[:300]}")
        self.stdout.write(self.style.SUCCESS(f"Delivered: {response.text}"))


def _matching(channels: QuerySet[Channel], number: str) -> QuerySet[Channel]:
    """By phone number id, display phone (any formatting) or primary key."""
    digits = "".join(ch for ch in number if ch.isdigit())
    found = [c.pk for c in channels if number == c.phone_number_id]
    found += [
        c.pk for c in channels if digits and digits == "".join(ch for ch in c.display_phone if ch.isdigit())
    ]
    if number.isdigit():
        found += [c.pk for c in channels if str(c.pk) == number]
    return channels.filter(pk__in=found)
