"""Campaign fixtures: alpha's number with a marketing and a utility template, and contacts to target."""

from __future__ import annotations

from typing import Any

import pytest
from django_tenants.utils import schema_context

from whatsapp.testing import (  # noqa: F401 - fixtures, re-exported
    WABA_A,
    _empty_broker,
    _fresh_redis_state,
    _fresh_webhook_secrets,
    _sandbox_server,
    channel_a,
    channel_b,
    sandbox,
)

SPRING_SALE = {
    "name": "spring_sale",
    "language": "en",
    "status": "APPROVED",
    "category": "MARKETING",
    "components": [
        {"type": "BODY", "text": "Hi {{1}}, {{2}} off everything this week."},
        {"type": "BUTTONS", "buttons": [{"type": "QUICK_REPLY", "text": "Stop promotions"}]},
    ],
}
ORDER_NOTE = {
    "name": "order_note",
    "language": "en",
    "status": "APPROVED",
    "category": "UTILITY",
    "components": [
        {"type": "HEADER", "format": "IMAGE"},
        {"type": "BODY", "text": "Hello {{1}}, your order is ready."},
    ],
}


@pytest.fixture
def templates(channel_a: Any, tenant_a: Any, sandbox: Any) -> Any:  # noqa: F811
    from whatsapp.services import sync_templates

    sandbox.set_templates(WABA_A, [SPRING_SALE, ORDER_NOTE])
    with schema_context(tenant_a.schema_name):
        sync_templates(channel=channel_a)
    return channel_a


def make_contact(
    phone: str, *, name: str = "", tags: tuple[str, ...] = (), consent: str = "opted_in", **fields: Any
) -> Any:
    from crm.models import Contact, Tag

    contact = Contact.objects.create(phone=phone, name=name, marketing_consent=consent, **fields)
    for tag in tags:
        contact.tags.add(Tag.objects.get_or_create(name=tag)[0])
    return contact
