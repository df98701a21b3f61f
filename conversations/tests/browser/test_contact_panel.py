"""The contact side panel in Debian's chromium: edits in place beside a live thread (see conftest)."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

from conversations.tests.browser.conftest import WAIT_MS, Live, screenshot, sign_in
from conversations.tests.browser.test_inbox import make_conversation, open_conversation, wait_for_js
from crm import services as crm_services
from crm.models import Contact, Note

pytestmark = pytest.mark.browser


def wired(page: Any, selector: str) -> None:
    """Wait until htmx has processed what a swap brought in (a click before that does nothing)."""
    wait_for_js(page, f"!!(document.querySelector({selector!r}) || {{}})['htmx-internal-data']")


def test_the_panels_live_stack_uses_the_test_database(db):
    """pytest-django sets the test database up only for a run with a test that uses `db`: when this
    module runs alone, this is that test."""
    from tenants.db import connection

    assert connection.settings_dict["NAME"].startswith("test_")


def test_an_agent_renames_the_contact_tags_it_and_notes_it_beside_the_thread(
    page, browser, live: Live, tmp_path
):
    conversation = make_conversation(live, name="Priya Shah", text="Can you call me back?")
    with live.orm():
        crm_services.save_attribute_definition(key="seats", label="Seats", type="number")
    # A colleague has the inbox open too: the rename reaches their list over the socket.
    colleague = browser.new_context(viewport={"width": 1366, "height": 820}, base_url=live.url)
    colleague.set_default_timeout(WAIT_MS)
    other = colleague.new_page()
    try:
        sign_in(other, next_url="/inbox/?tab=all")
        wait_for_js(other, "window.inboxSocket && window.inboxSocket.state() === 1")

        sign_in(page, next_url="/inbox/?tab=all")
        open_conversation(page, conversation)
        panel = page.locator("#contact-pane")
        expect(panel.locator("#cp-title")).to_have_text("Priya Shah")

        # The name: click it, type, Enter; the panel, the thread head and both lists show the new name.
        wired(page, "#cf-name .cf-value")
        panel.locator("#cf-name .cf-value").click()
        name_input = panel.locator("#cf-input-name")
        expect(name_input).to_be_focused()
        name_input.fill("Priya Raman")
        name_input.press("Enter")
        expect(panel.locator("#cp-status")).to_have_text("Name saved.")
        expect(panel.locator("#cp-title")).to_have_text("Priya Raman")
        expect(panel.locator("#cf-name .cf-value")).to_be_focused()
        expect(page.locator("#thread-title")).to_have_text("Priya Raman")
        expect(page.locator(f"#conv-{conversation.pk} .name")).to_have_text("Priya Raman")
        expect(other.locator(f"#conv-{conversation.pk} .name")).to_have_text("Priya Raman")

        # A value its definition refuses: the message shows under the input; Escape gives up.
        wired(page, "#cf-attr_seats .cf-value")
        panel.locator("#cf-attr_seats .cf-value").click()
        # Focused once htmx has swapped the form in and wired it: Enter then submits through htmx.
        expect(panel.locator("#cf-input-attr_seats")).to_be_focused()
        panel.locator("#cf-input-attr_seats").fill("a dozen")
        panel.locator("#cf-input-attr_seats").press("Enter")
        expect(panel.locator("#cf-attr_seats .error")).to_have_text("Seats must be a number.")
        expect(panel.locator("#cf-input-attr_seats")).to_have_attribute("aria-invalid", "true")
        wired(page, "#cf-attr_seats [data-cancel]")
        panel.locator("#cf-input-attr_seats").press("Escape")
        expect(panel.locator("#cf-attr_seats .cf-value")).to_be_focused()
        expect(panel.locator("#cf-attr_seats .error")).to_have_count(0)

        # A new tag and a note.
        wired(page, "#cp-tags form")
        panel.locator("#cp-tag-input").fill("Callback")
        panel.locator("#cp-tag-input").press("Enter")
        expect(panel.locator("#cp-tags .tag")).to_have_text(["Callback"])
        expect(panel.locator("#cp-tag-input")).to_be_focused()
        wired(page, "#cp-notes form")
        panel.locator("#cp-note-body").fill("Prefers a call after 5 pm.")
        panel.get_by_role("button", name="Add note").click()
        expect(panel.locator(".cp-notes li").first).to_contain_text("Prefers a call after 5 pm.")
        expect(panel.locator("#cp-status")).to_have_text("Note added.")

        with live.orm():
            contact = Contact.objects.prefetch_related("tags").get(pk=conversation.contact_id)
            assert contact.name == "Priya Raman" and "seats" not in contact.attributes
            assert [t.name for t in contact.tags.all()] == ["Callback"]
            assert list(Note.objects.filter(contact=contact).values_list("body", flat=True)) == [
                "Prefers a call after 5 pm."
            ]

        # At 375 px the panel is an overlay: opened from the thread head, closed from itself.
        page.set_viewport_size({"width": 375, "height": 740})
        expect(panel).to_be_hidden()
        page.locator("#thread-head [data-toggle-contact]").click()
        expect(panel).to_be_visible()
        expect(panel).to_be_focused()
        assert page.evaluate("document.documentElement.scrollWidth") <= 375
        screenshot(page, "contact-panel", tmp_path)
        panel.get_by_role("button", name="Close").click()
        expect(panel).to_be_hidden()
        expect(page.locator("#thread-head [data-toggle-contact]")).to_have_attribute("aria-expanded", "false")
    finally:
        colleague.close()
