"""The inbox's live stack (uvicorn, a Dramatiq worker, the Graph API sandbox, chromium: see
conversations/tests/browser/conftest.py) plus the WAHA sandbox posting its signed webhooks to it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings

from conversations.tests.browser.conftest import (  # noqa: F401 - the live stack's fixtures, re-exported
    Live,
    _empty_broker,
    _patient_expectations,
    browser,
    live,
    live_stack,
    page,
)
from waha.sandbox import DEFAULT_API_KEY, Sandbox
from whatsapp.testing import _sandbox_server  # noqa: F401 - the Graph API sandbox the live stack uses


@pytest.fixture(scope="module")
def waha_live(live_stack: Live) -> Iterator[Sandbox]:  # noqa: F811 - the fixture, as a parameter
    """The WAHA sandbox as `make run` runs it (webhooks really posted, acks a moment apart, the QR code
    after a short start), the platform's WAHA server, telling sessions our live server's webhook URL."""
    sandbox = Sandbox(deliver=True, ack_delay=0.3, start_delay=0.2, announce_qr_rotation=True).start()
    names = ("WAHA_URL", "WAHA_API_KEY", "WAHA_WEBHOOK_BASE_URL")
    saved: dict[str, Any] = {name: getattr(settings, name) for name in names}
    settings.WAHA_URL = sandbox.base
    settings.WAHA_API_KEY = DEFAULT_API_KEY
    settings.WAHA_WEBHOOK_BASE_URL = live_stack.base
    try:
        yield sandbox
    finally:
        for name, value in saved.items():
            setattr(settings, name, value)
        sandbox.stop()
