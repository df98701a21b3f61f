"""Rough edges a new user hits, in Debian's chromium against the live stack (see conftest): no debug
banners on a thread opened directly, pages that fit a phone, icons that are drawings rather than emoji."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import expect

from conversations.tests.browser.conftest import WAIT_MS, Live, screenshot, sign_in
from conversations.tests.browser.test_inbox import make_conversation
from crm.models import Company, Contact, Note

pytestmark = pytest.mark.browser

PHONE = {"width": 375, "height": 740}
# Emoji and pictographs that used to stand in for icons (📎 📄 🖼 🎤 🎬 📍 👤 📣 🛒 🕓 ⚠ ☐ ☑).
EMOJI = re.compile("[\U0001f300-\U0001faff\u2600-\u27bf\u2b00-\u2bff]")


def test_the_rough_edges_live_stack_uses_the_test_database(db):
    """pytest-django sets the test database up only for a run with a test that uses `db`: when this
    module runs alone, this is that test."""
    from tenants.db import connection

    assert connection.settings_dict["NAME"].startswith("test_")


def test_a_thread_opened_directly_shows_its_messages_and_no_flash_banner(page, live: Live):
    conversation = make_conversation(live, name="Direct Link", text="Is my order on its way?")
    sign_in(page, next_url=f"/inbox/c/{conversation.pk}/")
    expect(page.locator("#messages .msg", has_text="Is my order on its way?")).to_be_visible()
    assert page.locator(".flash").count() == 0
    assert "in text" not in page.locator("body").inner_text()


def _phone_page(browser: Any, live: Live) -> Any:
    context = browser.new_context(viewport=PHONE, base_url=live.url)
    context.set_default_timeout(WAIT_MS)
    return context, context.new_page()


def _fits(page: Any) -> int:
    return int(page.evaluate("document.documentElement.scrollWidth"))


def test_the_crm_pages_fit_a_375_px_screen_and_the_menu_opens(browser, live: Live, tmp_path):
    conversation = make_conversation(live, name="Phone Thread", text="Do you deliver on Sundays?")
    with live.orm():
        company = Company.objects.create(
            name="Northwind Traders International Holdings", domain="northwind-traders-international.example"
        )
        contact = Contact.objects.create(
            phone="+4915700000099",
            name="Maximiliane Rosalind Featherstonehaugh",
            email="maximiliane.featherstonehaugh@northwind-traders-international.example",
            company=company,
        )
        Note.objects.create(contact=contact, body="Called about the invoice; wants a callback tomorrow.")
        contact_pk = contact.pk
    context, page = _phone_page(browser, live)
    try:
        sign_in(page, next_url="/contacts/")
        for path in [
            "/contacts/",
            "/companies/",
            "/deals/",
            "/settings/",
            "/settings/team/",
            f"/contacts/{contact_pk}/",
        ]:
            page.goto(path)
            width = _fits(page)
            assert width <= PHONE["width"], f"{path} is {width} px wide"
        screenshot(page, "contact-375", tmp_path)

        # The navigation is one menu button; it opens over the page and leads on.
        links = page.locator(".navmenu-links")
        expect(links).to_be_hidden()
        page.locator(".navmenu > summary").click()
        expect(links.get_by_role("link", name="Deals")).to_be_visible()
        screenshot(page, "menu-375", tmp_path)
        links.get_by_role("link", name="Companies").click()
        page.wait_for_url("**/companies/")
        assert _fits(page) <= PHONE["width"]

        # The inbox on a phone: the list, then a thread whose toolbar wraps instead of scrolling away.
        page.goto("/inbox/?tab=all")
        expect(page.locator(f"#conv-{conversation.pk}")).to_be_visible()
        screenshot(page, "inbox-375", tmp_path)
        page.goto(f"/inbox/c/{conversation.pk}/")
        toolbar = page.locator("#thread-head .actions")
        expect(toolbar).to_be_visible()
        assert toolbar.evaluate("(el) => getComputedStyle(el).flexWrap") == "wrap"
        assert toolbar.evaluate("(el) => el.scrollWidth <= el.clientWidth")
        assert _fits(page) <= PHONE["width"]
        screenshot(page, "thread-375", tmp_path)
    finally:
        context.close()


def test_icons_are_svg_drawings_and_no_emoji_stand_in_for_them(page, live: Live):
    conversation = make_conversation(live, name="Icon Check", text="Hello there")
    sign_in(page, next_url=f"/inbox/c/{conversation.pk}/")
    expect(page.locator("#composer")).to_be_visible()
    for region in [".topbar", "#composer", "#thread-head"]:
        text = page.locator(region).inner_text()
        assert not EMOJI.search(text), f"{region} shows an emoji: {text!r}"
    attach = page.locator("#composer .attach svg.icon use")
    assert attach.count() == 1
    assert attach.get_attribute("href").endswith("/icons/sprite.svg#attach")
    # The sprite loads, and the symbol draws something.
    box = page.locator("#composer .attach svg.icon").bounding_box()
    assert box is not None and box["width"] > 0
    sprite = page.evaluate(
        "async (url) => (await fetch(url)).text()", attach.get_attribute("href").split("#")[0]
    )
    assert '<symbol id="attach"' in sprite
