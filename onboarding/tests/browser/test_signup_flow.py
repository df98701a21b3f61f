"""Sign up in a real browser: the form with its live subdomain check → the e-mailed link (read from the
test outbox: the server runs in this process) → confirm → signed in on the new workspace's own host →
the first-run checklist.

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
from django.db import connections

from conftest import PASSWORD, wait_until
from onboarding.tests.helpers import token_from
from tenants.db import connection

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
SLUG = "signupflow"
EMAIL = "founder@signupflow.test"
WAIT_MS = 30_000
# This suite's live-server port range (8130-8139); a free one is picked.
PORTS = range(8130, 8140)


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


def test_sign_up_verify_and_land_signed_in_with_the_checklist(live: int, browser: Any, settings: Any) -> None:
    from playwright.sync_api import expect

    expect.set_options(timeout=WAIT_MS)
    settings.SITE_PORT = str(live)  # the e-mailed and redirect links point at this server
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

        # The session is the workspace's own: the public host knows nobody.
        page.goto(f"http://localhost:{live}/admin/")
        expect(page).to_have_url(f"http://localhost:{live}/admin/login/?next=/admin/")

        page.goto(f"http://{SLUG}.localhost:{live}/inbox/")
        checklist.get_by_role("button", name="Dismiss").click()
        expect(checklist).to_have_count(0)
        page.reload()
        expect(page.locator("#first-run-checklist")).to_have_count(0)
    finally:
        page.close()
