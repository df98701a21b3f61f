"""manage.py connect_waha: links a number on a WAHA server and prints the webhook URL and key."""

from __future__ import annotations

import io
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django_tenants.utils import schema_context

from tenants.models import WahaRoute
from waha.models import WahaSession
from waha.sandbox import Sandbox


def test_it_links_and_prints_the_webhook_url_and_key(tenant_a: Any, waha_sandbox: Sandbox) -> None:
    out = io.StringIO()
    call_command(
        "connect_waha",
        "--tenant",
        tenant_a.slug,
        "--server-url",
        waha_sandbox.base,
        "--api-key",
        waha_sandbox.api_key,
        "--session",
        "cmd-shop",
        stdout=out,
    )
    text = out.getvalue()
    route = WahaRoute.objects.get(tenant=tenant_a)
    key = waha_sandbox.session("cmd-shop").config["webhooks"][0]["hmac"]["key"]
    assert f"/webhooks/waha/{route.webhook_id}/" in text and key in text
    assert waha_sandbox.api_key not in text  # the API key is never printed back
    with schema_context(tenant_a.schema_name):
        assert WahaSession.objects.get(session="cmd-shop").channel.provider == "waha"


def test_it_refuses_with_the_reason(tenant_a: Any, waha_sandbox: Sandbox) -> None:
    with pytest.raises(CommandError, match="invalid_session_name"):
        call_command("connect_waha", "--tenant", tenant_a.slug, "--session", "bad name!")
    with pytest.raises(CommandError, match="No tenant"):
        call_command("connect_waha", "--tenant", "nope", "--session", "x")
    assert not WahaRoute.objects.exists()
