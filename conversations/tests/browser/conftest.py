"""A live stack for browser tests: uvicorn serving the ASGI app (HTTP + WebSockets) in a thread, a real
Dramatiq worker thread on the stub broker, the Graph API sandbox posting its signed status webhooks back
to the server, and Debian's chromium driven by Playwright.

Everything runs in this process against the test database, so the rows the server must see are
committed: the module gets its own tenant (schema), dropped at the end with everything in it. Every
thread and the browser are stopped in the fixtures' teardown, also when a test fails.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dramatiq
import httpx
import pytest
import uvicorn
from django.conf import settings
from django.db import connections
from django_tenants.utils import schema_context

from conftest import PASSWORD, wait_until
from tenants.db import connection
from tenants.jobs import broker
from whatsapp import payloads
from whatsapp.sandbox import Sandbox

CHROMIUM = "/usr/bin/chromium"
SLUG = "browserco"
PNID = "306540352242922"
WABA = "302290129340398"
OWNER = f"owner@{SLUG}.test"
# Generous bounds: the machine is shared; a test waits at most this long for one thing to show.
WAIT_MS = 30_000  # generous: CI machines are slow under load; waits are bounds, not assertions


@pytest.fixture(autouse=True, scope="session")
def _patient_expectations() -> None:
    """`expect` keeps its own 5 s default whatever the page's timeout: give it the same bound."""
    from playwright.sync_api import expect

    expect.set_options(timeout=WAIT_MS)


# Set to a directory (e.g. docs/screenshots) to keep the screenshots the tests take.
SCREENSHOTS_DIR = os.environ.get("INBOX_SCREENSHOTS_DIR", "")


@dataclass
class Live:
    url: str  # the tenant's host, as a browser reaches it
    base: str  # 127.0.0.1, for Python clients (the webhook lives on the public host)
    tenant: Any
    channel: Any
    sandbox: Sandbox

    def post_webhook(self, body: dict[str, Any]) -> None:
        raw = payloads.encode(body)
        response = httpx.post(
            f"{self.base}/webhooks/whatsapp/",
            content=raw,
            headers={
                "Content-Type": "application/json",
                "X-Hub-Signature-256": payloads.sign(raw, settings.WHATSAPP_APP_SECRET),
            },
            timeout=10,
        )
        assert response.status_code == 200, response.text

    def inbound(self, wa_id: str, text: str, name: str = "") -> None:
        self.post_webhook(payloads.text_event(phone_number_id=PNID, wa_id=wa_id, text=text, name=name))

    def orm(self) -> Any:
        return schema_context(self.tenant.schema_name)


class _Server(uvicorn.Server):
    def install_signal_handlers(self) -> None:  # older uvicorn: never from a thread
        return


def _drop_tenant(slug: str) -> None:
    from tenants.models import Tenant

    tenant = Tenant.objects.filter(slug=slug).first()
    if tenant is not None:
        tenant.delete(force_drop=True)


@pytest.fixture(scope="module")
def live_stack(django_db_setup: Any, django_db_blocker: Any, _sandbox_server: Sandbox) -> Iterator[Live]:
    from onboarding.services import onboard_tenant
    from tenants.models import WebhookEvent
    from whatsapp.services import connect_channel

    sandbox = _sandbox_server
    db_settings = connections["default"].settings_dict
    saved = (settings.WHATSAPP_GRAPH_URL, db_settings["CONN_MAX_AGE"])
    # pytest-django creates the test database only when a test of the run uses `db`: test_inbox.py's first
    # test does. Never write to another database.
    assert db_settings["NAME"].startswith("test_"), "the test database was not set up"
    with django_db_blocker.unblock():
        connection.set_schema_to_public()
        # Connections of the server's and the worker's threads close after each request and job, so none
        # is left open on the test database when the session drops it.
        db_settings["CONN_MAX_AGE"] = 0
        settings.WHATSAPP_GRAPH_URL = sandbox.url
        first_event = WebhookEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0
        _drop_tenant(SLUG)  # left over by a run that was killed
        tenant = onboard_tenant(
            slug=SLUG, name="Browser Co", owner_email=OWNER, owner_password=PASSWORD
        ).tenant
        sandbox.add_number(PNID, waba_id=WABA, tokens=["token-browser"])  # Meta confirms it is theirs
        channel = connect_channel(
            tenant=tenant, phone_number_id=PNID, waba_id=WABA, access_token="token-browser"
        )
        connection.set_schema_to_public()

        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        from config.asgi import application

        server = _Server(
            uvicorn.Config(application, lifespan="off", log_level="warning", ws="websockets-sansio")
        )
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True, name="live")
        thread.start()
        worker = dramatiq.Worker(broker, worker_threads=2, worker_timeout=100)
        try:
            wait_until(lambda: server.started, timeout=20, what="uvicorn to start")
            worker.start()
            base = f"http://127.0.0.1:{port}"
            sandbox.reset()
            # A pause between sent, delivered and read, so the browser shows each tick in turn.
            sandbox.configure(webhook_url=f"{base}/webhooks/whatsapp/", auto_statuses=True, status_delay=0.3)
            yield Live(
                url=f"http://{SLUG}.localhost:{port}",
                base=base,
                tenant=tenant,
                channel=channel,
                sandbox=sandbox,
            )
        finally:
            sandbox.configure(webhook_url=None, status_delay=0.0)
            server.should_exit = True
            thread.join(timeout=15)
            from config.asgi import webhook_ingress

            webhook_ingress.close()
            worker.stop()
            broker.flush_all()
            sandbox.reset()
            sock.close()
            connection.set_schema_to_public()
            _drop_tenant(SLUG)
            WebhookEvent.objects.filter(pk__gt=first_event).delete()
            settings.WHATSAPP_GRAPH_URL, db_settings["CONN_MAX_AGE"] = saved


@pytest.fixture(autouse=True)
def _empty_broker() -> Iterator[None]:
    """The live worker owns the broker here: no flushing between tests (the parent's fixture would)."""
    yield


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        # `make test` installs it when run as root with apt-get; CI must run these tests, never skip them.
        (pytest.fail if os.environ.get("CI") else pytest.skip)(
            f"Debian's chromium is not at {CHROMIUM} (`make test` installs it as root; or apt-get install it)"
        )
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop in this thread; the test's own ORM calls are still
    # synchronous (nothing runs concurrently on this connection), which Django's guard cannot tell.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "1"
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-background-networking",
                "--disable-gpu",
                "--disable-component-update",
                "--no-first-run",
                # *.localhost is loopback for Chromium already; this makes it explicit.
                "--host-resolver-rules=MAP *.localhost 127.0.0.1",
            ],
        )
        try:
            yield browser
        finally:
            browser.close()
            if previous is None:
                os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
            else:
                os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def page(browser: Any, live_stack: Live) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1366, "height": 820}, base_url=live_stack.url)
    context.set_default_timeout(WAIT_MS)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.js_errors = errors
    try:
        yield page
    finally:
        context.close()
    assert not errors, f"JavaScript errors: {errors}"


def sign_in(page: Any, email: str = OWNER, next_url: str = "/inbox/") -> None:
    page.goto(f"/login/?next={next_url}")
    page.fill("#id_username", email)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"**{next_url.split('?')[0]}*")


def screenshot(page: Any, name: str, tmp_path: Path) -> Path:
    target = Path(SCREENSHOTS_DIR) if SCREENSHOTS_DIR else tmp_path
    target.mkdir(parents=True, exist_ok=True)
    path = target / f"{name}.png"
    page.screenshot(path=str(path))
    return path


@pytest.fixture
def live(live_stack: Live) -> Live:
    return live_stack
