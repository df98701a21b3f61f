"""Sign up in a real browser: the form with its live subdomain check → the e-mailed link (read from the
test outbox: the server runs in this process) → confirm → signed in on the new workspace's own host →
the first-run checklist → connect a number by hand on Settings → WhatsApp numbers against the Graph API
sandbox (its test event reaches the webhook) → the checklist ticks → a customer's message arrives
(manage.py simulate_inbound) → the reply reaches the sandbox. Jobs run in this thread (run_jobs).

The server (uvicorn in a thread) must see committed rows: the workspace the test creates is dropped at
the end, with its signup rows, also when the test fails.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from django.core import mail
from django.core.management import call_command
from django.db import connections
from django_tenants.utils import schema_context

from conftest import PASSWORD, wait_until
from onboarding.tests.helpers import token_from
from tenants.db import connection
from whatsapp.testing import _sandbox_server, run_jobs, sandbox  # noqa: F401 - fixtures

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
SLUG = "signupflow"
EMAIL = "founder@signupflow.test"
WAIT_MS = 30_000
# This suite's live-server port range (8130-8139); a free one is picked.
PORTS = range(8130, 8140)
# The business number the new owner connects (the sandbox knows it as the account's, for this token).
PNID, WABA, TOKEN = "506540352242922", "502290129340398", "token-signupflow"
CUSTOMER = "+15551230987"


class _Server(uvicorn.Server):
    def install_signal_handlers(self) -> None:
        return


def _forget_signup() -> None:
    from onboarding.models import LoginToken, Signup
    from tenants.models import Tenant

    connection.set_schema_to_public()
    tenant = Tenant.objects.filter(slug=SLUG).first()
    if tenant is not None:
        LoginToken.objects.filter(tenant=tenant).delete()
        tenant.delete(force_drop=True)
    Signup.objects.filter(email=EMAIL).delete()


def _bind() -> socket.socket:
    for port in PORTS:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            sock.close()
            continue
        return sock
    pytest.skip("no free port in 8130-8139")


@pytest.fixture(scope="module")
def live(django_db_setup: Any, django_db_blocker: Any) -> Iterator[int]:
    db_settings = connections["default"].settings_dict
    assert db_settings["NAME"].startswith("test_"), "the test database was not set up"
    saved = db_settings["CONN_MAX_AGE"]
    with django_db_blocker.unblock():
        db_settings["CONN_MAX_AGE"] = 0
        _forget_signup()  # left over by a run that was killed
        sock = _bind()
        port = sock.getsockname()[1]
        from config.asgi import application

        server = _Server(uvicorn.Config(application, lifespan="off", log_level="warning"))
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True, name="live")
        thread.start()
        try:
            wait_until(lambda: server.started, timeout=20, what="uvicorn to start")
            yield port
        finally:
            server.should_exit = True
            thread.join(timeout=15)
            from config.asgi import webhook_ingress

            webhook_ingress.close()  # its thread's kept connection (the webhooks this test posts)
            sock.close()
            _forget_signup()
            db_settings["CONN_MAX_AGE"] = saved


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (.ci/run installs it)")
    from playwright.sync_api import sync_playwright

    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "1"
    with sync_playwright() as p:
        chromium = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-background-networking",
                "--disable-gpu",
                "--no-first-run",
                "--host-resolver-rules=MAP *.localhost 127.0.0.1",
            ],
        )
        try:
            yield chromium
        finally:
            chromium.close()
            if previous is None:
                os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
            else:
                os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


def test_the_browser_suite_runs_on_the_test_database(db: None) -> None:
    """Also what makes pytest-django set the test database up when only this module runs."""
    assert connection.settings_dict["NAME"].startswith("test_")


def test_sign_up_connect_a_number_and_answer_the_first_customer(
    live: int,
    browser: Any,
    settings: Any,
    sandbox: Any,  # noqa: F811 - the fixture imported above
) -> None:
    from playwright.sync_api import expect

    expect.set_options(timeout=WAIT_MS)
    settings.SITE_PORT = str(live)  # the e-mailed and redirect links point at this server
    sandbox.add_number(PNID, waba_id=WABA, tokens=[TOKEN], display_phone="+1 555-010-0987")
    sandbox.configure(webhook_url=f"http://127.0.0.1:{live}/webhooks/whatsapp/", auto_statuses=False)
    page = browser.new_page()
    page.set_default_timeout(WAIT_MS)
    try:
        page.goto(f"http://localhost:{live}/")
        page.get_by_role("link", name="Sign up").click()
        page.get_by_label("Business name").fill("Signup Flow & Co")
        page.get_by_label("Subdomain").press_sequentially("www")
        expect(page.locator("#slug-status")).to_contain_text("reserved")
        page.get_by_label("Subdomain").fill("")
        page.get_by_label("Subdomain").press_sequentially(SLUG)
        expect(page.locator("#slug-status")).to_contain_text(f"{SLUG}.localhost is available")
        page.get_by_label("Your name").fill("Fran Founder")
        page.get_by_label("Email").fill(EMAIL)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign up").click()
        expect(page.get_by_role("heading", name="Check your e-mail")).to_be_visible()

        message = wait_until(lambda: next((m for m in mail.outbox if EMAIL in m.to), None), what="the e-mail")
        page.goto(f"http://localhost:{live}/signup/verify/{token_from(message)}/")
        expect(page.get_by_text("Signup Flow & Co")).to_be_visible()
        page.get_by_role("button", name="Confirm and continue").click()

        expect(page).to_have_url(f"http://{SLUG}.localhost:{live}/inbox/")
        checklist = page.locator("#first-run-checklist")
        expect(checklist).to_be_visible()
        expect(checklist).to_contain_text("0 of 4 done")
        expect(checklist.get_by_role("link", name="Connect WhatsApp")).to_be_visible()
        expect(checklist.get_by_role("link", name="Invite your team")).to_have_attribute(
            "href", "/settings/team/"
        )
        expect(page.locator(".account .who")).to_have_text("Fran Founder")

        _connect_a_number_and_answer_a_customer(page, live, sandbox)

        # The session is the workspace's own: the public host knows nobody.
        page.goto(f"http://localhost:{live}/admin/")
        expect(page).to_have_url(f"http://localhost:{live}/admin/login/?next=/admin/")

        page.goto(f"http://{SLUG}.localhost:{live}/inbox/")
        checklist = page.locator("#first-run-checklist")
        checklist.get_by_role("button", name="Dismiss").click()
        expect(checklist).to_have_count(0)
        page.reload()
        expect(page.locator("#first-run-checklist")).to_have_count(0)
    finally:
        page.close()


def _connect_a_number_and_answer_a_customer(page: Any, live: int, graph: Any) -> None:
    from playwright.sync_api import expect

    from conversations.models import Conversation, Message

    checklist = page.locator("#first-run-checklist")
    checklist.get_by_role("link", name="Connect WhatsApp").click()
    expect(page).to_have_url(f"http://{SLUG}.localhost:{live}/settings/whatsapp/")
    expect(page.locator("#embedded-signup-off")).to_be_visible()  # no META_APP_ID in tests
    page.get_by_label("Phone number ID").fill(PNID)
    page.get_by_label("WhatsApp Business Account ID").fill(WABA)
    page.get_by_label("Access token").fill("not-the-token")
    page.get_by_role("button", name="Verify and connect").click()
    expect(page.locator(".field.has-error")).to_contain_text("[number_not_verified]")
    page.get_by_label("Access token").fill(TOKEN)
    page.get_by_label("Display name (optional)").fill("Front desk")
    page.get_by_role("button", name="Verify and connect").click()
    expect(page.locator(".flash")).to_contain_text("Connected +1 555-010-0987")
    row = page.locator(f"tr:has-text('{PNID}')")
    expect(row).to_contain_text("active")
    expect(page.locator("#webhook-url")).to_have_text(f"http://localhost:{live}/webhooks/whatsapp/")

    # The sandbox posts a signed test webhook to this server; the page sees it stored.
    row.get_by_role("button", name="Send test event").click()
    expect(page.locator(".flash")).to_contain_text("The test event arrived")

    page.goto(f"http://{SLUG}.localhost:{live}/inbox/")
    expect(checklist).to_contain_text("1 of 4 done")
    expect(checklist.locator('[data-step="whatsapp"]')).to_have_attribute("data-done", "true")

    call_command(
        "simulate_inbound",
        tenant=SLUG,
        sender=CUSTOMER,
        name="Casey Customer",
        text="Hello, are you open today?",
        url=f"http://127.0.0.1:{live}/webhooks/whatsapp/",
    )
    run_jobs()
    with _tenant_schema():
        conversation = Conversation.objects.get(contact__name="Casey Customer")
    page.goto(f"http://{SLUG}.localhost:{live}/inbox/?tab=all")
    page.locator(f"#conv-{conversation.pk}").click()
    expect(page.locator("#messages")).to_contain_text("Hello, are you open today?")
    page.fill("#composer-text", "Yes, until six tonight!")
    page.press("#composer-text", "Enter")

    def reply_queued() -> bool:
        with _tenant_schema():
            return Message.objects.filter(conversation=conversation, direction="out").exists()

    wait_until(reply_queued, what="the reply to be stored")

    def reply_sent() -> bool:
        run_jobs()
        bodies = [sent["body"].get("text", {}).get("body") for sent in graph.sent(PNID)]
        return "Yes, until six tonight!" in bodies

    wait_until(reply_sent, what="the reply to reach the sandbox")


def _tenant_schema() -> Any:
    from tenants.models import Tenant

    connection.set_schema_to_public()
    return schema_context(Tenant.objects.get(slug=SLUG).schema_name)
