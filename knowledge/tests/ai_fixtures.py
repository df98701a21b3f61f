"""Fixtures of the AI agent's tests (imported by its test modules): the LLM sandbox in a thread, a small
knowledge base per tenant, switching the agent on, and delivering a customer's text through the webhook."""

from __future__ import annotations

from collections.abc import Iterator
from queue import Empty
from typing import Any

import pytest
from django_tenants.utils import schema_context

from knowledge.llm_sandbox import DEFAULT_KEY, LLMSandbox
from whatsapp import payloads
from whatsapp.testing import PNID_A, post_webhook, run_jobs

CUSTOMER_WA = "15550009999"

# Written as a business would, not as the tests ask: the questions paraphrase it.
SHIPPING = """# Shipping
We deliver to every address in Spain and Portugal. Standard delivery takes two to four working days and
costs 4.95 euros; orders above 50 euros ship free of charge. Express delivery arrives the next working day
for 9.90 euros."""
RETURNS = """# Returns
You may send back any item within 30 days of receiving it. Refunds are paid to the original payment method
within five working days after the parcel reaches our warehouse."""
OPENING = """# Opening hours
Our shop in Lisbon opens Monday to Saturday from 9:00 to 19:00. On Sundays and public holidays it is
closed."""


@pytest.fixture(scope="session")
def _llm_server() -> Iterator[LLMSandbox]:
    server = LLMSandbox().start()
    yield server
    server.stop()


@pytest.fixture
def llm_sandbox(_llm_server: LLMSandbox) -> LLMSandbox:
    _llm_server.reset()
    return _llm_server


def add_knowledge(tenant: Any, *documents: tuple[str, str], language: str = "auto") -> None:
    from knowledge.services import create_text_source

    with schema_context(tenant.schema_name):
        for title, text in documents:
            source = create_text_source(title=title, text=text, language=language)
            assert source.status == "ready", (source.error_code, source.error)


@pytest.fixture
def knowledge_a(tenant_a: Any) -> None:
    add_knowledge(
        tenant_a, ("Shipping and delivery", SHIPPING), ("Returns policy", RETURNS), ("Opening hours", OPENING)
    )


def configure_agent(tenant: Any, **changes: Any) -> Any:
    from knowledge.ai_settings import update_agent_settings

    with schema_context(tenant.schema_name):
        return update_agent_settings(changes={"enabled": True, **changes})


def use_llm(tenant: Any, sandbox: LLMSandbox, **changes: Any) -> Any:
    return configure_agent(
        tenant,
        llm_enabled=True,
        llm_base_url=sandbox.url,
        llm_model="sandbox-chat",
        llm_api_key=DEFAULT_KEY,
        **changes,
    )


def run_jobs_but_ai(max_jobs: int = 100) -> list[str]:
    """Like whatsapp.testing.run_jobs, leaving the "ai" queue's jobs where they are."""
    import dramatiq
    from django.test import TestCase

    from tenants.jobs import broker

    ran: list[str] = []
    for _ in range(max_jobs):
        for name, queue in list(broker.queues.items()):
            if name in ("ai", "ai.DQ"):
                continue
            try:
                data = queue.get_nowait()
            except Empty:
                continue
            queue.task_done()
            message = dramatiq.Message.decode(data)
            with (
                TestCase.captureOnCommitCallbacks(execute=True),
                schema_context(message.options.get("tenant_schema") or "public"),
            ):
                broker.get_actor(message.actor_name).fn(*message.args, **message.kwargs)
            ran.append(message.actor_name)
            break
        else:
            return ran
    return ran


def customer_writes(client: Any, text: str, *, wa_id: str = CUSTOMER_WA, jobs: bool = True) -> None:
    """The customer's text arrives through the webhook and the inbound job runs; then (jobs) the AI's."""
    response = post_webhook(client, payloads.text_event(phone_number_id=PNID_A, wa_id=wa_id, text=text))
    assert response.status_code == 200, response.content
    run_jobs_but_ai()
    if jobs:
        run_jobs()


def thread(tenant: Any, wa_id: str = CUSTOMER_WA) -> tuple[Any, list[Any]]:
    from conversations.models import Conversation, Message

    with schema_context(tenant.schema_name):
        conversation = Conversation.objects.select_related("contact").get(contact__wa_id=wa_id)
        return conversation, list(
            Message.objects.filter(conversation=conversation).order_by("timestamp", "id")
        )


def outbound_texts(messages: list[Any]) -> list[str]:
    return [m.text for m in messages if m.direction == "out" and m.type == "text"]
