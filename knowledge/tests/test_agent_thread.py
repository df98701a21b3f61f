"""What agents see of the AI agent in the thread (sources under its answers, why it handed over) and
learning from their answers (one click to an FAQ suggestion, approved by owners and admins)."""

from __future__ import annotations

import pytest
from django_tenants.utils import schema_context

from conftest import login, make_agent
from knowledge.models import Faq
from knowledge.tests.ai_fixtures import (
    add_knowledge,
    configure_agent,
    customer_writes,
    outbound_texts,
    thread,
)

pytestmark = pytest.mark.django_db
HOSTILE = '<img src=x onerror="alert(1)">Prices'


def test_agents_see_the_sources_under_an_ai_answer_escaped(
    public_client, client_a, tenant_a, owner_a, channel_a, sandbox
):
    add_knowledge(tenant_a, (HOSTILE, "The premium plan costs 25 euros per month, support included."))
    configure_agent(tenant_a)
    customer_writes(public_client, "What is the monthly price of the premium plan?")
    conversation, messages = thread(tenant_a)
    assert outbound_texts(messages)
    login(client_a, tenant_a, owner_a)
    html = client_a.get(f"/inbox/c/{conversation.pk}/", HTTP_HX_REQUEST="true").content.decode()
    assert "AI answer · 1 source" in html
    assert HOSTILE not in html and "&lt;img src=x" in html


def test_agents_see_why_the_ai_handed_over_and_save_their_answer_as_an_faq_suggestion(
    public_client, client_a, tenant_a, owner_a, channel_a, sandbox, knowledge_a
):
    configure_agent(tenant_a)
    customer_writes(public_client, "Do you gift-wrap presents?")
    conversation, _ = thread(tenant_a)
    agent = make_agent(tenant_a, email="ana@alpha.test").user
    login(client_a, tenant_a, agent)
    html = client_a.get(f"/inbox/c/{conversation.pk}/", HTTP_HX_REQUEST="true").content.decode()
    assert "The AI agent handed over: the knowledge has no answer (missing_knowledge)" in html
    sent = client_a.post(
        f"/inbox/c/{conversation.pk}/send/",
        {"text": "Yes, gift wrapping is free on request.", "idempotency_key": "k1"},
    )
    assert sent.status_code in (200, 201, 204, 302), sent.content
    conversation, messages = thread(tenant_a)
    reply = next(m for m in messages if m.sender_id)
    html = client_a.get(f"/inbox/c/{conversation.pk}/", HTTP_HX_REQUEST="true").content.decode()
    assert "Save as FAQ" in html
    response = client_a.post(
        f"/ai/c/{conversation.pk}/faq/", {"message_id": reply.pk}, HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 200 and "FAQ suggestion" in response.content.decode()
    client_a.post(f"/ai/c/{conversation.pk}/faq/", {"message_id": reply.pk}, HTTP_HX_REQUEST="true")
    with schema_context(tenant_a.schema_name):
        [faq] = Faq.objects.all()
        assert faq.status == "pending" and faq.question == "Do you gift-wrap presents?"
        assert faq.answer == "Yes, gift wrapping is free on request." and faq.source_id is None


def test_only_an_agents_reply_in_a_handed_over_conversation_can_be_saved(
    public_client, client_a, tenant_a, owner_a, channel_a, sandbox, knowledge_a
):
    customer_writes(public_client, "Do you gift-wrap presents?")  # agent off: no AI handoff
    conversation, messages = thread(tenant_a)
    login(client_a, tenant_a, owner_a)
    client_a.post(f"/inbox/c/{conversation.pk}/send/", {"text": "Yes.", "idempotency_key": "k2"})
    conversation, messages = thread(tenant_a)
    reply = next(m for m in messages if m.sender_id)
    response = client_a.post(
        f"/ai/c/{conversation.pk}/faq/", {"message_id": reply.pk}, HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 409 and response.json()["error"]["code"] == "not_handed_over"
    inbound = messages[0]
    response = client_a.post(
        f"/ai/c/{conversation.pk}/faq/", {"message_id": inbound.pk}, HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_message"
    api = client_a.post(
        f"/api/v1/ai/conversations/{conversation.pk}/faq-suggestions/",
        {"message_id": reply.pk},
        content_type="application/json",
    )
    assert api.status_code == 409
    with schema_context(tenant_a.schema_name):
        assert not Faq.objects.exists()


def test_reports_show_ai_resolved_and_handed_over_conversations_with_the_reasons(
    public_client, client_a, tenant_a, owner_a, channel_a, sandbox, knowledge_a
):
    configure_agent(tenant_a)
    customer_writes(public_client, "How much does delivery to Spain cost?", wa_id="15550000001")
    customer_writes(public_client, "I want to talk to a human", wa_id="15550000002")
    customer_writes(public_client, "Do you gift-wrap presents?", wa_id="15550000003")
    login(client_a, tenant_a, owner_a)
    html = client_a.get("/reports/").content.decode()
    from django.utils import timezone

    from knowledge.ai_reports import ai_report

    with schema_context(tenant_a.schema_name):
        today = timezone.localdate()
        report = ai_report(start=today, end=today)
    assert (report.answered, report.resolved_by_ai, report.handed_over) == (1, 1, 2)
    reasons = {code: n for code, _, n in report.reasons}
    assert reasons["customer_request"] == 1 and reasons["missing_knowledge"] == 1
    assert "Resolved by the AI" in html and "(customer_request)" in html
