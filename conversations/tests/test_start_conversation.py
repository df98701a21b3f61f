"""Starting a conversation from a contact ("Message" on the contact pages, /inbox/start/<contact>/): the
window picks free-form text or templates, the send goes through services.start_conversation, refusals
store nothing, and the page is only for staff of the contact's own tenant."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest
from django.utils import timezone
from django_tenants.utils import schema_context

from conftest import login
from conversations.models import Conversation, Message
from crm.models import Contact
from whatsapp.testing import WABA_A, run_jobs

_phones = iter(range(2000, 3000))


def orm(tenant: Any) -> Any:
    return schema_context(tenant.schema_name)


def make_contact(tenant: Any, *, hours_since_inbound: float | None = None, **fields: Any) -> Contact:
    n = next(_phones)
    last = (
        timezone.now() - dt.timedelta(hours=hours_since_inbound) if hours_since_inbound is not None else None
    )
    with orm(tenant):
        return Contact.objects.create(
            name=fields.pop("name", f"Contact {n}"),
            phone=f"+1555300{n:04d}",
            wa_id=f"1555300{n:04d}",
            last_inbound_at=last,
            **fields,
        )


def make_template(tenant: Any, name: str, *, category: str = "UTILITY", status: str = "APPROVED") -> Any:
    from whatsapp.models import MessageTemplate

    with orm(tenant):
        return MessageTemplate.objects.create(
            waba_id=WABA_A,
            name=name,
            language="en_US",
            category=category,
            status=status,
            components=[{"type": "BODY", "text": "Hello {{1}}, your order is ready."}],
        )


def error_code(response: Any) -> str | None:
    found = re.search(r'id="start-error" role="alert" data-code="([\w-]+)"', response.content.decode())
    return found.group(1) if found else None


def nothing_stored(tenant: Any, contact: Contact) -> bool:
    with orm(tenant):
        return not Conversation.objects.filter(contact=contact).exists() and not Message.objects.exists()


@pytest.fixture
def owner_client(client_a, tenant_a, owner_a):
    return login(client_a, tenant_a, owner_a)


def test_inside_the_window_the_composer_offers_free_form_text(owner_client, tenant_a, channel_a):
    contact = make_contact(tenant_a, hours_since_inbound=2)
    make_template(tenant_a, "order_ready")
    page = owner_client.get(f"/inbox/start/{contact.pk}/").content.decode()
    assert 'id="start-text"' in page and 'data-window="open"' in page
    assert 'id="template-form"' not in page


def test_outside_the_window_the_composer_offers_only_approved_templates(owner_client, tenant_a, channel_a):
    contact = make_contact(tenant_a, hours_since_inbound=25)
    make_template(tenant_a, "order_ready")
    make_template(tenant_a, "still_pending", status="PENDING")
    page = owner_client.get(f"/inbox/start/{contact.pk}/").content.decode()
    assert 'data-window="closed"' in page and 'id="template-form"' in page
    assert 'id="start-text"' not in page
    assert "order_ready" in page and "still_pending" not in page
    # A contact who never wrote is outside the window too.
    never = make_contact(tenant_a)
    assert 'id="template-form"' in owner_client.get(f"/inbox/start/{never.pk}/").content.decode()


def test_the_picker_shows_the_chosen_templates_parameter_form(owner_client, tenant_a, channel_a):
    contact = make_contact(tenant_a)
    template = make_template(tenant_a, "order_ready")
    url = f"/inbox/start/{contact.pk}/{channel_a.pk}/templates/"
    page = owner_client.get(url, {"template": template.pk, "body_1": "Tom"}).content.decode()
    assert 'name="body_1"' in page and "Hello Tom, your order is ready." in page
    assert f'action="/inbox/start/{contact.pk}/{channel_a.pk}/send/"' in page


def test_a_template_outside_the_window_is_sent_and_the_conversation_opens(
    owner_client, tenant_a, channel_a, sandbox, django_capture_on_commit_callbacks
):
    contact = make_contact(tenant_a, hours_since_inbound=30)
    template = make_template(tenant_a, "order_ready")
    with django_capture_on_commit_callbacks(execute=True):
        response = owner_client.post(
            f"/inbox/start/{contact.pk}/{channel_a.pk}/send/",
            {"template": template.pk, "body_1": "Tom", "idempotency_key": "k-1"},
        )
    with orm(tenant_a):
        conversation = Conversation.objects.get(contact=contact)
        message = Message.objects.get(conversation=conversation)
    assert response.status_code == 303 and response["Location"] == f"/inbox/c/{conversation.pk}/"
    assert message.type == Message.Type.TEMPLATE and message.text == "Hello Tom, your order is ready."
    run_jobs()
    sent = [s["body"] for s in sandbox.sent() if s["body"].get("type") == "template"]
    assert [b["template"]["name"] for b in sent] == ["order_ready"]
    # A double submit of the same form stores nothing more.
    again = owner_client.post(
        f"/inbox/start/{contact.pk}/{channel_a.pk}/send/",
        {"template": template.pk, "body_1": "Tom", "idempotency_key": "k-1"},
    )
    assert again.status_code == 303
    with orm(tenant_a):
        assert Message.objects.count() == 1


def test_free_form_text_inside_the_window_is_sent(owner_client, tenant_a, channel_a):
    contact = make_contact(tenant_a, hours_since_inbound=1)
    response = owner_client.post(f"/inbox/start/{contact.pk}/{channel_a.pk}/send/", {"text": "Hi there"})
    assert response.status_code == 303
    with orm(tenant_a):
        assert list(Message.objects.filter(conversation__contact=contact).values_list("text", flat=True)) == [
            "Hi there"
        ]


def test_free_form_text_outside_the_window_is_refused_with_nothing_stored(owner_client, tenant_a, channel_a):
    contact = make_contact(tenant_a, hours_since_inbound=26)
    response = owner_client.post(f"/inbox/start/{contact.pk}/{channel_a.pk}/send/", {"text": "Hi there"})
    assert response.status_code == 422 and error_code(response) == "outside_window"
    assert nothing_stored(tenant_a, contact)


def test_an_opted_out_contact_cannot_get_a_marketing_template_and_nothing_is_stored(
    owner_client, tenant_a, channel_a
):
    contact = make_contact(tenant_a, marketing_consent=Contact.MarketingConsent.OPTED_OUT)
    template = make_template(tenant_a, "big_sale", category="MARKETING")
    response = owner_client.post(
        f"/inbox/start/{contact.pk}/{channel_a.pk}/send/", {"template": template.pk, "body_1": "Tom"}
    )
    assert response.status_code == 422 and error_code(response) == "opted_out"
    assert "opted out of marketing messages" in response.content.decode()
    # The form is shown again with what was typed.
    assert 'value="Tom"' in response.content.decode()
    assert nothing_stored(tenant_a, contact)


def test_a_blocked_contact_gets_no_composer_and_a_send_is_refused(owner_client, tenant_a, channel_a):
    contact = make_contact(tenant_a, hours_since_inbound=1, blocked=True)
    page = owner_client.get(f"/inbox/start/{contact.pk}/").content.decode()
    assert 'id="start-blocked"' in page
    assert 'id="start-text"' not in page and 'id="template-form"' not in page
    detail = owner_client.get(f"/contacts/{contact.pk}/").content.decode()
    assert 'id="message-blocked"' in detail and f"/inbox/start/{contact.pk}/" not in detail
    response = owner_client.post(f"/inbox/start/{contact.pk}/{channel_a.pk}/send/", {"text": "Hi"})
    assert response.status_code == 422
    assert nothing_stored(tenant_a, contact)


def test_the_message_action_is_on_the_contact_page_and_in_the_list(owner_client, tenant_a, channel_a):
    contact = make_contact(tenant_a, name="Zed Message")
    blocked = make_contact(tenant_a, name="Zed Blocked", blocked=True)
    assert 'id="message-contact"' in owner_client.get(f"/contacts/{contact.pk}/").content.decode()
    rows = owner_client.get("/contacts/", {"q": "Zed"}).content.decode()
    assert f'href="/inbox/start/{contact.pk}/"' in rows
    assert f'href="/inbox/start/{blocked.pk}/"' not in rows and "Cannot message" in rows


def test_a_number_needing_reauthorisation_is_shown_and_a_send_stores_nothing(
    owner_client, tenant_a, channel_a
):
    from conversations.models import Channel

    with orm(tenant_a):
        Channel.objects.filter(pk=channel_a.pk).update(status=Channel.Status.NEEDS_REAUTH)
    contact = make_contact(tenant_a, hours_since_inbound=1)
    page = owner_client.get(f"/inbox/start/{contact.pk}/").content.decode()
    assert 'id="start-channel-state"' in page and "needs re-authorisation" in page
    response = owner_client.post(f"/inbox/start/{contact.pk}/{channel_a.pk}/send/", {"text": "Hi"})
    assert response.status_code == 422 and error_code(response) == "channel_inactive"
    assert nothing_stored(tenant_a, contact)


def test_without_a_connected_number_the_composer_says_so(owner_client, tenant_a):
    contact = make_contact(tenant_a, hours_since_inbound=1)
    page = owner_client.get(f"/inbox/start/{contact.pk}/").content.decode()
    assert 'data-code="no_channel"' in page and 'id="start-text"' not in page


def test_a_number_without_approved_templates_says_so_and_a_made_up_template_is_refused(
    owner_client, tenant_a, channel_a
):
    contact = make_contact(tenant_a)
    page = owner_client.get(f"/inbox/start/{contact.pk}/").content.decode()
    assert "No approved templates for this number" in page
    response = owner_client.post(f"/inbox/start/{contact.pk}/{channel_a.pk}/send/", {"template": "999999"})
    assert response.status_code == 422 and error_code(response) == "invalid_template"
    assert nothing_stored(tenant_a, contact)


def test_an_agent_can_start_a_conversation_and_open_it(client_a, tenant_a, agent_a, channel_a):
    contact = make_contact(tenant_a, hours_since_inbound=40)
    template = make_template(tenant_a, "order_ready")
    login(client_a, tenant_a, agent_a)
    assert client_a.get(f"/inbox/start/{contact.pk}/").status_code == 200
    response = client_a.post(
        f"/inbox/start/{contact.pk}/{channel_a.pk}/send/", {"template": template.pk, "body_1": "Ann"}
    )
    assert response.status_code == 303
    assert client_a.get(response["Location"]).status_code == 200
    with orm(tenant_a):
        assert Message.objects.get(conversation__contact=contact).sender_id == agent_a.pk


def test_another_tenants_contact_or_number_is_not_found(client_b, tenant_b, owner_b, tenant_a, channel_a):
    contact = make_contact(tenant_a, hours_since_inbound=1)
    template = make_template(tenant_a, "order_ready")
    login(client_b, tenant_b, owner_b)
    assert client_b.get(f"/inbox/start/{contact.pk}/").status_code == 404
    assert client_b.get(f"/inbox/start/{contact.pk}/{channel_a.pk}/templates/").status_code == 404
    response = client_b.post(
        f"/inbox/start/{contact.pk}/{channel_a.pk}/send/", {"template": template.pk, "body_1": "x"}
    )
    assert response.status_code == 404
    assert nothing_stored(tenant_a, contact)
    for bad in ("0", "99999999999999999999"):
        assert client_b.get(f"/inbox/start/{bad}/").status_code == 404


def test_signed_out_the_composer_and_the_send_go_to_the_login_page(client_a, tenant_a, channel_a):
    contact = make_contact(tenant_a, hours_since_inbound=1)
    assert client_a.get(f"/inbox/start/{contact.pk}/").status_code == 302
    response = client_a.post(f"/inbox/start/{contact.pk}/{channel_a.pk}/send/", {"text": "Hi"})
    assert response.status_code == 302 and "/login/" in response["Location"]
    assert nothing_stored(tenant_a, contact)


def test_with_several_numbers_the_staff_member_picks_the_one_to_write_from(
    owner_client, tenant_a, channel_a, sandbox
):
    from whatsapp.testing import connect_number

    second = connect_number(
        sandbox, tenant_a, "106540352249999", WABA_A, "token-alpha", display_phone="+15550000002"
    )
    contact = make_contact(tenant_a, hours_since_inbound=1)
    page = owner_client.get(f"/inbox/start/{contact.pk}/").content.decode()
    assert 'id="start-channel"' in page and "+15550000002" in page and "+15550783881" in page
    chosen = owner_client.get(f"/inbox/start/{contact.pk}/", {"channel": second.pk}).content.decode()
    assert f'action="/inbox/start/{contact.pk}/{second.pk}/send/"' in chosen
    response = owner_client.post(f"/inbox/start/{contact.pk}/{second.pk}/send/", {"text": "From the second"})
    assert response.status_code == 303
    with orm(tenant_a):
        assert Conversation.objects.get(contact=contact).channel_id == second.pk
