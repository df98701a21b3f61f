"""Starting a conversation from a contact's page in Debian's chromium (see conftest): "Message", an approved
template outside the 24-hour window, its parameter, sent; the inbox opens on the new conversation and the
message reaches the sandbox (Meta)."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from conversations.models import Conversation
from conversations.tests.browser.conftest import WABA, Live, sign_in
from conversations.tests.browser.test_inbox import bubble, new_wa_id, wait_for_js
from crm.models import Contact

pytestmark = pytest.mark.browser


def test_the_start_composers_live_stack_uses_the_test_database(db):
    """pytest-django sets the test database up only for a run with a test that uses `db`: when this
    module runs alone, this is that test."""
    from tenants.db import connection

    assert connection.settings_dict["NAME"].startswith("test_")


def test_a_contact_outside_the_window_is_messaged_with_a_template_from_their_page(page, live: Live):
    from whatsapp.models import MessageTemplate

    wa_id = new_wa_id()
    with live.orm():
        contact = Contact.objects.create(
            name="Lena Ortiz",
            phone=f"+{wa_id}",
            wa_id=wa_id,
            last_inbound_at=timezone.now() - dt.timedelta(hours=30),
        )
        MessageTemplate.objects.get_or_create(
            waba_id=WABA,
            name="appointment_reminder",
            language="en_US",
            defaults={
                "category": "UTILITY",
                "status": "APPROVED",
                "components": [{"type": "BODY", "text": "Hi {{1}}, see you tomorrow at 10:00."}],
            },
        )
    sign_in(page, next_url=f"/contacts/{contact.pk}/")
    page.click("#message-contact")

    expect(page.locator("#start-window")).to_contain_text("only allows an approved template")
    expect(page.locator("#start-text")).to_have_count(0)
    # The choice arrives in an htmx swap: pick once htmx has wired the select (as a person would, later).
    wait_for_js(page, "!!(document.querySelector('#tpl-select') || {})['htmx-internal-data']")
    page.select_option("#tpl-select", label="appointment_reminder (en_US, utility)")
    expect(page.locator("#tpl-body_1")).to_be_visible()
    # The preview refreshes through htmx on input: type once htmx has wired the swapped-in fields.
    wait_for_js(page, "!!(document.querySelector('.tpl-params') || {})['htmx-internal-data']")
    page.fill("#tpl-body_1", "Lena")
    expect(page.locator("#tpl-preview")).to_have_text("Hi Lena, see you tomorrow at 10:00.")
    page.click("#template-form button[type=submit]")

    with live.orm():
        conversation = Conversation.objects.get(contact=contact)
    page.wait_for_url(f"**/inbox/c/{conversation.pk}/")
    expect(page.locator(f'#thread[data-conversation="{conversation.pk}"]')).to_be_visible()
    sent = bubble(page, "Hi Lena, see you tomorrow at 10:00.")
    expect(sent).to_have_count(1)
    expect(sent.locator(".tick")).to_have_attribute("aria-label", "Read")
    templates = [s["body"] for s in live.sandbox.sent() if s["body"].get("type") == "template"]
    assert [(b["to"], b["template"]["name"]) for b in templates if b["to"] == wa_id] == [
        (wa_id, "appointment_reminder")
    ]


def test_a_saved_reply_is_inserted_with_its_variables_filled_for_the_contact_and_the_agent(page, live: Live):
    from django.contrib.auth import get_user_model

    from conversations import settings_services
    from conversations.tests.browser.conftest import OWNER
    from conversations.tests.browser.test_inbox import make_conversation

    conversation = make_conversation(live, name="Noor Haddad", text="Are you open today?")
    with live.orm():
        get_user_model().objects.filter(email=OWNER).update(first_name="Rita", last_name="Moss")
        settings_services.save_canned_response(
            shortcut="greet", text="Hi {{ contact.first_name }}, {{agent.name}} here."
        )
    sign_in(page, next_url=f"/inbox/c/{conversation.pk}/")
    page.locator("#composer-text").press_sequentially("/gre")
    expect(page.locator("#canned-menu")).to_contain_text("/greet")
    page.press("#composer-text", "Enter")
    expect(page.locator("#composer-text")).to_have_value("Hi Noor, Rita Moss here.")
