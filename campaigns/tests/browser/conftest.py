"""The live stack of the inbox's browser tests (uvicorn, a real Dramatiq worker thread, the Graph API
sandbox posting status webhooks, chromium), reused for campaigns."""

from conversations.tests.browser.conftest import (  # noqa: F401 - fixtures, re-exported
    _empty_broker,
    _patient_expectations,
    browser,
    live,
    live_stack,
    page,
)
