"""The bell in Debian's chromium against the live server (see conftest): a notification arrives live, the
count shows, the dropdown lists it as text, "mark all read" clears the count, and a hidden tab gets a
desktop notification once permission was given by a click."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from playwright.sync_api import expect

from conversations.tests.browser.conftest import OWNER, Live, screenshot, sign_in
from crm.models import Notification
from crm.services.notifications import notify
from tenants.db import connection

pytestmark = pytest.mark.browser

HOSTILE = '<img src=x onerror="window.__pwned=1">Grace'

# The page thinks it is hidden, and the browser's Notification is a recorder (headless chromium shows
# none); permission starts as "default" and turns "granted" only through requestPermission().
FAKE_NOTIFICATIONS = """
window.__shown = [];
window.__asked = 0;
class FakeNotification {
  constructor(title, options) { window.__shown.push({ title, body: (options || {}).body }); }
  close() {}
}
FakeNotification.permission = "default";
FakeNotification.requestPermission = async () => {
  window.__asked += 1;
  FakeNotification.permission = "granted";
  return "granted";
};
window.Notification = FakeNotification;
Object.defineProperty(document, "hidden", { get: () => true });
"""


def test_the_live_stack_uses_the_test_database(db):
    assert connection.settings_dict["NAME"].startswith("test_")


def test_a_notification_arrives_live_and_is_read_from_the_bell(page, live: Live, tmp_path: Path):
    page.add_init_script(FAKE_NOTIFICATIONS)
    sign_in(page, next_url="/notifications/")
    bell = page.locator("[data-notifications]")
    count = bell.locator("[data-bell-count]")
    expect(count).to_be_hidden()
    # Nothing is asked until the person clicks.
    assert page.evaluate("window.__asked") == 0
    page.locator("main [data-desktop-permission]").click()
    expect(page.locator("main [data-desktop-permission]")).to_be_hidden()
    assert page.evaluate("window.__asked") == 1
    page.wait_for_timeout(500)  # the socket is open

    with live.orm():
        owner = get_user_model().objects.get(email=OWNER)
        notify(recipients=[owner], kind="mention", title=f"{HOSTILE} mentioned you", url="/inbox/")
    expect(count).to_have_text("1")
    page.wait_for_function("window.__shown.length === 1")
    assert page.evaluate("window.__shown[0].title") == f"{HOSTILE} mentioned you"

    bell.locator("summary").click()
    item = bell.locator(".bell-list li.unread")
    expect(item).to_contain_text(f"{HOSTILE} mentioned you")
    screenshot(page, "notification-bell", tmp_path)
    bell.get_by_role("button", name="Mark all read").click()
    expect(count).to_be_hidden()
    expect(bell.locator(".bell-list li.unread")).to_have_count(0)
    assert page.evaluate("window.__pwned") is None
    with live.orm():
        assert not Notification.objects.filter(user__email=OWNER, read_at__isnull=True).exists()
        Notification.objects.all().delete()
