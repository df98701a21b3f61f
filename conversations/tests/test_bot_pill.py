"""The inbox's "the bot is answering" tells the truth: a new conversation starts with the bot only when
the bot has something to say, and the bot hands the conversation to the agents' queue once it has no
answer for the customer (conversations.bot.answer, services.hand_over_from_bot)."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_tenants.utils import schema_context

from conftest import login
from conversations import bot
from conversations.models import AutoReplyRule, BotSettings, BusinessHours, Conversation, InboxEvent, Message
from conversations.tests.conftest import make_conversation
from whatsapp import parsing, payloads
from whatsapp.testing import PNID_A, deliver

PILL = "the bot is answering"
NOTICE = "No bot is answering: this conversation is waiting for an agent."
WA_ID = "15550002222"


def _bot(tenant, **fields):
    with schema_context(tenant.schema_name):
        BotSettings.objects.update_or_create(pk=1, defaults=fields)


def _rule(tenant, keyword="price", reply="Our prices start at 10 EUR."):
    with schema_context(tenant.schema_name):
        AutoReplyRule.objects.create(keyword=keyword, reply=reply)


def _closed_all_day(tenant):
    """Business hours on another weekday only: the business is closed now."""
    with schema_context(tenant.schema_name):
        other_day = (timezone.now().weekday() + 3) % 7
        BusinessHours.objects.create(weekday=other_day, opens=dt.time(9), closes=dt.time(10))


def _write(public_client, text, wa_id=WA_ID):
    deliver(public_client, payloads.text_event(phone_number_id=PNID_A, wa_id=wa_id, text=text))


def _conversation(tenant, wa_id=WA_ID):
    with schema_context(tenant.schema_name):
        return Conversation.objects.get(contact__wa_id=wa_id)


def _bot_texts(tenant, conversation):
    with schema_context(tenant.schema_name):
        return list(
            Message.objects.filter(conversation=conversation, direction="out", sender__isnull=True)
            .exclude(type="system")
            .order_by("id")
            .values_list("text", flat=True)
        )


def _event_types(tenant, conversation):
    with schema_context(tenant.schema_name):
        return [
            e.payload["type"] for e in InboxEvent.objects.filter(conversation=conversation).order_by("id")
        ]


def _head(client, conversation):
    response = client.get(f"/inbox/c/{conversation.pk}/head/", HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    return response.content.decode()


def _row(client, conversation):
    response = client.get(f"/inbox/c/{conversation.pk}/row/?tab=all&status={conversation.status}")
    assert response.status_code == 200
    return response.content.decode()


def test_without_welcome_away_or_rules_a_new_conversation_goes_straight_to_the_queue(
    public_client, client_a, tenant_a, owner_a, channel_a
):
    _write(public_client, "Hello, is anyone there?")

    conversation = _conversation(tenant_a)
    assert conversation.bot_active is False
    assert (conversation.assignee_id, conversation.unread_count, conversation.status) == (None, 1, "open")
    assert _bot_texts(tenant_a, conversation) == []
    # Agents hear of it as of any new conversation, and of no bot handover: there was no bot.
    events = _event_types(tenant_a, conversation)
    assert "conversation.created" in events and "message.created" in events
    assert "conversation.bot" not in events
    login(client_a, tenant_a, owner_a)
    head = _head(client_a, conversation)
    assert PILL not in head and NOTICE in head
    row = _row(client_a, conversation)
    assert "badge bot" not in row and "unread" in row
    unassigned = client_a.get("/inbox/list/?tab=unassigned").content.decode()
    assert f'id="conv-{conversation.pk}"' in unassigned


def test_with_only_a_welcome_the_bot_greets_and_hands_the_conversation_to_the_queue(
    public_client, client_a, tenant_a, owner_a, channel_a
):
    _bot(tenant_a, welcome_enabled=True, welcome_text="Hi! A colleague will be with you shortly.")

    _write(public_client, "I have a question about my order")

    conversation = _conversation(tenant_a)
    assert _bot_texts(tenant_a, conversation) == ["Hi! A colleague will be with you shortly."]
    assert conversation.bot_active is False and conversation.unread_count == 1
    assert "conversation.bot" in _event_types(tenant_a, conversation)
    login(client_a, tenant_a, owner_a)
    head = _head(client_a, conversation)
    assert PILL not in head and NOTICE in head


def test_the_pill_shows_while_the_bot_answers_and_goes_when_no_rule_matches(
    public_client, client_a, tenant_a, owner_a, channel_a
):
    _bot(tenant_a, welcome_enabled=True, welcome_text="Welcome!")
    _rule(tenant_a)
    login(client_a, tenant_a, owner_a)

    _write(public_client, "What's the price?")

    conversation = _conversation(tenant_a)
    assert _bot_texts(tenant_a, conversation) == ["Welcome!", "Our prices start at 10 EUR."]
    assert conversation.bot_active is True
    head = _head(client_a, conversation)
    assert PILL in head and NOTICE not in head
    assert "badge bot" in _row(client_a, conversation)

    _write(public_client, "Can I pay on delivery?")

    conversation = _conversation(tenant_a)
    assert conversation.bot_active is False
    assert _bot_texts(tenant_a, conversation) == ["Welcome!", "Our prices start at 10 EUR."]
    assert "conversation.bot" in _event_types(tenant_a, conversation)
    head = _head(client_a, conversation)
    assert PILL not in head and NOTICE in head
    assert "badge bot" not in _row(client_a, conversation)


def test_with_rules_only_the_pill_follows_whether_a_rule_answered(
    public_client, client_a, tenant_a, owner_a, channel_a
):
    _rule(tenant_a)
    login(client_a, tenant_a, owner_a)

    _write(public_client, "price please", wa_id="15550003001")
    _write(public_client, "do you deliver to Rome?", wa_id="15550003002")

    answered, unanswered = _conversation(tenant_a, "15550003001"), _conversation(tenant_a, "15550003002")
    assert answered.bot_active is True and _bot_texts(tenant_a, answered) == ["Our prices start at 10 EUR."]
    assert PILL in _head(client_a, answered)
    assert unanswered.bot_active is False and _bot_texts(tenant_a, unanswered) == []
    assert "conversation.bot" in _event_types(tenant_a, unanswered)
    head = _head(client_a, unanswered)
    assert PILL not in head and NOTICE in head


def test_with_only_an_away_message_the_bot_says_it_when_closed_and_hands_over(
    public_client, client_a, tenant_a, owner_a, channel_a
):
    _bot(tenant_a, away_enabled=True, away_text="We are closed: we answer tomorrow from 9.")
    _closed_all_day(tenant_a)

    _write(public_client, "Hello?")

    conversation = _conversation(tenant_a)
    assert _bot_texts(tenant_a, conversation) == ["We are closed: we answer tomorrow from 9."]
    # The away message promises a person: the conversation waits for one, in the queue.
    assert conversation.bot_active is False
    login(client_a, tenant_a, owner_a)
    head = _head(client_a, conversation)
    assert PILL not in head and NOTICE in head


def test_with_only_an_away_message_inside_business_hours_the_conversation_goes_straight_to_the_queue(
    public_client, tenant_a, channel_a
):
    # No hours set: the bot counts the business as always open and never sends the away message.
    _bot(tenant_a, away_enabled=True, away_text="We are closed.")

    _write(public_client, "Hello?")

    conversation = _conversation(tenant_a)
    assert conversation.bot_active is False and _bot_texts(tenant_a, conversation) == []
    assert "conversation.bot" not in _event_types(tenant_a, conversation)


def test_the_bot_speaks_first_only_with_something_to_say(tenant_a):
    monday_9_30 = dt.datetime(2026, 11, 23, 9, 30, tzinfo=dt.UTC)
    with schema_context(tenant_a.schema_name):
        assert not bot.speaks_first(now=monday_9_30)
        settings = bot.load_settings()
        settings.away_enabled, settings.away_text = True, "Closed."
        settings.save()
        BusinessHours.objects.create(weekday=0, opens=dt.time(9), closes=dt.time(17))
        assert not bot.speaks_first(now=monday_9_30)
        assert bot.speaks_first(now=monday_9_30.replace(hour=18))
        settings.away_enabled = False
        settings.welcome_enabled, settings.welcome_text = True, "   "
        settings.save()
        assert not bot.speaks_first(now=monday_9_30)
        AutoReplyRule.objects.create(keyword="price", reply="10 EUR", is_active=False)
        assert not bot.speaks_first(now=monday_9_30)
        AutoReplyRule.objects.create(keyword="hours", reply="9 to 5")
        assert bot.speaks_first(now=monday_9_30)


def test_turning_the_bot_on_later_leaves_existing_conversations_with_the_agents(
    public_client, tenant_a, channel_a
):
    _write(public_client, "Hi")
    _bot(tenant_a, welcome_enabled=True, welcome_text="Welcome!")
    _rule(tenant_a)

    _write(public_client, "and the price?")

    conversation = _conversation(tenant_a)
    assert conversation.bot_active is False and _bot_texts(tenant_a, conversation) == []
    # A new customer gets the bot.
    _write(public_client, "price?", wa_id="15550004444")
    assert _conversation(tenant_a, "15550004444").bot_active is True


def test_deciding_whether_the_bot_speaks_first_reads_the_rules_once_per_batch(tenant_a, channel_a):
    from whatsapp.services import process_webhook_events, record_webhook_events
    from whatsapp.webhook import Accepted

    _rule(tenant_a)
    bodies = [
        payloads.text_event(phone_number_id=PNID_A, wa_id=f"1555000510{i}", text="hello") for i in range(4)
    ]
    ids = record_webhook_events(
        accepted=[
            Accepted(
                body=payloads.encode(b),
                phone_number_ids=sorted({t.phone_number_id for t in parsing.targets(b) if t.phone_number_id}),
            )
            for b in bodies
        ]
    )
    with CaptureQueriesContext(connection) as queries:
        assert process_webhook_events(event_ids=ids).failed == []

    rule_reads = [q for q in queries.captured_queries if "conversations_autoreplyrule" in q["sql"]]
    assert len(rule_reads) == 1
    with schema_context(tenant_a.schema_name):
        assert set(Conversation.objects.values_list("bot_active", flat=True)) == {False}


@pytest.mark.parametrize("status", ["open", "pending", "snoozed", "resolved"])
@pytest.mark.parametrize("assigned", [False, True])
def test_the_pill_never_shows_for_a_conversation_the_bot_is_not_answering(
    status, assigned, client_a, tenant_a, owner_a
):
    fields = {"bot_active": False, "status": status}
    if assigned:
        fields["assignee"] = owner_a
    conversation = make_conversation(tenant_a, name="Quiet Customer", **fields)
    login(client_a, tenant_a, owner_a)

    head = _head(client_a, conversation)
    assert PILL not in head
    assert "badge bot" not in _row(client_a, conversation)
    # Only an open conversation nobody holds is said to be waiting.
    assert (NOTICE in head) is (status == "open" and not assigned)
    page = client_a.get(f"/inbox/c/{conversation.pk}/").content.decode()
    assert PILL not in page


def test_settings_hint_that_a_welcome_or_rules_let_the_bot_answer_first_only_while_it_has_nothing_to_say(
    client_a, tenant_a, owner_a
):
    login(client_a, tenant_a, owner_a)
    hint = 'id="bot-hint"'

    page = client_a.get("/settings/inbox/").content.decode()
    assert hint in page and "let the bot answer first" in page
    assert f'<p {hint} class="notice">' in page

    # Adding a rule hides it at once (the rules section redraws it out of band).
    response = client_a.post(
        "/settings/inbox/rules/",
        {"keyword": "price", "match": "contains", "reply": "10 EUR", "is_active": "on"},
        HTTP_HX_REQUEST="true",
    ).content.decode()
    assert f'<p {hint} class="notice" hx-swap-oob="true" hidden>' in response
    assert f'<p {hint} class="notice" hidden>' in client_a.get("/settings/inbox/").content.decode()
