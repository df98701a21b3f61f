"""The first-run checklist: each step ticks from the data, one query, owners and admins only, dismissed
per tenant."""

from __future__ import annotations

import pytest
from django.utils import timezone
from django_tenants.utils import schema_context

from conftest import login, make_agent
from conversations.models import BusinessHours, Channel, Conversation, Message
from crm.models import Contact
from onboarding.checklist import checklist_for


def _done(tenant):
    with schema_context(tenant.schema_name):
        return {step.key: step.done for step in checklist_for(tenant=tenant).steps}


def test_a_new_workspace_has_nothing_ticked_and_each_step_ticks_from_its_data(tenant_a, owner_a):
    assert _done(tenant_a) == {"whatsapp": False, "team": False, "hours_bot": False, "first_message": False}
    with schema_context(tenant_a.schema_name):
        channel = Channel.objects.create(phone_number_id="999000111", waba_id="999000222")
    assert _done(tenant_a)["whatsapp"]
    make_agent(tenant_a, email="agent@alpha.test")
    assert _done(tenant_a)["team"]
    with schema_context(tenant_a.schema_name):
        BusinessHours.objects.create(weekday=0, opens="09:00", closes="17:00")
    assert _done(tenant_a)["hours_bot"]
    with schema_context(tenant_a.schema_name):
        contact = Contact.objects.create(phone="+15550009999")
        conversation = Conversation.objects.create(contact=contact, channel=channel)
        # A customer's message or the bot's (no sender) is not the owner's first message.
        Message.objects.create(
            conversation=conversation, direction="in", type="text", text="hi", timestamp=timezone.now()
        )
        Message.objects.create(
            conversation=conversation, direction="out", type="text", text="bot", timestamp=timezone.now()
        )
    assert not _done(tenant_a)["first_message"]
    with schema_context(tenant_a.schema_name):
        Message.objects.create(
            conversation=conversation,
            direction="out",
            type="text",
            text="hello",
            sender=owner_a,
            timestamp=timezone.now(),
        )
        checklist = checklist_for(tenant=tenant_a)
    assert checklist.complete and not checklist.visible


def test_the_bot_alone_ticks_the_hours_and_bot_step(tenant_a):
    from conversations.models import BotSettings

    with schema_context(tenant_a.schema_name):
        BotSettings.objects.update_or_create(pk=1, defaults={"welcome_enabled": True, "welcome_text": "Hi"})
    assert _done(tenant_a)["hours_bot"]


def test_the_checklist_costs_one_query(tenant_a, django_assert_max_num_queries):
    # At most the schema switch (SET search_path, once per request anyway) and one SELECT.
    with schema_context(tenant_a.schema_name), django_assert_max_num_queries(2) as captured:
        checklist = checklist_for(tenant=tenant_a)
    assert len([q for q in captured.captured_queries if not q["sql"].startswith("SET ")]) == 1
    assert [step.url for step in checklist.steps][1:] == ["/settings/team/", "/settings/inbox/", "/inbox/"]
    assert checklist.steps[0].url == "/settings/whatsapp/"  # Settings → WhatsApp numbers


def test_the_inbox_shows_it_to_owners_and_admins_only(client_a, tenant_a, owner_a):
    assert b'id="first-run-checklist"' in login(client_a, tenant_a, owner_a).get("/inbox/").content
    admin = make_agent(tenant_a, email="admin@alpha.test", role="admin")
    agent = make_agent(tenant_a, email="agent@alpha.test", role="agent")
    from django.test import Client

    for agent_row, shown in ((admin, True), (agent, False)):
        page = login(Client(HTTP_HOST="alpha.localhost"), tenant_a, agent_row.user).get("/inbox/")
        assert (b'id="first-run-checklist"' in page.content) is shown


def test_dismissing_hides_it_for_the_whole_tenant_and_not_for_others(
    client_a, tenant_a, owner_a, client_b, tenant_b, owner_b
):
    login(client_a, tenant_a, owner_a)
    response = client_a.post("/onboarding/checklist/dismiss/", HTTP_HX_REQUEST="true")
    assert response.status_code == 200 and response.content == b""
    assert b'id="first-run-checklist"' not in client_a.get("/inbox/").content
    assert b'id="first-run-checklist"' in login(client_b, tenant_b, owner_b).get("/inbox/").content


def test_an_agent_cannot_dismiss_it(client_a, tenant_a):
    agent = make_agent(tenant_a, email="agent@alpha.test", role="agent")
    login(client_a, tenant_a, agent.user)
    assert client_a.post("/onboarding/checklist/dismiss/").status_code == 403
    with schema_context(tenant_a.schema_name):
        assert not checklist_for(tenant=tenant_a).dismissed


def test_dismissing_needs_a_sign_in_and_a_post(client_a):
    assert client_a.post("/onboarding/checklist/dismiss/").status_code == 302
    assert client_a.get("/onboarding/checklist/dismiss/").status_code == 405


@pytest.mark.parametrize("path", ["/onboarding/checklist/dismiss/", "/welcome/abc/"])
def test_tenant_pages_of_onboarding_do_not_exist_on_the_public_host(public_client, path):
    assert public_client.get(path).status_code == 404
