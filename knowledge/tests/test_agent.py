"""The AI agent end to end: the customer's message through the webhook, the inbound job, the agent's job on
the "ai" queue, the reply through the reply path to the Graph API sandbox; and every handoff reason."""

from __future__ import annotations

import pytest
from django_tenants.utils import schema_context

from conversations.models import AutoReplyRule, Conversation
from knowledge.models import AIHandoff, AIReply
from knowledge.tests.ai_fixtures import (
    configure_agent,
    customer_writes,
    outbound_texts,
    thread,
    use_llm,
)
from whatsapp.testing import (
    PNID_A,
    queued_jobs,
    run_jobs,
)

pytestmark = pytest.mark.django_db


def handoff_of(tenant):
    with schema_context(tenant.schema_name):
        return list(AIHandoff.objects.values_list("reason", flat=True))


def test_with_no_llm_it_answers_a_paraphrased_question_with_the_best_passage_and_its_source(
    public_client, tenant_a, channel_a, sandbox, knowledge_a
):
    configure_agent(tenant_a)
    customer_writes(public_client, "How much do you charge to send my order to Portugal?", jobs=False)
    assert "answer_with_ai" in queued_jobs()  # the inbound job did not answer itself: the AI queue will
    run_jobs()
    conversation, messages = thread(tenant_a)
    [answer] = outbound_texts(messages)
    assert "4.95 euros" in answer and answer.endswith("— Shipping and delivery")
    assert len(answer) <= 700
    assert conversation.bot_active  # the AI keeps the conversation while it answers
    with schema_context(tenant_a.schema_name):
        reply = AIReply.objects.get(conversation=conversation)
        assert reply.mode == "passage" and reply.message.text == answer
        assert [s["title"] for s in reply.sources] == ["Shipping and delivery"]
        assert reply.inbound.text.startswith("How much")
    sent = [s["body"]["text"]["body"] for s in sandbox.sent(PNID_A) if s["body"].get("type") == "text"]
    assert sent == [answer]
    # The customer saw "typing…" (a read receipt with the typing indicator) before the answer.
    assert any(r.get("typing_indicator") for r in sandbox.state.read_receipts)


def test_a_new_tenant_has_the_agent_off_and_the_bot_hands_over_as_before(
    public_client, tenant_a, channel_a, sandbox, knowledge_a
):
    customer_writes(public_client, "How much is delivery to Portugal?")
    conversation, messages = thread(tenant_a)
    assert outbound_texts(messages) == [] and not conversation.bot_active
    assert "answer_with_ai" not in queued_jobs()
    with schema_context(tenant_a.schema_name):
        from knowledge.models import AgentSettings

        settings = AgentSettings.objects.get_or_create(pk=1)[0]
        assert not settings.enabled and not settings.llm_configured


def test_a_keyword_rule_that_answers_wins_over_the_agent(
    public_client, tenant_a, channel_a, sandbox, knowledge_a
):
    configure_agent(tenant_a)
    with schema_context(tenant_a.schema_name):
        AutoReplyRule.objects.create(keyword="delivery", reply="See example.com/delivery")
    customer_writes(public_client, "What does delivery cost?")
    _, messages = thread(tenant_a)
    assert outbound_texts(messages) == ["See example.com/delivery"]


@pytest.mark.parametrize(
    "text",
    [
        "I want to talk to a human please",
        "Can I speak with someone from customer service?",
        "Quiero hablar con una persona",
        "Prefiero un agente humano, por favor",
        "Quero falar com um atendente",
        "Posso falar com uma pessoa?",
    ],
)
def test_asking_for_a_person_hands_over_in_english_spanish_and_portuguese(
    text, public_client, tenant_a, channel_a, sandbox, knowledge_a
):
    configure_agent(tenant_a, handoff_message="A colleague will answer you here.")
    customer_writes(public_client, text)
    conversation, messages = thread(tenant_a)
    assert handoff_of(tenant_a) == ["customer_request"]
    assert not conversation.bot_active
    assert outbound_texts(messages) == ["A colleague will answer you here."]
    assert any(m.type == "system" and "customer_request" in m.text for m in messages)


def test_a_question_the_knowledge_does_not_answer_is_handed_over(
    public_client, tenant_a, channel_a, sandbox, knowledge_a
):
    configure_agent(tenant_a)
    customer_writes(public_client, "Can you repair the engine of my motorbike?")
    conversation, _ = thread(tenant_a)
    assert handoff_of(tenant_a) == ["missing_knowledge"] and not conversation.bot_active


def test_a_blocked_topic_is_handed_over(public_client, tenant_a, channel_a, sandbox, knowledge_a):
    configure_agent(tenant_a, blocked_topics="refund\nlawyer")
    customer_writes(public_client, "How long does a REFUND take?")
    assert handoff_of(tenant_a) == ["policy"]


def test_past_the_reply_limit_it_hands_over(public_client, tenant_a, channel_a, sandbox, knowledge_a):
    configure_agent(tenant_a, max_replies=1)
    customer_writes(public_client, "How much does delivery to Spain cost?")
    customer_writes(public_client, "When is the shop in Lisbon open?")
    conversation, _ = thread(tenant_a)
    assert handoff_of(tenant_a) == ["limit"] and not conversation.bot_active
    with schema_context(tenant_a.schema_name):
        assert AIReply.objects.filter(conversation=conversation).count() == 1


def test_an_agent_who_took_over_before_the_job_ran_is_not_overridden(
    public_client, tenant_a, channel_a, sandbox, knowledge_a, owner_a
):
    configure_agent(tenant_a)
    customer_writes(public_client, "How much does delivery to Spain cost?", jobs=False)
    with schema_context(tenant_a.schema_name):
        Conversation.objects.update(bot_active=False)
    run_jobs()
    _, messages = thread(tenant_a)
    assert outbound_texts(messages) == [] and handoff_of(tenant_a) == []


def test_outside_its_hours_setting_the_agent_does_not_take_the_message(
    public_client, tenant_a, channel_a, sandbox, knowledge_a
):
    configure_agent(tenant_a, hours="outside_hours")  # no business hours: always open
    customer_writes(public_client, "How much does delivery to Spain cost?")
    conversation, messages = thread(tenant_a)
    assert outbound_texts(messages) == [] and not conversation.bot_active and handoff_of(tenant_a) == []


# -- with an LLM -------------------------------------------------------------------------------------------


def test_with_an_llm_it_answers_from_the_passages_and_records_model_tokens_and_latency(
    public_client, tenant_a, channel_a, sandbox, knowledge_a, llm_sandbox
):
    use_llm(tenant_a, llm_sandbox)
    customer_writes(public_client, "How long does a refund take to reach me?")
    conversation, messages = thread(tenant_a)
    [answer] = outbound_texts(messages)
    assert "five working days" in answer
    with schema_context(tenant_a.schema_name):
        reply = AIReply.objects.get(conversation=conversation)
    assert reply.mode == "llm" and reply.model == "sandbox-chat"
    assert reply.prompt_tokens > 0 and reply.completion_tokens > 0
    assert [s["title"] for s in reply.sources] == ["Returns policy"]
    [request] = llm_sandbox.requests("/v1/chat/completions")
    assert "<context>" in request["body"]["messages"][1]["content"]
    assert request["body"]["response_format"] == {"type": "json_object"}


@pytest.mark.parametrize("failure", ["server_error", "timeout", "rate_limited"])
def test_an_llm_that_fails_or_times_out_hands_over_with_reason_error(
    failure, public_client, tenant_a, channel_a, sandbox, knowledge_a, llm_sandbox, settings
):
    settings.LLM_TIMEOUT_SECONDS = 1.0
    use_llm(tenant_a, llm_sandbox, handoff_message="A person will answer shortly.")
    if failure == "server_error":
        llm_sandbox.fail(500, times=2)
    elif failure == "rate_limited":
        llm_sandbox.fail(429, times=2, retry_after=30)
    else:
        llm_sandbox.hang(3.0, times=2)
    customer_writes(public_client, "How long does a refund take to reach me?")
    conversation, messages = thread(tenant_a)
    assert handoff_of(tenant_a) == ["error"] and not conversation.bot_active
    assert outbound_texts(messages) == ["A person will answer shortly."]  # never left silent


def test_the_llm_saying_the_passages_do_not_answer_hands_over(
    public_client, tenant_a, channel_a, sandbox, knowledge_a, llm_sandbox
):
    use_llm(tenant_a, llm_sandbox, threshold=0.0)  # every passage reaches the LLM, which refuses
    customer_writes(public_client, "Do you sell bicycles?")
    assert handoff_of(tenant_a) == ["missing_knowledge"]


@pytest.mark.parametrize(
    ("text", "reply"),
    [
        ("Hello!", "Hello! What can I help you with?"),
        ("hola", "¡Hola! ¿En qué puedo ayudarte?"),
        ("Muito obrigado!", "De nada!"),
    ],
)
def test_a_greeting_or_a_thank_you_is_answered_without_a_handoff(
    text, reply, public_client, tenant_a, channel_a, sandbox, knowledge_a
):
    configure_agent(tenant_a)
    customer_writes(public_client, text)
    conversation, messages = thread(tenant_a)
    assert outbound_texts(messages) == [reply] and conversation.bot_active and handoff_of(tenant_a) == []


def test_after_the_welcome_a_greeting_gets_no_second_hello(
    public_client, tenant_a, channel_a, sandbox, knowledge_a
):
    from conversations.models import BotSettings

    configure_agent(tenant_a)
    with schema_context(tenant_a.schema_name):
        BotSettings.objects.update_or_create(
            pk=1, defaults={"welcome_enabled": True, "welcome_text": "Welcome!"}
        )
    customer_writes(public_client, "Hi")
    customer_writes(public_client, "How much is express delivery?")
    conversation, messages = thread(tenant_a)
    texts = outbound_texts(messages)
    assert texts[0] == "Welcome!" and len(texts) == 2 and "9.90" in texts[1]
    assert conversation.bot_active and handoff_of(tenant_a) == []


def test_the_ai_job_waits_on_its_own_queue_with_the_tenants_schema(
    public_client, tenant_a, channel_a, sandbox, knowledge_a
):
    import dramatiq

    from tenants.jobs import TENANT_OPTION, broker

    configure_agent(tenant_a)
    customer_writes(public_client, "How much is express delivery?", jobs=False)
    [data] = list(broker.queues["ai"].queue)
    message = dramatiq.Message.decode(data)
    assert message.actor_name == "answer_with_ai" and message.queue_name == "ai"
    assert message.options[TENANT_OPTION] == tenant_a.schema_name


def test_an_agent_switched_off_before_its_job_ran_leaves_the_conversation_to_the_people(
    public_client, tenant_a, channel_a, sandbox, knowledge_a
):
    configure_agent(tenant_a)
    customer_writes(public_client, "How much is express delivery?", jobs=False)
    configure_agent(tenant_a, enabled=False)
    run_jobs()
    conversation, messages = thread(tenant_a)
    assert outbound_texts(messages) == [] and not conversation.bot_active
