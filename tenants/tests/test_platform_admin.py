"""The platform admin as an operator reads it: raw webhook bodies as text, a replay that says when a number
is still unknown, and names people use."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth import get_user_model

from conftest import PASSWORD, login
from tenants.models import WebhookEvent
from whatsapp.testing import queued_jobs


@pytest.fixture
def operator(public_client):
    admin = get_user_model().objects.create_superuser("root@platform.test", "root@platform.test", PASSWORD)
    public_client.force_login(admin)
    return public_client


def _event(phone_number_id: str = "987650000000001") -> WebhookEvent:
    body = {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "1",
                "changes": [
                    {"field": "messages", "value": {"metadata": {"phone_number_id": phone_number_id}}}
                ],
            }
        ],
    }
    return WebhookEvent.objects.create(
        body=json.dumps(body).encode(),
        phone_number_ids=[phone_number_id],
        status=WebhookEvent.Status.UNROUTED,
        error=f"Unknown phone_number_id {phone_number_id}",
    )


def test_a_webhook_bodys_page_shows_it_as_pretty_json_not_bytes(operator):
    event = _event()
    page = operator.get(f"/admin/tenants/webhookevent/{event.pk}/change/").content.decode()
    assert "b&#x27;" not in page and "b'" not in page
    assert '<pre class="webhook-body">' in page
    assert "&quot;object&quot;: &quot;whatsapp_business_account&quot;" in page
    assert "\n  &quot;entry&quot;: [" in page  # indented, one key a line


def test_replaying_an_event_whose_number_is_still_unknown_says_so_and_queues_nothing(operator):
    event = _event()
    before = len(queued_jobs())
    response = operator.post(
        "/admin/tenants/webhookevent/", {"action": "replay", "_selected_action": [event.pk]}, follow=True
    )
    page = response.content.decode()
    assert "phone_number_id 987650000000001 is still unknown" in page
    assert "Queued" not in page and "Processed" not in page.split('id="result_list"')[0]
    event.refresh_from_db()
    assert event.status == WebhookEvent.Status.UNROUTED
    assert len(queued_jobs()) == before


def test_the_tenant_admin_lists_whatsapp_numbers_by_that_name(client_a, tenant_a, owner_a):
    login(client_a, tenant_a, owner_a)
    index = client_a.get("/admin/").content.decode()
    assert "WhatsApp numbers" in index
    assert "Whats app" not in index


def test_the_platform_admin_index_has_no_awkward_names(operator):
    index = operator.get("/admin/").content.decode()
    assert "Webhook events" in index and "Number routes" in index
    assert "Whats app" not in index and "statuss" not in index


def test_tenant_models_are_not_in_a_tenants_admin(client_a, owner_a, tenant_a):
    login(client_a, tenant_a, owner_a)
    assert client_a.get("/admin/tenants/tenant/").status_code == 404
    assert b"Tenants" not in client_a.get("/admin/").content


def test_the_platform_admin_does_not_list_tenant_models(public_client, db):
    admin = get_user_model().objects.create_superuser("root@platform.test", "root@platform.test", PASSWORD)
    public_client.force_login(admin)
    index = public_client.get("/admin/")
    assert b"Tenants" in index.content
    assert b"Contacts" not in index.content
    assert public_client.get("/admin/crm/contact/").status_code == 404
