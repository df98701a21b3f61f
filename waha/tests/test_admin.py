"""The tenant admin shows WAHA sessions and webhook events read-only, and processes a failed event again."""

from __future__ import annotations

import json

from django.test import Client
from django_tenants.utils import schema_context

from conftest import host_of, login
from conversations.models import Message
from waha.models import WahaEvent
from waha.testing import make_waha_number
from waha.tests.test_inbound import envelope, message_payload
from whatsapp.testing import run_jobs


def test_a_failed_event_is_processed_again_from_the_admin(tenant_a, owner_a):
    number = make_waha_number(tenant_a)
    body = json.dumps(envelope("message", message_payload("ADM1", body="Retry <b>me</b>"))).encode()
    with schema_context(tenant_a.schema_name):
        failed = WahaEvent.objects.create(
            webhook_id=number.webhook_id, event="message", body=body, status="failed", error="boom"
        )
        done = WahaEvent.objects.create(
            webhook_id=number.webhook_id, event="message", body=body, status="processed"
        )
    client = login(Client(HTTP_HOST=host_of(tenant_a)), tenant_a, owner_a)
    listing = client.get("/admin/waha/wahaevent/")
    assert listing.status_code == 200
    page = client.get(f"/admin/waha/wahaevent/{failed.pk}/change/").content.decode()
    assert "Retry &lt;b&gt;me&lt;/b&gt;" in page
    assert client.get("/admin/waha/wahasession/").status_code == 200
    assert (
        "waha-test-key"
        not in client.get(f"/admin/waha/wahasession/{number.session.pk}/change/").content.decode()
    )

    response = client.post(
        "/admin/waha/wahaevent/",
        {"action": "process_again", "_selected_action": [failed.pk, done.pk]},
    )
    assert response.status_code == 302
    run_jobs()
    with schema_context(tenant_a.schema_name):
        failed.refresh_from_db()
        done.refresh_from_db()
        assert failed.status == "processed" and done.status == "processed"
        assert Message.objects.filter(text="Retry <b>me</b>").count() == 1
