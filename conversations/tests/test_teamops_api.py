"""API v1 of SLA policies and macros: the same services as Settings → SLA, Settings → Macros and the
composer's macro menu; owners and admins write, another tenant's ids are 404, bad input is a 400 with a
stable code and stores nothing."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone
from django_tenants.utils import schema_context

from conftest import login, make_agent
from conversations.models import CannedResponse, Conversation, Macro, Message, SlaPolicy
from conversations.services.macros import save_macro
from conversations.tests.conftest import make_conversation
from crm.models import Contact, Tag, Team

JSON = "application/json"
SLA = "/api/v1/settings/sla-policies/"
MACROS = "/api/v1/macros/"


@pytest.fixture
def billing(tenant_a):
    with schema_context(tenant_a.schema_name):
        Tag.objects.create(name="vip")
        return Team.objects.create(name="Billing")


def _policy(tenant, **fields):
    with schema_context(tenant.schema_name):
        return SlaPolicy.objects.create(**{"name": "Default", "first_response_minutes": 30, **fields})


def _count(tenant, model):
    with schema_context(tenant.schema_name):
        return model.objects.count()


# --- SLA policies -----------------------------------------------------------------------------------


def test_owners_list_add_change_and_delete_sla_policies(tenant_a, client_a, owner_a, billing):
    api = login(client_a, tenant_a, owner_a)
    made = api.post(
        SLA,
        {"name": "  Billing   team ", "first_response_minutes": 15, "team": billing.pk},
        content_type=JSON,
    )
    assert made.status_code == 201, made.content
    body = made.json()
    assert body["name"] == "Billing team" and body["team"] == billing.pk and body["channel"] is None
    assert body["first_response_minutes"] == 15 and body["resolution_minutes"] is None
    assert body["business_hours_only"] is True
    listed = api.get(SLA).json()["results"]
    assert [p["id"] for p in listed] == [body["id"]]
    assert api.get(f"{SLA}{body['id']}/").json()["name"] == "Billing team"

    changed = api.patch(
        f"{SLA}{body['id']}/", {"resolution_minutes": 240, "business_hours_only": False}, content_type=JSON
    )
    assert changed.status_code == 200, changed.content
    after = changed.json()
    assert after["resolution_minutes"] == 240 and after["first_response_minutes"] == 15
    assert after["team"] == billing.pk and after["business_hours_only"] is False
    moved = api.patch(f"{SLA}{body['id']}/", {"team": None}, content_type=JSON)
    assert moved.status_code == 200 and moved.json()["team"] is None

    assert api.delete(f"{SLA}{body['id']}/").status_code == 204
    assert _count(tenant_a, SlaPolicy) == 0
    assert api.get(f"{SLA}{body['id']}/").status_code == 404


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        ({"name": "", "first_response_minutes": 10}, "validation_error"),
        ({"name": "x" * 150, "first_response_minutes": 10}, "invalid_name"),
        ({"name": "No target"}, "no_target"),
        ({"name": "Zero", "first_response_minutes": 0}, "invalid_first_response_minutes"),
        ({"name": "Huge", "resolution_minutes": 10**12}, "invalid_resolution_minutes"),
        ({"name": "Text", "first_response_minutes": "soon"}, "validation_error"),
        ({"name": "Ghost team", "first_response_minutes": 10, "team": 999999}, "invalid_team"),
        ({"name": "Ghost number", "first_response_minutes": 10, "channel": 999999}, "invalid_channel"),
        ({"name": "Big id", "first_response_minutes": 10, "team": 10**20}, "validation_error"),
        ({"name": "Second default", "first_response_minutes": 10}, "duplicate_policy"),
        ({"name": "Nul\x00", "first_response_minutes": 10}, None),
        ([1, 2], "validation_error"),
    ],
)
def test_a_bad_sla_policy_is_a_400_with_a_stable_code_and_stores_nothing(
    tenant_a, client_a, owner_a, payload, code
):
    _policy(tenant_a)
    api = login(client_a, tenant_a, owner_a)
    refused = api.post(SLA, payload, content_type=JSON)
    assert refused.status_code == 400, refused.content
    assert refused.json()["error"]["code"] == (code or refused.json()["error"]["code"]), refused.content
    assert _count(tenant_a, SlaPolicy) == 1


def test_a_bad_sla_patch_changes_nothing(tenant_a, client_a, owner_a, channel_a, billing):
    policy = _policy(tenant_a)
    api = login(client_a, tenant_a, owner_a)
    both = api.patch(f"{SLA}{policy.pk}/", {"team": billing.pk, "channel": channel_a.pk}, content_type=JSON)
    assert both.status_code == 400 and both.json()["error"]["code"] == "invalid_scope"
    none = api.patch(f"{SLA}{policy.pk}/", {"first_response_minutes": None}, content_type=JSON)
    assert none.status_code == 400 and none.json()["error"]["code"] == "no_target"
    with schema_context(tenant_a.schema_name):
        policy.refresh_from_db()
        assert policy.team_id is None and policy.channel_id is None and policy.first_response_minutes == 30


def test_agents_and_supervisors_cannot_read_or_write_sla_policies(tenant_a, client_a, agent_a):
    policy = _policy(tenant_a)
    supervisor = make_agent(tenant_a, email="sup@alpha.test", role="supervisor").user
    for user in (agent_a, supervisor):
        api = login(client_a, tenant_a, user)
        assert api.get(SLA).status_code == 403
        assert (
            api.post(SLA, {"name": "Mine", "first_response_minutes": 5}, content_type=JSON).status_code == 403
        )
        assert api.patch(f"{SLA}{policy.pk}/", {"name": "Mine"}, content_type=JSON).status_code == 403
        assert api.delete(f"{SLA}{policy.pk}/").status_code == 403
    assert _count(tenant_a, SlaPolicy) == 1


def test_another_tenants_sla_policy_is_not_found(tenant_a, tenant_b, client_b, owner_b):
    policy = _policy(tenant_a)
    api = login(client_b, tenant_b, owner_b)
    assert api.get(f"{SLA}{policy.pk}/").status_code == 404
    assert api.patch(f"{SLA}{policy.pk}/", {"name": "Taken"}, content_type=JSON).status_code == 404
    assert api.delete(f"{SLA}{policy.pk}/").status_code == 404
    assert api.get(SLA).json()["results"] == []
    with schema_context(tenant_a.schema_name):
        assert SlaPolicy.objects.get(pk=policy.pk).name == "Default"


# --- Macros -----------------------------------------------------------------------------------------


def test_owners_add_and_delete_macros_and_agents_list_them(tenant_a, client_a, owner_a, agent_a, billing):
    api = login(client_a, tenant_a, owner_a)
    made = api.post(
        MACROS,
        {
            "name": "Escalate",
            "actions": [
                {"type": "tags", "tags": ["VIP"]},
                {"type": "team", "team": billing.pk},
                {"type": "snooze", "minutes": 60},
            ],
        },
        content_type=JSON,
    )
    assert made.status_code == 201, made.content
    body = made.json()
    assert body["name"] == "Escalate"
    assert body["actions"] == [
        {"type": "tags", "tags": ["vip"]},
        {"type": "team", "team": billing.pk},
        {"type": "snooze", "minutes": 60},
    ]
    agent = login(client_a, tenant_a, agent_a)
    assert [m["name"] for m in agent.get(MACROS).json()["results"]] == ["Escalate"]
    assert agent.get(f"{MACROS}{body['id']}/").json()["actions"] == body["actions"]
    assert (
        agent.post(
            MACROS, {"name": "Mine", "actions": [{"type": "status", "status": "open"}]}, content_type=JSON
        ).status_code
        == 403
    )
    assert agent.delete(f"{MACROS}{body['id']}/").status_code == 403
    assert _count(tenant_a, Macro) == 1
    api = login(client_a, tenant_a, owner_a)
    assert api.delete(f"{MACROS}{body['id']}/").status_code == 204
    assert _count(tenant_a, Macro) == 0
    assert api.get(f"{MACROS}{body['id']}/").status_code == 404


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        ({"name": "Empty", "actions": []}, "invalid_macro"),
        ({"name": "", "actions": [{"type": "status", "status": "open"}]}, "validation_error"),
        ({"name": "x" * 150, "actions": [{"type": "status", "status": "open"}]}, "invalid_macro"),
        ({"name": "Odd", "actions": [{"type": "delete_everything"}]}, "invalid_macro"),
        ({"name": "Odd", "actions": [{"type": "status", "status": "snoozed"}]}, "invalid_macro"),
        ({"name": "Odd", "actions": [{"type": "team", "team": 10**20}]}, "invalid_macro"),
        ({"name": "Odd", "actions": [{"type": "reply", "canned": "1"}]}, "invalid_macro"),
        ({"name": "Odd", "actions": [{"type": "tags", "tags": ["nope"]}]}, "unknown_tag"),
        ({"name": "Odd", "actions": ["status"]}, "validation_error"),
        ({"name": "Odd", "actions": "status"}, "validation_error"),
        ({"name": "taken", "actions": [{"type": "status", "status": "open"}]}, "duplicate_macro"),
    ],
)
def test_a_bad_macro_is_a_400_with_a_stable_code_and_stores_nothing(
    tenant_a, client_a, owner_a, billing, payload, code
):
    with schema_context(tenant_a.schema_name):
        save_macro(name="Taken", actions=[{"type": "status", "status": "pending"}])
    api = login(client_a, tenant_a, owner_a)
    refused = api.post(MACROS, payload, content_type=JSON)
    assert refused.status_code == 400, refused.content
    assert refused.json()["error"]["code"] == code, refused.content
    assert _count(tenant_a, Macro) == 1


def test_another_tenants_macro_is_not_found(tenant_a, tenant_b, client_b, owner_b, conversation_a):
    with schema_context(tenant_a.schema_name):
        macro = save_macro(name="Resolve", actions=[{"type": "status", "status": "resolved"}])
    conversation_b = make_conversation(tenant_b)
    api = login(client_b, tenant_b, owner_b)
    assert api.get(f"{MACROS}{macro.pk}/").status_code == 404
    assert api.delete(f"{MACROS}{macro.pk}/").status_code == 404
    assert api.get(MACROS).json()["results"] == []
    ran = api.post(f"/api/v1/conversations/{conversation_b.pk}/macros/{macro.pk}/run/")
    assert ran.status_code == 404 and ran.json()["error"]["code"] == "not_found"
    assert _count(tenant_a, Macro) == 1


# --- Running a macro --------------------------------------------------------------------------------


def _run(api, conversation, macro):
    return api.post(f"/api/v1/conversations/{conversation.pk}/macros/{macro.pk}/run/")


def test_an_agent_runs_a_macro_through_the_composers_services(
    tenant_a, client_a, agent_a, conversation_a, billing
):
    with schema_context(tenant_a.schema_name):
        canned = CannedResponse.objects.create(shortcut="thanks", text="Thanks {{contact.name}}!")
        macro = save_macro(
            name="Close",
            actions=[
                {"type": "reply", "canned": canned.pk},
                {"type": "tags", "tags": ["vip"]},
                {"type": "status", "status": "resolved"},
            ],
        )
    api = login(client_a, tenant_a, agent_a)
    ran = _run(api, conversation_a, macro)
    assert ran.status_code == 200, ran.content
    assert ran.json()["id"] == conversation_a.pk and ran.json()["status"] == "resolved"
    with schema_context(tenant_a.schema_name):
        conversation = Conversation.objects.get(pk=conversation_a.pk)
        assert [t.name for t in conversation.tags.all()] == ["vip"]
        reply = Message.objects.get(conversation=conversation, direction="out", type="text")
        assert reply.text == "Thanks Sheena!" and reply.sender_id == agent_a.pk


def test_a_refused_step_is_macro_failed_with_details_and_changes_nothing(
    tenant_a, client_a, owner_a, conversation_a, billing
):
    with schema_context(tenant_a.schema_name):
        canned = CannedResponse.objects.create(shortcut="late", text="Hello")
        macro = save_macro(
            name="Tag then reply",
            actions=[{"type": "tags", "tags": ["vip"]}, {"type": "reply", "canned": canned.pk}],
        )
        Contact.objects.filter(pk=conversation_a.contact_id).update(
            last_inbound_at=timezone.now() - dt.timedelta(hours=30)
        )
    api = login(client_a, tenant_a, owner_a)
    failed = _run(api, conversation_a, macro)
    assert failed.status_code == 422, failed.content
    error = failed.json()["error"]
    assert error["code"] == "macro_failed" and "step 2" in error["message"]
    assert error["details"] == {"step": 2, "action": "reply", "reason": "outside_window"}
    with schema_context(tenant_a.schema_name):
        conversation = Conversation.objects.get(pk=conversation_a.pk)
        assert not conversation.tags.exists()
        assert not Message.objects.filter(conversation=conversation, direction="out").exists()


def test_a_conversation_the_agent_cannot_see_or_a_missing_macro_is_not_found(
    tenant_a, client_a, agent_a, other_agent_a, conversation_a
):
    hidden = make_conversation(tenant_a, assignee=other_agent_a)
    with schema_context(tenant_a.schema_name):
        macro = save_macro(name="Resolve", actions=[{"type": "status", "status": "resolved"}])
    api = login(client_a, tenant_a, agent_a)
    assert _run(api, hidden, macro).status_code == 404
    missing = api.post(f"/api/v1/conversations/{conversation_a.pk}/macros/999999/run/")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    with schema_context(tenant_a.schema_name):
        assert Conversation.objects.get(pk=hidden.pk).status == "open"


def test_the_schema_lists_the_sla_and_macro_endpoints(client_a, tenant_a, owner_a):
    api = login(client_a, tenant_a, owner_a)
    paths = api.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()["paths"]
    assert {"get", "post"} <= set(paths[SLA])
    assert {"get", "patch", "delete"} <= set(paths[SLA + "{id}/"])
    assert {"get", "post"} <= set(paths[MACROS])
    assert {"get", "delete"} <= set(paths[MACROS + "{id}/"])
    run = paths["/api/v1/conversations/{id}/macros/{macro_id}/run/"]["post"]
    assert {"200", "404", "422"} <= set(run["responses"])


def test_an_integration_key_runs_a_macro_as_no_person(tenant_a, client_a, conversation_a):
    from crm.tests.helpers import issue_key

    with schema_context(tenant_a.schema_name):
        canned = CannedResponse.objects.create(shortcut="hi", text="Hi {{contact.name}}, {{agent.name}}")
        macro = save_macro(name="Greet", actions=[{"type": "reply", "canned": canned.pk}])
    key = issue_key(tenant_a, role="admin")
    ran = client_a.post(
        f"/api/v1/conversations/{conversation_a.pk}/macros/{macro.pk}/run/",
        HTTP_AUTHORIZATION=f"Bearer {key}",
    )
    assert ran.status_code == 200, ran.content
    with schema_context(tenant_a.schema_name):
        reply = Message.objects.get(conversation_id=conversation_a.pk, direction="out", type="text")
        assert reply.text.startswith("Hi Sheena") and reply.sender_id is None
