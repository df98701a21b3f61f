from __future__ import annotations

from typing import Any

from django_tenants.utils import schema_context

from core import crypto
from tenants.models import WahaRoute
from waha.testing import make_waha_number


def test_make_waha_number_routes_and_links(tenant_a: Any) -> None:
    number = make_waha_number(tenant_a)
    route = WahaRoute.objects.get(webhook_id=number.webhook_id)
    assert route.tenant == tenant_a
    assert crypto.decrypt(route.hmac_key_encrypted) == number.webhook_key
    with schema_context(tenant_a.schema_name):
        assert number.channel.provider == "waha"
        assert number.channel.waha.session == "default"
