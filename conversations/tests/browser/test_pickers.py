"""The searchable pickers in Debian's chromium against the live stack (see conftest): on the new-deal form a
contact is found by part of its name and picked with the keyboard, its company fills in, and the saved
deal has both."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from conversations.tests.browser.conftest import Live, sign_in
from crm.models import Company, Contact, Deal
from tenants.db import connection

pytestmark = pytest.mark.browser


def test_the_pickers_live_stack_uses_the_test_database(db):
    """Run first: makes pytest-django set the test database up when only this module runs."""
    assert connection.settings_dict["NAME"].startswith("test_")


def test_a_contact_picked_on_the_new_deal_form_brings_its_company_and_both_are_saved(page, live: Live):
    with live.orm():
        company = Company.objects.create(name="Zephyr Looms", domain="zephyr-looms.example")
        contact = Contact.objects.create(phone="+4915700000123", name="Philippa Quimby", company=company)
        Contact.objects.create(phone="+4915700000124", name="Quentin Other")

    sign_in(page, next_url="/deals/new/")
    page.fill("#id_title", "Loom order")
    page.locator("#id_contact").press_sequentially("Quimb", delay=30)
    option = page.locator("#id_contact-options [role=option]", has_text="Philippa Quimby")
    expect(option).to_be_visible()
    expect(page.locator("#id_contact-options [role=option]")).to_have_count(1)
    expect(page.locator("#id_contact")).to_have_attribute("aria-expanded", "true")

    page.locator("#id_contact").press("ArrowDown")
    expect(option).to_have_attribute("aria-selected", "true")
    page.locator("#id_contact").press("Enter")  # picks; does not submit the form

    expect(page.locator("#id_contact")).to_have_value("Philippa Quimby")
    expect(page.locator("#id_contact-options")).to_be_hidden()
    expect(page.locator('input[type=hidden][name="contact"]')).to_have_value(str(contact.pk))
    expect(page.locator("#id_company")).to_have_value("Zephyr Looms")
    expect(page.locator('input[type=hidden][name="company"]')).to_have_value(str(company.pk))
    assert page.url.endswith("/deals/new/")

    page.get_by_role("button", name="Save").click()
    page.wait_for_url(re.compile(r"/deals/\d+/$"))
    with live.orm():
        deal = Deal.objects.get(title="Loom order")
        assert (deal.contact_id, deal.company_id) == (contact.pk, company.pk)
    expect(page.locator("main")).to_contain_text("Philippa Quimby")


def test_a_company_is_picked_with_the_mouse_and_a_hostile_name_stays_text(page, live: Live):
    with live.orm():
        Company.objects.create(name="<img src=x onerror=alert(1)> Hostile Ltd")
        wanted = Company.objects.create(name="Hostile Harbour Co")

    sign_in(page, next_url="/deals/new/")
    page.locator("#id_company").press_sequentially("Hostile", delay=30)
    options = page.locator("#id_company-options [role=option]")
    expect(options).to_have_count(2)
    expect(options.first).to_contain_text("<img src=x onerror=alert(1)> Hostile Ltd")
    assert page.locator("#id_company-options img").count() == 0
    options.filter(has_text="Hostile Harbour Co").click()
    expect(page.locator('input[type=hidden][name="company"]')).to_have_value(str(wanted.pk))
