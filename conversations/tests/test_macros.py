"""Macros: saved by owners and admins, run from the composer through the existing services, all or
nothing, and a refused step names itself."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone
from django_tenants.utils import schema_context

from conftest import login
from conversations.errors import WorkflowError
from conversations.models import CannedResponse, Conversation, Macro, Message
from conversations.services.macros import run_macro, save_macro
from crm.models import Contact, Tag, Team


@pytest.fixture
def setup(tenant_a):
    with schema_context(tenant_a.schema_name):
        canned = CannedResponse.objects.create(shortcut="thanks", text="Thanks {{contact.name}}!")
        Tag.objects.create(name="vip")
        Tag.objects.create(name="billing")
        team = Team.objects.create(name="Billing")
        return canned, team


def _macro(tenant, canned, team, name="Close billing"):
    with schema_context(tenant.schema_name):
        return save_macro(
            name=name,
            actions=[
                {"type": "reply", "canned": canned.pk},
                {"type": "tags", "tags": ["VIP", "billing"]},
                {"type": "team", "team": team.pk},
                {"type": "status", "status": "resolved"},
            ],
        )


def test_a_macro_runs_each_action_through_the_services(tenant_a, conversation_a, owner_a, setup):
    canned, team = setup
    macro = _macro(tenant_a, canned, team)
    with schema_context(tenant_a.schema_name):
        run_macro(macro=macro, conversation=conversation_a, by=owner_a)
        conversation = Conversation.objects.get(pk=conversation_a.pk)
        assert conversation.status == "resolved" and conversation.team_id == team.pk
        assert sorted(t.name for t in conversation.tags.all()) == ["billing", "vip"]
        reply = Message.objects.get(conversation=conversation, direction="out", type="text")
        assert reply.text == "Thanks Sheena!" and reply.sender_id == owner_a.pk


def test_a_refused_step_undoes_the_whole_macro_and_names_the_step(tenant_a, conversation_a, owner_a, setup):
    canned, _team = setup
    with schema_context(tenant_a.schema_name):
        macro = save_macro(
            name="Tag then reply",
            actions=[
                {"type": "tags", "tags": ["vip"]},
                {"type": "status", "status": "pending"},
                {"type": "reply", "canned": canned.pk},
            ],
        )
        Contact.objects.filter(pk=conversation_a.contact_id).update(
            last_inbound_at=timezone.now() - dt.timedelta(hours=30)
        )
        with pytest.raises(WorkflowError) as failed:
            run_macro(macro=macro, conversation=conversation_a, by=owner_a)
        assert failed.value.code == "macro_failed"
        assert failed.value.details == {"step": 3, "action": "reply", "reason": "outside_window"}
        assert "step 3" in failed.value.message
        conversation = Conversation.objects.get(pk=conversation_a.pk)
        assert conversation.status == "open" and not conversation.tags.exists()
        assert not Message.objects.filter(conversation=conversation, direction="out").exists()


@pytest.mark.parametrize(
    "actions",
    [
        [],
        [{"type": "explode"}],
        [{"type": "reply", "canned": 999999}],
        [{"type": "tags", "tags": ["nope"]}],
        [{"type": "team", "team": "x"}],
        [{"type": "status", "status": "snoozed"}],
        [{"type": "snooze", "minutes": 0}],
    ],
)
def test_bad_actions_are_refused_and_nothing_is_stored(tenant_a, setup, actions):
    with schema_context(tenant_a.schema_name):
        with pytest.raises(WorkflowError):
            save_macro(name="Bad", actions=actions)
        assert not Macro.objects.exists()


def test_the_composer_runs_a_macro_and_reports_a_failure(tenant_a, conversation_a, agent_a, client_a, setup):
    canned, _team = setup
    with schema_context(tenant_a.schema_name):
        snooze = save_macro(name="<b>Later</b>", actions=[{"type": "snooze", "minutes": 60}])
        failing = save_macro(name="Reply", actions=[{"type": "reply", "canned": canned.pk}])
        Contact.objects.filter(pk=conversation_a.contact_id).update(
            last_inbound_at=timezone.now() - dt.timedelta(hours=30)
        )
    client = login(client_a, tenant_a, agent_a)
    menu = client.get(f"/inbox/c/{conversation_a.pk}/macros/")
    assert menu.status_code == 200
    assert "&lt;b&gt;Later&lt;/b&gt;" in menu.content.decode()
    refused = client.post(
        f"/inbox/c/{conversation_a.pk}/macros/{failing.pk}/", HTTP_ACCEPT="application/json"
    )
    assert refused.status_code == 422
    assert "step 1" in refused.content.decode()
    ran = client.post(f"/inbox/c/{conversation_a.pk}/macros/{snooze.pk}/")
    assert ran.status_code == 200
    with schema_context(tenant_a.schema_name):
        assert Conversation.objects.get(pk=conversation_a.pk).status == "snoozed"


def test_an_agent_cannot_run_a_macro_on_a_conversation_they_do_not_see(
    tenant_a, conversation_a, agent_a, other_agent_a, client_a, setup
):
    with schema_context(tenant_a.schema_name):
        macro = save_macro(name="Later", actions=[{"type": "snooze", "minutes": 60}])
        Conversation.objects.filter(pk=conversation_a.pk).update(assignee=other_agent_a)
    client = login(client_a, tenant_a, agent_a)
    assert client.post(f"/inbox/c/{conversation_a.pk}/macros/{macro.pk}/").status_code == 404
    assert client.get(f"/inbox/c/{conversation_a.pk}/macros/").status_code == 404
    with schema_context(tenant_a.schema_name):
        assert Conversation.objects.get(pk=conversation_a.pk).status == "open"


def test_macro_settings_are_for_owners_and_admins(
    tenant_a, tenant_b, owner_a, owner_b, agent_a, client_a, client_b, setup
):
    canned, _team = setup
    assert login(client_a, tenant_a, agent_a).get("/settings/macros/").status_code == 403
    client = login(client_a, tenant_a, owner_a)
    created = client.post(
        "/settings/macros/",
        {"name": "<script>x</script>", "canned": str(canned.pk), "tags": "vip", "status": "resolved"},
    )
    assert created.status_code == 302
    page = client.get("/settings/macros/").content.decode()
    assert "&lt;script&gt;x&lt;/script&gt;" in page and "<script>x</script>" not in page
    bad = client.post("/settings/macros/", {"name": "Bad", "tags": "unknown-tag"})
    assert bad.status_code == 400
    with schema_context(tenant_a.schema_name):
        macro = Macro.objects.get()
        assert [a["type"] for a in macro.actions] == ["reply", "tags", "status"]
    # Another tenant's owner cannot touch it: 404 in their own workspace.
    assert (
        login(client_b, tenant_b, owner_b).post(f"/settings/macros/{macro.pk}/", {"delete": "1"}).status_code
        == 404
    )
    with schema_context(tenant_a.schema_name):
        assert Macro.objects.filter(pk=macro.pk).exists()
    assert client.post(f"/settings/macros/{macro.pk}/", {"delete": "1"}).status_code == 302
    with schema_context(tenant_a.schema_name):
        assert not Macro.objects.exists()


def test_csat_settings_page_is_for_admins_and_refuses_bad_input(tenant_a, owner_a, agent_a, client_a):
    assert login(client_a, tenant_a, agent_a).get("/settings/csat/").status_code == 403
    client = login(client_a, tenant_a, owner_a)
    assert client.get("/settings/csat/").status_code == 200
    bad = client.post("/settings/csat/", {"enabled": "on", "question": "<b>q</b>", "comment_minutes": "0"})
    assert bad.status_code == 400 and "&lt;b&gt;q&lt;/b&gt;" in bad.content.decode()
    ok = client.post("/settings/csat/", {"enabled": "on", "question": "How was it?", "comment_minutes": "5"})
    assert ok.status_code == 302
