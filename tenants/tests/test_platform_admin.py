"""The platform admin as an operator reads it: raw webhook bodies as text, a replay that says when a number
is still unknown, one message per mistake when creating a tenant, and names people use."""

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


def test_creating_a_tenant_with_a_bad_slug_shows_one_message(operator):
    response = operator.post(
        "/admin/tenants/tenant/add/",
        {
            "slug": "Bad Slug!",
            "name": "Bad",
            "plan": "free",
            "owner_email": "o@bad.test",
            "owner_password": PASSWORD,
        },
    )
    page = response.content.decode()
    assert page.count("The slug must be 2 to 40 lowercase letters or digits") == 1
    assert "underscores or hyphens" not in page


def test_creating_a_tenant_with_a_bad_email_or_no_name_shows_one_message_each(operator):
    response = operator.post(
        "/admin/tenants/tenant/add/",
        {"slug": "zeta", "name": "Zeta", "plan": "free", "owner_email": "nope", "owner_password": PASSWORD},
    )
    page = response.content.decode()
    assert page.count("Enter a valid") == 1 and "Enter a valid owner email address." in page
    empty = operator.post(
        "/admin/tenants/tenant/add/",
        {
            "slug": "zeta",
            "name": "",
            "plan": "free",
            "owner_email": "o@zeta.test",
            "owner_password": PASSWORD,
        },
    ).content.decode()
    assert empty.count("This field is required.") == 1
    assert "The business name is required." not in empty


def test_the_tenant_admin_lists_whatsapp_numbers_by_that_name(client_a, tenant_a, owner_a):
    login(client_a, tenant_a, owner_a)
    index = client_a.get("/admin/").content.decode()
    assert "WhatsApp numbers" in index
    assert "Whats app" not in index


def test_the_platform_admin_index_has_no_awkward_names(operator):
    index = operator.get("/admin/").content.decode()
    assert "Webhook events" in index and "Number routes" in index
    assert "Whats app" not in index and "statuss" not in index
