"""The AI agent in Debian's chromium against the live stack (see conversations/tests/browser/conftest.py):
a customer's question answered through the real worker, the sources under the answer, the copilot filling
the composer, and a handoff the agent sees."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from conftest import wait_until
from conversations.models import Conversation
from conversations.tests.browser.conftest import Live, screenshot, sign_in
from knowledge.llm_sandbox import DEFAULT_KEY
from knowledge.models import AIHandoff, AIReply
from knowledge.tests.ai_fixtures import SHIPPING
from tenants.db import connection

pytestmark = pytest.mark.browser
WA_ID = "4915200000099"


def test_the_live_stack_uses_the_test_database(db):
    """Run first: makes pytest-django set the test database up when only this module runs."""
    assert connection.settings_dict["NAME"].startswith("test_")


def test_the_agent_answers_through_the_worker_and_the_copilot_fills_the_composer(
    page, live: Live, tmp_path, _llm_server
):
    from knowledge.ai_settings import update_agent_settings
    from knowledge.services import create_text_source

    _llm_server.reset()
    with live.orm():
        create_text_source(title="Shipping and delivery", text=SHIPPING, language="en")
        update_agent_settings(
            changes={
                "enabled": True,
                "llm_enabled": True,
                "llm_base_url": _llm_server.url,
                "llm_model": "sandbox-chat",
                "llm_api_key": DEFAULT_KEY,
            }
        )
    live.inbound(WA_ID, "How much do you charge for express delivery?", name="Rita")

    def answered() -> Conversation | None:
        with live.orm():
            reply = AIReply.objects.select_related("conversation").filter(conversation__contact__wa_id=WA_ID)
            return reply.first().conversation if reply.exists() else None

    conversation = wait_until(answered, what="the AI's answer")
    sign_in(page, next_url=f"/inbox/c/{conversation.pk}/")
    with live.orm():
        reply = AIReply.objects.get(conversation=conversation)
    bubble = page.locator(f"#msg-{reply.message_id}")
    expect(bubble.locator(".ai-sources summary")).to_contain_text("AI answer · 1 source")
    expect(page.locator(".msg.out").last).to_contain_text("9.90")

    page.fill("#composer-text", "Thanks for waiting. Your parcel left today. It arrives soon.")
    page.click('[data-copilot="rewrite"][data-style="shorter"]')
    expect(page.locator("#composer-text")).to_have_value("Thanks for waiting.")
    page.click('[data-copilot="suggest"]')
    expect(page.locator("#composer-text")).not_to_have_value("Thanks for waiting.")
    assert "9.90" in page.locator("#composer-text").input_value()
    screenshot(page, "ai-agent-thread", tmp_path)

    live.inbound(WA_ID, "I want to talk to a human")

    def handed_over() -> bool:
        with live.orm():
            return AIHandoff.objects.filter(conversation=conversation, reason="customer_request").exists()

    wait_until(handed_over, what="the handoff")
    page.reload()
    expect(page.locator(".system-line").last).to_contain_text("customer_request")
