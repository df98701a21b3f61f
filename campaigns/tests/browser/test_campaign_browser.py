"""A campaign in Debian's chromium against the live stack: started from its page, the progress bar and
counts fill over the WebSocket as the worker sends and the sandbox's status webhooks come back, a
customer's STOP opts them out, and the recipients export."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from conftest import wait_until
from conversations.tests.browser.conftest import Live, screenshot, sign_in
from tenants.db import connection

pytestmark = pytest.mark.browser
COUNT = 8


def test_the_live_stack_uses_the_test_database(db):
    """Run first: makes pytest-django set the test database up when only this module runs."""
    assert connection.settings_dict["NAME"].startswith("test_")


def test_a_campaign_s_progress_fills_live_and_a_stop_reply_opts_out(page, live: Live, tmp_path):
    from campaigns import services
    from campaigns.models import Campaign
    from crm.models import Contact, Tag
    from whatsapp.models import MessageTemplate

    with live.orm():
        MessageTemplate.objects.create(
            waba_id=live.channel.waba_id,
            name="browser_promo",
            language="en",
            status="APPROVED",
            category="MARKETING",
            components=[{"type": "BODY", "text": "Hi {{1}}, spring sale!"}],
        )
        tag = Tag.objects.create(name="browser-vip")
        for n in range(COUNT):
            contact = Contact.objects.create(
                phone=f"+4915300000{n:03d}",
                wa_id=f"4915300000{n:03d}",
                name=f"Buyer {n}",
                marketing_consent="opted_in",
            )
            contact.tags.add(tag)
        campaign = services.create_campaign(
            name="<i>Spring</i>",
            channel=live.channel,
            template="browser_promo",
            language="en",
            audience={"tags": ["browser-vip"]},
            parameters={"body": ["{{contact.first_name}}"]},
        )
    sign_in(page, next_url=f"/campaigns/{campaign.pk}/")
    expect(page.locator("h1")).to_have_text("<i>Spring</i>")
    page.click("button:has-text('Start')")
    expect(page.locator("[data-count=status]")).to_have_text("Running")

    def settled() -> bool:
        # The scheduler's tick: recipients follow their messages' statuses.
        with live.orm():
            services.run_due_campaigns()
            return Campaign.objects.get(pk=campaign.pk).status == "completed"

    wait_until(settled, what="the campaign to complete", timeout=60)
    expect(page.locator("[data-count=status]")).to_have_text("Completed")
    expect(page.locator("[data-progress]")).to_have_attribute("value", "100")
    with live.orm():
        services.run_due_campaigns()
    expect(page.locator("[data-count=total]")).to_have_text(str(COUNT))
    screenshot(page, "campaign-progress", tmp_path)

    live.inbound("4915300000003", "STOP", name="Buyer 3")

    def opted_out() -> bool:
        with live.orm():
            return Contact.objects.get(wa_id="4915300000003").marketing_consent == "opted_out"

    wait_until(opted_out, what="STOP to opt the contact out", timeout=30)
    with live.orm():
        services.run_due_campaigns()
    page.reload()
    expect(page.locator("[data-count=replied]")).to_have_text("1")
    with page.expect_download() as download:
        page.click("text=Export recipients (CSV)")
    assert download.value.suggested_filename == f"campaign-{campaign.pk}-recipients.csv"
