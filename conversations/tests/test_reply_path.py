"""The one reply path (services.send_reply), race-safe workflow writes, the API's PATCH, and consent:
opt-outs, blocks and STOP/START keywords."""

from __future__ import annotations

import datetime as dt
import threading
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone
from django_tenants.utils import schema_context

from conftest import host_of, login, make_agent
from conversations import selectors, services
from conversations.models import BotSettings, Conversation, InboxEvent, Message
from crm.models import Contact, Tag, Team
from whatsapp import payloads
from whatsapp.testing import CUSTOMER, PNID_A, WABA_A, deliver

MARKETING = {
    "name": "spring_sale",
    "language": "en",
    "status": "APPROVED",
    "category": "MARKETING",
    "components": [{"type": "BODY", "text": "Spring sale!"}],
}
UTILITY = {
    "name": "order_update",
    "language": "en",
    "status": "APPROVED",
    "category": "UTILITY",
    "components": [{"type": "BODY", "text": "Your order shipped."}],
}


@pytest.fixture(autouse=True)
def _forget_idempotency_keys(settings: Any) -> None:
    import redis

    client = redis.Redis.from_url(settings.REDIS_URL)
    for key in client.scan_iter("*idem:*"):
        client.delete(key)


@pytest.fixture
def templates(sandbox: Any, tenant_a: Any, channel_a: Any) -> None:
    from whatsapp.services import sync_templates

    sandbox.set_templates(WABA_A, [MARKETING, UTILITY])
    with schema_context(tenant_a.schema_name):
        sync_templates(channel=channel_a)


def _events(tenant: Any, conversation: Conversation, kind: str) -> list[dict[str, Any]]:
    with schema_context(tenant.schema_name):
        return [
            e.payload
            for e in InboxEvent.objects.filter(conversation_id=conversation.pk).order_by("id")
            if e.payload["type"] == kind
        ]


def _fresh(tenant: Any, conversation: Conversation) -> Conversation:
    with schema_context(tenant.schema_name):
        return Conversation.objects.select_related("contact").get(pk=conversation.pk)


def _set(tenant: Any, **fields: Any) -> None:
    with schema_context(tenant.schema_name):
        settings, _ = BotSettings.objects.get_or_create(pk=1)
        for name, value in fields.items():
            setattr(settings, name, value)
        settings.save()


def _update_contact(tenant: Any, conversation: Conversation, **fields: Any) -> None:
    with schema_context(tenant.schema_name):
        Contact.objects.filter(pk=conversation.contact_id).update(**fields)


def _error(response: Any) -> str:
    return str(response.json()["error"]["code"])


# ---------------------------------------------------------------------------------------------------
# Two agents taking the same conversation at once
# ---------------------------------------------------------------------------------------------------


def test_two_agents_taking_the_same_conversation_at_once_one_wins_and_the_other_gets_409(
    committed_db: None,
) -> None:
    from tenants.models import Tenant

    tenant = Tenant.objects.get(slug="alpha")
    with schema_context(tenant.schema_name):
        team = Team.objects.create(name="Race team")
        agents = [make_agent(tenant, email=f"racer{i}@alpha.test", role="agent") for i in range(2)]
        for agent in agents:
            team.members.add(agent)
        contact = Contact.objects.create(name="Racy", phone="+15550009999")
        conversation = Conversation.objects.create(contact=contact, team=team)
    clients = [login(Client(HTTP_HOST=host_of(tenant)), tenant, agent.user) for agent in agents]
    barrier = threading.Barrier(2)
    statuses: list[int] = []
    codes: list[str] = []

    def take(client: Client) -> None:
        from django.db import connection as thread_connection

        try:
            barrier.wait()
            # Each thread has its own database connection: the row lock really is contended.
            response = client.post(
                f"/inbox/c/{conversation.pk}/take/", {"seen_assignee": ""}, HTTP_HX_REQUEST="true"
            )
            statuses.append(response.status_code)
            if response.status_code != 200:
                codes.append(response.json()["error"]["code"])
        finally:
            thread_connection.close()

    threads = [threading.Thread(target=take, args=(c,)) for c in clients]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert sorted(statuses) == [200, 409]
        assert codes == ["already_assigned"]
        with schema_context(tenant.schema_name):
            conversation.refresh_from_db()
            assert conversation.assignee_id in {a.user_id for a in agents}
            lines = Message.objects.filter(conversation=conversation, type=Message.Type.SYSTEM)
            assert [m.text.endswith("took this conversation over from the bot") for m in lines] == [True]
            assigned = [
                e
                for e in InboxEvent.objects.filter(conversation_id=conversation.pk)
                if e.payload["type"] == "conversation.assigned"
            ]
            assert len(assigned) == 1
    finally:
        with schema_context(tenant.schema_name):
            InboxEvent.objects.filter(conversation_id=conversation.pk).delete()
            Conversation.objects.filter(pk=conversation.pk).delete()
            contact.delete()
            team.delete()
            for agent in agents:
                user = agent.user
                agent.delete()
                user.delete()


def test_an_agent_taking_a_conversation_someone_just_took_changes_nothing(
    tenant_a: Any, agent_a: Any, other_agent_a: Any, conversation_a: Conversation
) -> None:
    with schema_context(tenant_a.schema_name):
        stale = Conversation.objects.get(pk=conversation_a.pk)
        services.take_conversation(conversation=conversation_a, by=other_agent_a)
        with pytest.raises(services.WorkflowError) as error:
            services.take_conversation(conversation=stale, by=agent_a)
        assert error.value.code == "already_assigned" and error.value.status_code == 409
        assert Conversation.objects.get(pk=conversation_a.pk).assignee_id == other_agent_a.pk
        assert Message.objects.filter(conversation=conversation_a, type="system").count() == 1


def test_the_inbox_refuses_a_stale_assign_form_with_a_clear_409(
    client_a: Client, tenant_a: Any, agent_a: Any, other_agent_a: Any, conversation_a: Conversation
) -> None:
    with schema_context(tenant_a.schema_name):
        team = Team.objects.create(name="Desk")
        for user in (agent_a, other_agent_a):
            team.members.add(team.members.model.objects.get(user=user))
        Conversation.objects.filter(pk=conversation_a.pk).update(team=team)
        # The page showed it unassigned; meanwhile a teammate took it.
        services.take_conversation(conversation=_fresh(tenant_a, conversation_a), by=other_agent_a)
    login(client_a, tenant_a, agent_a)
    form = {"assignee": str(agent_a.pk), "team": str(team.pk), "seen_assignee": ""}
    response = client_a.post(f"/inbox/c/{conversation_a.pk}/assign/", form)
    assert response.status_code == 409 and _error(response) == "already_assigned"
    assert "has just taken this conversation" in response.json()["error"]["message"]
    take = client_a.post(f"/inbox/c/{conversation_a.pk}/take/", {"seen_assignee": ""})
    assert take.status_code == 409
    assert _fresh(tenant_a, conversation_a).assignee_id == other_agent_a.pk


def test_a_workflow_change_on_a_stale_row_keeps_the_inbound_counters(
    tenant_a: Any, owner_a: Any, conversation_a: Conversation
) -> None:
    with schema_context(tenant_a.schema_name):
        stale = Conversation.objects.get(pk=conversation_a.pk)
        # Meanwhile two messages arrived (the inbound round's UPDATE).
        Conversation.objects.filter(pk=conversation_a.pk).update(unread_count=2, status="open")
        services.set_conversation_status(conversation=stale, status="pending", by=owner_a)
        services.mark_conversation_unread(conversation=stale, by=owner_a)
        fresh = Conversation.objects.get(pk=conversation_a.pk)
    assert (fresh.status, fresh.unread_count) == ("pending", 2)


# ---------------------------------------------------------------------------------------------------
# One reply path: the API replies as the inbox does
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("surface", ["inbox", "api"])
def test_a_reply_stops_the_bot_records_the_first_response_and_assigns_the_replier(
    surface: str, client_a: Client, tenant_a: Any, agent_a: Any, conversation_a: Conversation
) -> None:
    login(client_a, tenant_a, agent_a)
    if surface == "inbox":
        response = client_a.post(f"/inbox/c/{conversation_a.pk}/send/", {"text": "Hello!"})
        assert response.status_code == 200, response.content
    else:
        response = client_a.post(
            f"/api/v1/conversations/{conversation_a.pk}/messages/",
            {"type": "text", "text": "Hello!"},
            content_type="application/json",
        )
        assert response.status_code == 201, response.content
    fresh = _fresh(tenant_a, conversation_a)
    assert fresh.bot_active is False
    assert fresh.first_response_at is not None and fresh.first_response_by_id == agent_a.pk
    assert fresh.assignee_id == agent_a.pk
    with schema_context(tenant_a.schema_name):
        lines = list(
            Message.objects.filter(conversation=conversation_a, type="system").values_list("text", flat=True)
        )
    assert any("the bot stopped" in line for line in lines)
    assert any("was assigned" in line for line in lines)
    assert _events(tenant_a, conversation_a, "message.created")
    assert [e["assignee"] for e in _events(tenant_a, conversation_a, "conversation.assigned")] == [agent_a.pk]


def test_an_integration_keys_reply_stops_the_bot_without_assigning_anyone(
    tenant_a: Any, conversation_a: Conversation
) -> None:
    from crm.tests.helpers import api_client, issue_key

    client = api_client(tenant_a, issue_key(tenant_a, role="supervisor", name="helpdesk"))
    response = client.post(
        f"/api/v1/conversations/{conversation_a.pk}/messages/",
        {"type": "text", "text": "Hello from the helpdesk"},
        content_type="application/json",
    )
    assert response.status_code == 201, response.content
    fresh = _fresh(tenant_a, conversation_a)
    assert fresh.bot_active is False and fresh.first_response_at is not None
    assert fresh.assignee_id is None and fresh.first_response_by_id is None
    with schema_context(tenant_a.schema_name):
        line = Message.objects.get(conversation=conversation_a, type="system").text
    assert line == "Integration helpdesk replied: the bot stopped"


def test_with_auto_assignment_off_a_reply_leaves_the_conversation_unassigned(
    client_a: Client, tenant_a: Any, agent_a: Any, conversation_a: Conversation
) -> None:
    _set(tenant_a, assign_on_reply=False)
    login(client_a, tenant_a, agent_a)
    response = client_a.post(
        f"/api/v1/conversations/{conversation_a.pk}/messages/",
        {"type": "text", "text": "Hello!"},
        content_type="application/json",
    )
    assert response.status_code == 201
    fresh = _fresh(tenant_a, conversation_a)
    assert fresh.assignee_id is None and fresh.first_response_by_id == agent_a.pk


def test_first_response_is_credited_to_the_replier_not_the_later_assignee(
    tenant_a: Any, agent_a: Any, other_agent_a: Any, owner_a: Any, conversation_a: Conversation
) -> None:
    with schema_context(tenant_a.schema_name):
        services.send_reply(
            conversation=conversation_a, draft=services.Draft(kind="text", text="first"), by=agent_a
        )
        services.assign_conversation(
            conversation=conversation_a, assignee=other_agent_a, team=None, by=owner_a
        )
        services.send_reply(
            conversation=conversation_a, draft=services.Draft(kind="text", text="later"), by=other_agent_a
        )
        today = timezone.localdate()
        report = selectors.conversation_report(start=today - dt.timedelta(days=1), end=today)
    by_name = {row["name"]: row["median_first_response"] for row in report.agents}
    assert by_name[agent_a.get_full_name() or agent_a.email] is not None
    assert by_name[other_agent_a.get_full_name() or other_agent_a.email] is None
    assert _fresh(tenant_a, conversation_a).first_response_by_id == agent_a.pk


def test_the_bots_reply_neither_stops_it_nor_counts_as_a_response(
    tenant_a: Any, conversation_a: Conversation
) -> None:
    with schema_context(tenant_a.schema_name):
        services.send_reply(
            conversation=conversation_a,
            draft=services.Draft(kind="text", text="Welcome!"),
            automated=True,
        )
    fresh = _fresh(tenant_a, conversation_a)
    assert fresh.bot_active is True and fresh.first_response_at is None and fresh.assignee_id is None


def test_an_agent_who_lost_sight_of_the_conversation_cannot_reply_into_it(
    tenant_a: Any, agent_a: Any, other_agent_a: Any, conversation_a: Conversation
) -> None:
    with schema_context(tenant_a.schema_name):
        stale = Conversation.objects.get(pk=conversation_a.pk)
        Conversation.objects.filter(pk=conversation_a.pk).update(assignee=other_agent_a)
        with pytest.raises(services.WorkflowError) as error:
            services.send_reply(conversation=stale, draft=services.Draft(kind="text", text="hi"), by=agent_a)
        assert error.value.code == "not_found"
        assert not Message.objects.filter(conversation=conversation_a, direction="out").exists()


def test_starting_a_conversation_through_the_api_makes_it_the_starters_with_the_bot_off(
    client_a: Client, tenant_a: Any, agent_a: Any, channel_a: Any, templates: None
) -> None:
    with schema_context(tenant_a.schema_name):
        contact = Contact.objects.create(name="New", phone="+447911123401", wa_id="447911123401")
    login(client_a, tenant_a, agent_a)
    response = client_a.post(
        "/api/v1/messages/",
        {"contact": contact.pk, "type": "template", "template": "order_update"},
        content_type="application/json",
    )
    assert response.status_code == 201, response.content
    with schema_context(tenant_a.schema_name):
        conversation = Conversation.objects.get(contact=contact)
        assert (conversation.assignee_id, conversation.bot_active) == (agent_a.pk, False)
        assert conversation.messages.count() == 1
    assert _events(tenant_a, conversation, "conversation.created")


# ---------------------------------------------------------------------------------------------------
# Consent and blocks
# ---------------------------------------------------------------------------------------------------


def test_a_marketing_template_to_an_opted_out_contact_is_refused_and_stores_nothing(
    api_a: Client, tenant_a: Any, conversation_a: Conversation, templates: None
) -> None:
    _update_contact(tenant_a, conversation_a, marketing_consent="opted_out")
    url = f"/api/v1/conversations/{conversation_a.pk}/messages/"
    refused = api_a.post(
        url, {"type": "template", "template": "spring_sale"}, content_type="application/json"
    )
    assert refused.status_code == 422 and _error(refused) == "opted_out"
    with schema_context(tenant_a.schema_name):
        assert not Message.objects.filter(conversation=conversation_a, direction="out").exists()
    # Utility templates and replies are not marketing.
    allowed = api_a.post(
        url, {"type": "template", "template": "order_update"}, content_type="application/json"
    )
    assert allowed.status_code == 201


def test_nothing_can_be_sent_to_a_blocked_contact(
    api_a: Client,
    client_a: Client,
    tenant_a: Any,
    owner_a: Any,
    conversation_a: Conversation,
    templates: None,
) -> None:
    _update_contact(tenant_a, conversation_a, blocked=True)
    url = f"/api/v1/conversations/{conversation_a.pk}/messages/"
    for body in ({"type": "text", "text": "hi"}, {"type": "template", "template": "order_update"}):
        response = api_a.post(url, body, content_type="application/json")
        assert response.status_code == 422 and _error(response) == "contact_blocked"
    page = client_a.post(f"/inbox/c/{conversation_a.pk}/send/", {"text": "hi"})
    assert page.status_code == 422 and _error(page) == "contact_blocked"
    with schema_context(tenant_a.schema_name):
        assert not Message.objects.filter(conversation=conversation_a, direction="out").exists()


@pytest.fixture
def api_a(client_a: Client, tenant_a: Any, owner_a: Any) -> Client:
    return login(client_a, tenant_a, owner_a)


def test_the_composer_shows_why_it_cannot_send_before_the_agent_types(
    api_a: Client, tenant_a: Any, conversation_a: Conversation
) -> None:
    url = f"/inbox/c/{conversation_a.pk}/?fragment=1"
    assert 'id="send-notice"' not in api_a.get(url).content.decode()
    _update_contact(tenant_a, conversation_a, marketing_consent="opted_out")
    html = api_a.get(url).content.decode()
    assert 'data-code="opted_out"' in html and 'id="composer-text"' in html
    _update_contact(tenant_a, conversation_a, blocked=True)
    html = api_a.get(url).content.decode()
    assert 'data-code="contact_blocked"' in html and 'id="composer-text"' not in html


def test_opting_out_in_the_contact_panel_refuses_marketing_templates(
    api_a: Client, tenant_a: Any, owner_a: Any, conversation_a: Conversation, templates: None
) -> None:
    with schema_context(tenant_a.schema_name):
        services.edit_contact(conversation=conversation_a, by=owner_a, marketing_consent="opted_out")
    response = api_a.post(
        f"/api/v1/conversations/{conversation_a.pk}/messages/",
        {"type": "template", "template": "spring_sale"},
        content_type="application/json",
    )
    assert response.status_code == 422 and _error(response) == "opted_out"


def test_a_csv_import_that_opts_a_contact_out_refuses_marketing_templates(
    api_a: Client, tenant_a: Any, conversation_a: Conversation, templates: None
) -> None:
    from crm import services as crm_services
    from crm.actors import import_contacts

    csv = f"phone,name,marketing_consent\n+{CUSTOMER},Sheena,opted_out\n"
    with schema_context(tenant_a.schema_name):
        job = crm_services.start_contact_import(filename="c.csv", content=csv.encode(), created_by=None)
        import_contacts(job.pk)
        assert Contact.objects.get(pk=conversation_a.contact_id).marketing_consent == "opted_out"
    response = api_a.post(
        "/api/v1/messages/",
        {"contact": conversation_a.contact_id, "type": "template", "template": "spring_sale"},
        content_type="application/json",
    )
    assert response.status_code == 422 and _error(response) == "opted_out"
    with schema_context(tenant_a.schema_name):
        assert not Message.objects.filter(direction="out").exists()


def _write(public_client: Client, text: str, wamid: str) -> None:
    deliver(
        public_client, payloads.text_event(phone_number_id=PNID_A, wa_id=CUSTOMER, text=text, wamid=wamid)
    )


def _consent(tenant: Any) -> str:
    with schema_context(tenant.schema_name):
        return str(Contact.objects.get(wa_id=CUSTOMER).marketing_consent)


def _replies(tenant: Any) -> list[str]:
    with schema_context(tenant.schema_name):
        return list(
            Message.objects.filter(direction="out", type="text").order_by("id").values_list("text", flat=True)
        )


@pytest.mark.parametrize("word", ["STOP", "  stop ", "Arrêt", "ARRET", "إيقاف", "Berhenti", "baja"])
def test_a_customer_writing_a_stop_word_is_opted_out_and_told_so(
    word: str, public_client: Client, tenant_a: Any, channel_a: Any
) -> None:
    _write(public_client, word, "wamid.stop.1")
    assert _consent(tenant_a) == "opted_out"
    assert _replies(tenant_a) == [BotSettings._meta.get_field("opt_out_reply").get_default()]


def test_the_stop_promotions_button_of_a_marketing_template_opts_out(
    public_client: Client, tenant_a: Any, channel_a: Any
) -> None:
    button = payloads.message(
        wa_id=CUSTOMER,
        type="button",
        content={"text": "Stop promotions", "payload": "STOP"},
        wamid="wamid.b1",
    )
    deliver(
        public_client,
        payloads.event(phone_number_id=PNID_A, contacts=[payloads.contact(CUSTOMER, "")], messages=[button]),
    )
    assert _consent(tenant_a) == "opted_out"


def test_a_stop_word_inside_a_longer_message_is_not_an_opt_out(
    public_client: Client, tenant_a: Any, channel_a: Any
) -> None:
    _write(public_client, "please don't stop sending offers", "wamid.stop.2")
    assert _consent(tenant_a) == "unknown"


def test_start_opts_the_customer_back_in(public_client: Client, tenant_a: Any, channel_a: Any) -> None:
    _write(public_client, "STOP", "wamid.stop.3")
    _write(public_client, "Start", "wamid.start.3")
    assert _consent(tenant_a) == "opted_in"
    assert len(_replies(tenant_a)) == 2


def test_a_tenant_added_stop_word_opts_out(
    owner_client: Client, public_client: Client, tenant_a: Any, channel_a: Any
) -> None:
    with schema_context(tenant_a.schema_name):
        current = BotSettings.objects.get_or_create(pk=1)[0]
    response = owner_client.post(
        "/settings/inbox/consent/",
        {
            "stop_words": current.stop_words + "\nNo more please",
            "start_words": current.start_words,
            "opt_out_reply": "Done, no more offers.",
            "opt_in_reply": "",
            "assign_on_reply": "on",
        },
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == 200 and "saved" in response.content.decode()
    _write(public_client, "no MORE please", "wamid.stop.4")
    assert _consent(tenant_a) == "opted_out"
    assert _replies(tenant_a) == ["Done, no more offers."]


def test_a_word_in_both_lists_is_refused_by_the_settings_page(owner_client: Client, tenant_a: Any) -> None:
    response = owner_client.post(
        "/settings/inbox/consent/",
        {"stop_words": "STOP\nhalt", "start_words": "HALT", "opt_out_reply": "", "opt_in_reply": ""},
        HTTP_HX_REQUEST="true",
    )
    assert "keyword_in_both" in response.content.decode() or "both a stop" in response.content.decode()
    with schema_context(tenant_a.schema_name):
        assert "halt" not in BotSettings.objects.get_or_create(pk=1)[0].stop_words


def test_only_admins_change_the_opt_out_settings(client_a: Client, tenant_a: Any, agent_a: Any) -> None:
    login(client_a, tenant_a, agent_a)
    response = client_a.post("/settings/inbox/consent/", {"stop_words": "", "start_words": ""})
    assert response.status_code == 403
    with schema_context(tenant_a.schema_name):
        assert "STOP" in BotSettings.objects.get_or_create(pk=1)[0].stop_words


@pytest.fixture
def owner_client(client_a: Client, tenant_a: Any, owner_a: Any) -> Client:
    return login(client_a, tenant_a, owner_a)


# ---------------------------------------------------------------------------------------------------
# PATCH /api/v1/conversations/{id}/
# ---------------------------------------------------------------------------------------------------


def _patch(client: Client, conversation: Conversation, body: dict[str, Any]) -> Any:
    return client.patch(f"/api/v1/conversations/{conversation.pk}/", body, content_type="application/json")


def test_each_field_of_a_conversation_is_changed_through_the_api(
    api_a: Client, tenant_a: Any, agent_a: Any, conversation_a: Conversation
) -> None:
    with schema_context(tenant_a.schema_name):
        team = Team.objects.create(name="Sales")
        Tag.objects.create(name="vip")
        Tag.objects.create(name="lead")
    assert _patch(api_a, conversation_a, {"assignee": agent_a.pk}).json()["assignee"] == agent_a.pk
    assert _patch(api_a, conversation_a, {"team": team.pk}).json()["team"] == team.pk
    assert _patch(api_a, conversation_a, {"status": "pending"}).json()["status"] == "pending"
    until = (timezone.now() + dt.timedelta(hours=3)).isoformat()
    snoozed = _patch(api_a, conversation_a, {"snoozed_until": until}).json()
    assert snoozed["status"] == "snoozed" and snoozed["snoozed_until"]
    assert _patch(api_a, conversation_a, {"bot_active": False}).json()["bot_active"] is False
    assert _patch(api_a, conversation_a, {"tags": ["VIP", "lead"]}).status_code == 200
    assert _patch(api_a, conversation_a, {"assignee": None, "team": None}).json()["assignee"] is None
    fresh = _fresh(tenant_a, conversation_a)
    with schema_context(tenant_a.schema_name):
        assert sorted(t.name for t in fresh.tags.all()) == ["lead", "vip"]
    assert (fresh.assignee_id, fresh.team_id, fresh.bot_active) == (None, None, False)
    kinds = [e["type"] for e in _events(tenant_a, conversation_a, "conversation.assigned")]
    assert len(kinds) == 3
    assert _events(tenant_a, conversation_a, "conversation.status")
    assert _events(tenant_a, conversation_a, "conversation.bot")
    assert _events(tenant_a, conversation_a, "conversation.tagged")


def test_several_fields_are_changed_at_once_or_not_at_all(
    api_a: Client, tenant_a: Any, agent_a: Any, conversation_a: Conversation
) -> None:
    with schema_context(tenant_a.schema_name):
        Tag.objects.create(name="vip")
    both = _patch(api_a, conversation_a, {"status": "resolved", "assignee": agent_a.pk, "tags": ["vip"]})
    assert both.status_code == 200
    assert (both.json()["status"], both.json()["assignee"]) == ("resolved", agent_a.pk)
    before = len(_events(tenant_a, conversation_a, "conversation.status"))
    refused = _patch(api_a, conversation_a, {"status": "open", "tags": ["no-such-tag"]})
    assert refused.status_code == 400 and _error(refused) == "unknown_tag"
    refused = _patch(api_a, conversation_a, {"status": "open", "assignee": 999999})
    assert refused.status_code == 400 and _error(refused) == "invalid_assignee"
    fresh = _fresh(tenant_a, conversation_a)
    assert fresh.status == "resolved"
    assert len(_events(tenant_a, conversation_a, "conversation.status")) == before


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"status": "closed"}, "validation_error"),
        ({"assignee": "me"}, "validation_error"),
        ({"tags": "vip"}, "validation_error"),
        ({"bot_active": "maybe"}, "validation_error"),
        ({}, "validation_error"),
        ({"status": "snoozed"}, "invalid_snooze"),
        ({"snoozed_until": "2000-01-01T00:00:00Z"}, "invalid_snooze"),
        ({"team": 999999}, "invalid_team"),
    ],
)
def test_bad_values_answer_400_in_the_error_shape(
    body: dict[str, Any], code: str, api_a: Client, tenant_a: Any, conversation_a: Conversation
) -> None:
    response = _patch(api_a, conversation_a, body)
    assert response.status_code == 400, response.content
    assert _error(response) == code and set(response.json()["error"]) == {"code", "message", "details"}


def test_an_agent_is_refused_what_the_inbox_refuses_them(
    client_a: Client, tenant_a: Any, agent_a: Any, other_agent_a: Any, conversation_a: Conversation
) -> None:
    login(client_a, tenant_a, agent_a)
    with schema_context(tenant_a.schema_name):
        team = Team.objects.create(name="Support")
        agent = team.members.model.objects.get(user=agent_a)
        team.members.add(agent)
        Conversation.objects.filter(pk=conversation_a.pk).update(assignee=other_agent_a, team=team)
    # Visible through the team, but another agent's: only a supervisor reassigns it (inbox: 403).
    response = _patch(client_a, conversation_a, {"assignee": agent_a.pk})
    assert response.status_code == 403 and _error(response) == "forbidden"
    page = client_a.post(f"/inbox/c/{conversation_a.pk}/assign/", {"assignee": str(agent_a.pk)})
    assert page.status_code == 403
    # Not visible at all: 404, as on the page.
    with schema_context(tenant_a.schema_name):
        Conversation.objects.filter(pk=conversation_a.pk).update(team=None)
    assert _patch(client_a, conversation_a, {"status": "resolved"}).status_code == 404
    assert client_a.post(f"/inbox/c/{conversation_a.pk}/status/", {"status": "resolved"}).status_code == 404
    assert _fresh(tenant_a, conversation_a).status == "open"


def test_an_agent_may_hand_an_unassigned_conversation_to_a_colleague_as_in_the_inbox(
    client_a: Client, tenant_a: Any, agent_a: Any, other_agent_a: Any, conversation_a: Conversation
) -> None:
    login(client_a, tenant_a, agent_a)
    response = _patch(client_a, conversation_a, {"assignee": other_agent_a.pk, "status": "pending"})
    assert response.status_code == 200, response.content
    assert _fresh(tenant_a, conversation_a).assignee_id == other_agent_a.pk


def test_another_tenants_conversation_cannot_be_patched(
    client_b: Client, tenant_b: Any, owner_b: Any, conversation_a: Conversation
) -> None:
    login(client_b, tenant_b, owner_b)
    assert _patch(client_b, conversation_a, {"status": "resolved"}).status_code == 404


def test_the_patch_is_in_the_openapi_schema_with_its_error_codes(client_a: Client) -> None:
    schema = client_a.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    path = next(p for p in schema["paths"] if p.startswith("/api/v1/conversations/{") and p.count("/") == 5)
    operation = schema["paths"][path]["patch"]
    assert {"200", "400", "403", "404", "409"} <= set(operation["responses"])
    ref = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    fields = schema["components"]["schemas"][ref.rsplit("/", 1)[1]]["properties"]
    assert {"assignee", "team", "status", "snoozed_until", "bot_active", "tags"} <= set(fields)


def test_the_admin_refuses_a_word_in_both_lists_as_the_page_does(owner_client: Client, tenant_a: Any) -> None:
    with schema_context(tenant_a.schema_name):
        settings = BotSettings.objects.get_or_create(pk=1)[0]
    url = f"/admin/conversations/botsettings/{settings.pk}/change/"
    form = {"time_zone": "UTC", "stop_words": "STOP\nhalt", "start_words": "halt", "assign_on_reply": "on"}
    refused = owner_client.post(url, form)
    assert refused.status_code == 200 and "both a stop and a start word" in refused.content.decode()
    accepted = owner_client.post(url, {**form, "start_words": "START"})
    assert accepted.status_code == 302
    with schema_context(tenant_a.schema_name):
        assert BotSettings.objects.get(pk=settings.pk).stop_words == "STOP\nhalt"
