from __future__ import annotations

import re

import pytest
from django.core.management import CommandError, call_command
from django_tenants.utils import schema_context

from conversations.models import Channel
from tenants.models import NumberRoute, WebhookEvent
from whatsapp import crypto


def test_connect_whatsapp_adds_a_routed_number_with_an_encrypted_token(tenant_a, sandbox, capsys):
    sandbox.add_number("106540352242922", waba_id="102290129340398", tokens=["EAAG-token"])
    call_command(
        "connect_whatsapp",
        "--tenant",
        "alpha",
        "--phone-number-id",
        "106540352242922",
        "--waba-id",
        "102290129340398",
        "--access-token",
        "EAAG-token",
        "--display-phone",
        "+44 7911 123456",
    )
    out = capsys.readouterr().out
    assert "EAAG-token" not in out and "+447911123456" in out
    assert NumberRoute.objects.get(phone_number_id="106540352242922").tenant == tenant_a
    with schema_context("alpha"):
        channel = Channel.objects.get()
        assert (crypto.decrypt(channel.access_token_encrypted), channel.throughput_cap, channel.status) == (
            "EAAG-token",
            80,
            "active",
        )


def test_connect_whatsapp_refuses_a_number_of_another_tenant(tenant_a, tenant_b, sandbox):
    sandbox.add_number("106540352242922", waba_id="1")  # any token may read it
    args = ["--phone-number-id", "106540352242922", "--waba-id", "1", "--access-token", "t"]
    call_command("connect_whatsapp", "--tenant", "alpha", *args)
    with pytest.raises(CommandError, match="another workspace"):
        call_command("connect_whatsapp", "--tenant", "beta", *args)
    with pytest.raises(CommandError, match="No tenant"):
        call_command("connect_whatsapp", "--tenant", "nobody", *args)


# simulate_inbound against the live web and worker processes: test_live_processes.py. Its bad arguments:


def simulate(tenant: str, *extra: str, sender: str = "+15551234567") -> None:
    call_command("simulate_inbound", "--tenant", tenant, "--from", sender, "--text", "hi", *extra)


def test_simulate_inbound_names_an_unknown_tenant(db):
    with pytest.raises(CommandError, match="No tenant with the slug 'nobody'"):
        simulate("nobody")


def test_simulate_inbound_refuses_what_is_not_a_phone_number(channel_a):
    for sender in ("not-a-number", "+12", "1234567890123456789"):
        with pytest.raises(CommandError, match="is not a phone number"):
            simulate("alpha", sender=sender)
    assert not WebhookEvent.objects.exists()


def test_simulate_inbound_needs_a_connected_number(tenant_b, channel_a):
    with pytest.raises(CommandError, match="beta has no WhatsApp number"):
        simulate("beta")
    with pytest.raises(CommandError, match="alpha has no WhatsApp number with the id 999"):
        simulate("alpha", "--phone-number-id", "999")


def test_simulate_inbound_says_when_the_app_cannot_be_reached(channel_a):
    with pytest.raises(CommandError, match=re.escape("Could not reach http://127.0.0.1:1/")):
        simulate("alpha", "--url", "http://127.0.0.1:1/webhooks/whatsapp/")
