"""Settings → Inbox in Debian's chromium against the live server (see conftest): an owner adds a rule and a
saved reply through the page, and an agent's composer offers that reply after `/`."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from conversations.models import AutoReplyRule, CannedResponse, Conversation, Message
from conversations.tests.browser.conftest import Live, screenshot, sign_in
from crm.models import Contact
from tenants.db import connection

pytestmark = pytest.mark.browser


def test_the_live_stack_uses_the_test_database(db):
    """Run first: makes pytest-django set the test database up when only this module runs."""
    assert connection.settings_dict["NAME"].startswith("test_")


def test_an_owner_adds_a_rule_and_a_saved_reply_and_the_composer_offers_the_reply(page, live: Live, tmp_path):
    sign_in(page, next_url="/settings/inbox/")
    expect(page.locator('nav.tabs a[aria-current="page"]')).to_have_text("Inbox")

    page.fill("#rule_keyword", "opening hours")
    page.select_option("#rule_match", "contains")
    page.fill("#rule_reply", "We are open 9-18, Mon-Fri.")
    page.click("#rule-form button[type=submit]")
    row = page.locator("#rules tbody tr", has_text="opening hours")
    expect(row).to_contain_text("We are open 9-18, Mon-Fri.")
    expect(row.locator("button.switch")).to_have_attribute("aria-pressed", "true")
    expect(page.locator("#rules .notice")).to_have_text("Rule “opening hours” added.")

    # A shortcut agents could not type after "/" is refused next to the field; nothing is stored.
    page.fill("#canned_shortcut", "thank you")
    page.fill("#canned_text", "Thank you for writing to us!")
    page.click("#reply-form button[type=submit]")
    expect(page.locator('#replies .error[data-code="invalid_shortcut"]')).to_be_visible()
    expect(page.locator("#canned_text")).to_have_value("Thank you for writing to us!")
    page.fill("#canned_shortcut", "thanks")
    page.click("#reply-form button[type=submit]")
    expect(page.locator("#replies tbody")).to_contain_text("/thanks")
    expect(page.locator("#replies .error")).to_have_count(0)

    # Stored, not just shown: a fresh load lists both.
    page.reload()
    expect(page.locator("#rules tbody")).to_contain_text("opening hours")
    expect(page.locator("#replies tbody")).to_contain_text("Thank you for writing to us!")
    # The whole page in one picture: a viewport as tall as the page, at the top.
    page.evaluate("window.scrollTo(0, 0)")
    page.set_viewport_size({"width": 1366, "height": page.evaluate("document.body.scrollHeight")})
    screenshot(page, "inbox-settings", tmp_path)
    page.set_viewport_size({"width": 1366, "height": 820})
    with live.orm():
        assert list(AutoReplyRule.objects.values_list("keyword", "reply", "is_active")) == [
            ("opening hours", "We are open 9-18, Mon-Fri.", True)
        ]
        assert list(CannedResponse.objects.values_list("shortcut", flat=True)) == ["thanks"]

    conversation = _conversation(live)
    page.goto(f"/inbox/c/{conversation.pk}/")
    page.locator("#composer-text").press_sequentially("/tha")
    menu = page.locator("#canned-menu")
    expect(menu).to_be_visible()
    expect(menu).to_contain_text("/thanks")
    page.press("#composer-text", "Enter")
    expect(page.locator("#composer-text")).to_have_value("Thank you for writing to us!")


def _conversation(live: Live) -> Conversation:
    wrote = timezone.now() - dt.timedelta(minutes=5)
    with live.orm():
        contact = Contact.objects.create(
            name="Lena Vogel", phone="+4915200000077", wa_id="4915200000077", last_inbound_at=wrote
        )
        conversation = Conversation.objects.create(
            contact=contact, channel=live.channel, last_message_at=wrote, last_inbound_at=wrote
        )
        Message.objects.create(
            conversation=conversation,
            direction=Message.Direction.INBOUND,
            type=Message.Type.TEXT,
            text="Hello!",
            status=Message.Status.RECEIVED,
            timestamp=wrote,
        )
    return conversation
