"""The live stack of the inbox's browser tests (uvicorn, a real Dramatiq worker thread, the Graph API
sandbox, chromium), reused for the AI agent."""

from conversations.tests.browser.conftest import (  # noqa: F401 - fixtures, re-exported
    _empty_broker,
    _patient_expectations,
    browser,
    live,
    live_stack,
    page,
)
