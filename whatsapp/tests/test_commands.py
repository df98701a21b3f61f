from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command
from django_tenants.utils import schema_context

from tenants.models import NumberRoute
from whatsapp.models import WhatsAppChannel


def test_connect_whatsapp_adds_a_routed_number_with_an_encrypted_token(tenant_a, capsys):
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
        channel = WhatsAppChannel.objects.get()
        assert (channel.access_token, channel.throughput_cap, channel.status) == ("EAAG-token", 80, "active")


def test_connect_whatsapp_refuses_a_number_of_another_tenant(tenant_a, tenant_b):
    args = ["--phone-number-id", "106540352242922", "--waba-id", "1", "--access-token", "t"]
    call_command("connect_whatsapp", "--tenant", "alpha", *args)
    with pytest.raises(CommandError, match="another workspace"):
        call_command("connect_whatsapp", "--tenant", "beta", *args)
    with pytest.raises(CommandError, match="No tenant"):
        call_command("connect_whatsapp", "--tenant", "nobody", *args)
