"""Issue 19's "done means", in Debian's chromium against the live stack and the WAHA sandbox: a user links
a number by scanning its QR code (the sandbox page's button is the phone), receives a message, answers
it from the same inbox as Cloud API numbers, and sees the ticks."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

from conftest import wait_until
from conversations.models import Conversation, Message
from conversations.tests.browser.conftest import Live, screenshot, sign_in
from tenants.db import connection
from waha.models import WahaSession
from waha.sandbox import Sandbox

pytestmark = pytest.mark.browser

SESSION = "browser-shop"


def test_the_live_stack_uses_the_test_database(db: None) -> None:
    """Also what makes pytest-django set the test database up when only these tests run."""
    assert connection.settings_dict["NAME"].startswith("test_")


def wait_for_socket(page: Any) -> None:
    """The inbox's socket is open (page.wait_for_function would eval(), which the page's CSP forbids)."""
    for _ in range(600):
        if page.evaluate("window.inboxSocket && window.inboxSocket.state() === 1"):
            return
        page.wait_for_timeout(50)
    raise AssertionError("the inbox's socket never opened")


def sandbox_session(phone: Any, sandbox: Sandbox) -> Any:
    """The sandbox's page (the phone's side), on the session's section. Typing in one of its fields
    stops the page's own refresh, so the section stays put while the test clicks."""
    phone.goto(f"{sandbox.base}/")
    return phone.locator("section.session", has_text=SESSION)


def test_link_by_qr_code_receive_answer_and_see_the_ticks(
    page: Any, live: Live, waha_live: Sandbox, tmp_path: Any
) -> None:
    sign_in(page, next_url="/settings/whatsapp/waha/")
    page.fill("#id_session", SESSION)
    page.fill("#id_name", "Shop phone")
    page.get_by_role("button", name="Create the session and show the QR code").click()
    expect(page.locator("#waha-live .waha-qr svg")).to_be_visible()
    screenshot(page, "waha-qr", tmp_path)

    # The phone scans the code.
    phone = page.context.new_page()
    section = sandbox_session(phone, waha_live)
    section.locator("input[name=phone]").fill("+15550001111")
    section.get_by_role("button", name="Scan (link)").click()
    # The CRM's page follows the session (session.status webhook, then its own polling).
    expect(page.locator("#waha-live [data-session-status]")).to_have_attribute(
        "data-session-status", "WORKING"
    )
    expect(page.locator("#waha-live")).to_contain_text("+15550001111")

    # A customer writes to the linked number.
    section = sandbox_session(phone, waha_live)
    inbound = section.locator("form[action='/_sandbox/inbound']")
    inbound.locator("input[name=name]").fill("Greta Web")
    inbound.locator("input[name=text]").fill("Hello! Do you ship to Vienna?")
    inbound.get_by_role("button", name="Send to this number").click()

    # The same inbox as the Cloud API numbers (once the message is stored: the list loads what exists, then
    # follows over its socket).
    with live.orm():
        conversation = wait_until(
            lambda: Conversation.objects.filter(messages__text="Hello! Do you ship to Vienna?").first(),
            what="the WAHA message to be stored",
        )
    page.goto("/inbox/?tab=all")
    page.locator(f"#conv-{conversation.pk} .row-link").click()
    expect(page.locator(f'#thread[data-conversation="{conversation.pk}"]')).to_be_visible()
    wait_for_socket(page)
    expect(page.locator("#messages .msg", has_text="Do you ship to Vienna?")).to_have_count(1)
    page.fill("#composer-text", "Yes, in 2 to 3 days.")
    page.press("#composer-text", "Enter")
    sent = page.locator("#messages .msg", has_text="Yes, in 2 to 3 days.")
    # The ticks: the sandbox echoes the send (message.any) and acks it SERVER → DEVICE → READ.
    expect(sent.locator(".tick")).to_have_attribute("aria-label", "Read")
    expect(sent).to_have_count(1)
    screenshot(page, "waha-thread", tmp_path)

    [request] = waha_live.sent(SESSION, endpoint="sendText")
    assert request["body"]["text"] == "Yes, in 2 to 3 days." and request["chat_id"].endswith("@c.us")
    with live.orm():
        stored = Message.objects.get(text="Yes, in 2 to 3 days.")
        assert stored.status == "read" and stored.wamid == request["id"]
        assert stored.conversation.channel.provider == "waha"
        assert WahaSession.objects.get(session=SESSION).status == "WORKING"
