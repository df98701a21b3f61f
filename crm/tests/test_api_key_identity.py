"""API keys with an identity: a personal key is its user (their role and teams now, refused once they are
deactivated); an integration key is the workspace's, with its own role, supervisor or above."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.core.management import call_command
from django.db import IntegrityError, transaction
from django_tenants.utils import schema_context

from conftest import login, make_agent
from conversations.models import Conversation, Message
from core.errors import ServiceError
from crm import services
from crm.models import Agent, ApiKey, Contact, Note, Team
from crm.tests.helpers import api_client, assert_error

pytestmark = pytest.mark.usefixtures("_forget_rate_limits")


@pytest.fixture
def _forget_rate_limits(settings: Any) -> None:
    import redis

    client = redis.Redis.from_url(settings.REDIS_URL)
    for key in client.scan_iter("*idem:*"):
        client.delete(key)


@pytest.fixture
def inbox(tenant_a: Any) -> dict[str, Any]:
    """An agent in a team, and conversations: theirs, their team's, the shared queue's, someone else's."""
    agent = make_agent(tenant_a, email="keyed@alpha.test").user
    other = make_agent(tenant_a, email="keyless@alpha.test").user
    with schema_context(tenant_a.schema_name):
        team = services.save_team(name="Keyed team", member_ids=[Agent.objects.get(user=agent).pk])
        rows = {}
        for i, fields in enumerate(
            (
                {"assignee": agent},
                {"team": team},
                {},
                {"assignee": other},
                {"team": Team.objects.create(name="T2")},
            )
        ):
            contact = Contact.objects.create(name=f"Keyed {i}", phone=f"+1555066{i:04d}")
            rows[("own", "team", "shared", "other", "other_team")[i]] = Conversation.objects.create(
                contact=contact, **fields
            )
        key = services.create_api_key(name="keyed-agent-key", kind="personal", user=agent).raw
    return {"agent": agent, "other": other, "team": team, "key": key, "conversations": rows}


def _ids(response: Any) -> set[int]:
    assert response.status_code == 200, response.content
    return {row["id"] for row in response.json()["results"]}


def test_an_agents_personal_key_lists_exactly_what_the_agents_inbox_shows(tenant_a, client_a, inbox):
    by_key = _ids(api_client(tenant_a, inbox["key"]).get("/api/v1/conversations/"))
    page = login(client_a, tenant_a, inbox["agent"]).get("/inbox/list/", {"tab": "all", "status": "any"})
    in_inbox = {int(pk) for pk in re.findall(rb'data-id="(\d+)"', page.content)}
    rows = inbox["conversations"]
    assert by_key == in_inbox == {rows["own"].pk, rows["team"].pk, rows["shared"].pk}


def test_a_personal_key_follows_its_users_role_and_teams(tenant_a, inbox):
    client = api_client(tenant_a, inbox["key"])
    rows = inbox["conversations"]
    everything = {c.pk for c in rows.values()}
    with schema_context(tenant_a.schema_name):
        agent_row = Agent.objects.get(user=inbox["agent"])
        services.change_agent_role(agent=agent_row, role="supervisor")
    assert _ids(client.get("/api/v1/conversations/")) == everything
    with schema_context(tenant_a.schema_name):
        services.change_agent_role(agent=agent_row, role="agent")
        services.save_team(team=inbox["team"], name=inbox["team"].name, member_ids=[])
    assert _ids(client.get("/api/v1/conversations/")) == {rows["own"].pk, rows["shared"].pk}
    assert client.get(f"/api/v1/conversations/{rows['team'].pk}/").status_code == 404


def test_a_deactivated_users_personal_key_is_refused_and_works_again_when_they_are_back(tenant_a, inbox):
    client = api_client(tenant_a, inbox["key"])
    with schema_context(tenant_a.schema_name):
        agent_row = Agent.objects.get(user=inbox["agent"])
        services.set_agent_active(agent=agent_row, active=False)
    assert_error(client.get("/api/v1/conversations/"), 401)
    assert_error(client.get("/api/v1/contacts/"), 401)
    with schema_context(tenant_a.schema_name):
        services.set_agent_active(agent=agent_row, active=True)
    assert client.get("/api/v1/conversations/").status_code == 200


def test_a_personal_key_of_someone_no_longer_a_member_is_refused(tenant_a, inbox):
    with schema_context(tenant_a.schema_name):
        Agent.objects.filter(user=inbox["agent"]).delete()
    assert_error(api_client(tenant_a, inbox["key"]).get("/api/v1/contacts/"), 401)


def test_an_integration_key_sees_every_conversation(tenant_a, inbox):
    with schema_context(tenant_a.schema_name):
        key = services.create_api_key(name="sync", kind="integration", role="supervisor").raw
    everything = {c.pk for c in inbox["conversations"].values()}
    assert _ids(api_client(tenant_a, key).get("/api/v1/conversations/")) >= everything


def test_what_a_key_writes_names_its_user_or_no_one_for_an_integration_key(tenant_a, inbox):
    contact_id = inbox["conversations"]["own"].contact_id
    with schema_context(tenant_a.schema_name):
        integration = services.create_api_key(name="sync", role="admin").raw
    personal = api_client(tenant_a, inbox["key"]).post(
        "/api/v1/notes/",
        {"contact": contact_id, "body": "by the agent's key"},
        content_type="application/json",
    )
    anonymous = api_client(tenant_a, integration).post(
        "/api/v1/notes/", {"contact": contact_id, "body": "by the sync"}, content_type="application/json"
    )
    assert personal.status_code == anonymous.status_code == 201
    with schema_context(tenant_a.schema_name):
        assert Note.objects.get(body="by the agent's key").author_id == inbox["agent"].pk
        assert Note.objects.get(body="by the sync").author_id is None


def test_an_agents_personal_key_edits_the_agents_own_notes_only(tenant_a, inbox):
    contact_id = inbox["conversations"]["own"].contact_id
    with schema_context(tenant_a.schema_name):
        contact = Contact.objects.get(pk=contact_id)
        mine = services.add_note(contact=contact, body="mine", author=inbox["agent"])
        theirs = services.add_note(contact=contact, body="theirs", author=inbox["other"])
    client = api_client(tenant_a, inbox["key"])
    body = {"body": "changed"}
    assert client.patch(f"/api/v1/notes/{mine.pk}/", body, content_type="application/json").status_code == 200
    refused = client.patch(f"/api/v1/notes/{theirs.pk}/", body, content_type="application/json")
    assert refused.status_code == 403


# --- who makes which key ----------------------------------------------------------------------------


def test_an_integration_key_needs_a_role_of_supervisor_or_above(in_a):
    with pytest.raises(ServiceError) as refused:
        services.create_api_key(name="x", kind="integration", role="agent")
    assert refused.value.code == "invalid_role"
    # Nor can a row say otherwise.
    with pytest.raises(IntegrityError), transaction.atomic():
        ApiKey.objects.create(
            name="x", prefix="badrow01", hashed_key="0" * 64, kind="integration", role="agent"
        )
    with pytest.raises(IntegrityError), transaction.atomic():
        ApiKey.objects.create(name="x", prefix="badrow02", hashed_key="0" * 64, kind="personal", role="admin")


@pytest.mark.parametrize(
    ("maker", "kind", "role", "allowed"),
    [
        ("agent", "personal", None, True),
        ("agent", "integration", "supervisor", False),
        ("supervisor", "personal", None, True),
        ("supervisor", "integration", "supervisor", False),
        ("admin", "integration", "supervisor", True),
        ("admin", "integration", "admin", True),
        ("admin", "integration", "owner", False),
        ("owner", "integration", "owner", True),
    ],
)
def test_nobody_makes_a_key_above_their_own_role_and_agents_make_only_personal_keys(
    tenant_a, maker, kind, role, allowed
):
    user = make_agent(tenant_a, email=f"{maker}.maker@alpha.test", role=maker).user
    with schema_context(tenant_a.schema_name):
        make = lambda: services.create_api_key(  # noqa: E731
            name="k",
            kind=kind,
            role=role,
            user=user if kind == "personal" else None,
            created_by=user,
            by_role=maker,
        )
        if allowed:
            assert make().api_key.kind == kind
        else:
            with pytest.raises(ServiceError):
                make()


def test_only_its_user_makes_or_rotates_a_personal_key(tenant_a, owner_a, inbox):
    with schema_context(tenant_a.schema_name):
        with pytest.raises(ServiceError):
            services.create_api_key(
                name="as someone", kind="personal", user=inbox["agent"], created_by=owner_a, by_role="owner"
            )
        key = ApiKey.objects.get(user=inbox["agent"])
        with pytest.raises(ServiceError):
            services.rotate_api_key(api_key=key, created_by=owner_a, by_role="owner")
        rotated = services.rotate_api_key(api_key=key, created_by=inbox["agent"], by_role="agent")
        assert (rotated.api_key.kind, rotated.api_key.user_id) == ("personal", inbox["agent"].pk)
        # An admin may still revoke it (a leaked key must be stoppable); another agent may not.
        with pytest.raises(ServiceError):
            services.revoke_api_key(api_key=key, by=inbox["other"], by_role="agent")
        services.revoke_api_key(api_key=key, by=owner_a, by_role="owner")


def test_an_agent_makes_and_sees_only_their_own_keys_in_settings(tenant_a, client_a, owner_a, inbox):
    with schema_context(tenant_a.schema_name):
        services.create_api_key(name="workspace sync", role="admin", created_by=owner_a)
    client = login(client_a, tenant_a, inbox["other"])
    page = client.get("/settings/api-keys/")
    assert page.status_code == 200
    assert b"workspace sync" not in page.content and b"keyed-agent-key" not in page.content
    assert b'value="integration"' not in page.content
    made = client.post("/settings/api-keys/", {"name": "my script", "kind": "personal"})
    raw = re.search(rb"wacrm_[A-Za-z0-9]+_[A-Za-z0-9_-]+", made.content).group(0).decode()
    assert api_client(tenant_a, raw).get("/api/v1/conversations/").status_code == 200
    client.post("/settings/api-keys/", {"name": "sneaky", "kind": "integration", "role": "admin"})
    with schema_context(tenant_a.schema_name):
        assert ApiKey.objects.get(name="my script").user_id == inbox["other"].pk
        assert not ApiKey.objects.filter(name="sneaky").exists()
        someone_elses = ApiKey.objects.get(user=inbox["agent"])
    assert client.post(f"/settings/api-keys/{someone_elses.pk}/revoke/").status_code == 404
    with schema_context(tenant_a.schema_name):
        assert ApiKey.objects.get(pk=someone_elses.pk).revoked_at is None


def test_create_api_key_makes_a_personal_key_for_a_user(tenant_a, inbox, capsys):
    call_command("create_api_key", "--tenant", "alpha", "--name", "cli", "--user", "keyed@alpha.test")
    out = capsys.readouterr().out.strip().splitlines()
    assert "personal key of keyed@alpha.test" in out[0]
    ids = _ids(api_client(tenant_a, out[-1]).get("/api/v1/conversations/"))
    assert inbox["conversations"]["other"].pk not in ids


def test_an_api_send_by_a_personal_key_is_sent_by_its_user(tenant_a, inbox):
    from django.utils import timezone

    own = inbox["conversations"]["own"]
    with schema_context(tenant_a.schema_name):
        from conversations.models import Channel

        channel = Channel.objects.create(phone_number_id="666000111", waba_id="666000222")
        Contact.objects.filter(pk=own.contact_id).update(wa_id="15550660000", last_inbound_at=timezone.now())
        Conversation.objects.filter(pk=own.pk).update(channel=channel)
    response = api_client(tenant_a, inbox["key"]).post(
        f"/api/v1/conversations/{own.pk}/messages/",
        {"type": "text", "text": "hi"},
        content_type="application/json",
    )
    assert response.status_code == 201, response.content
    with schema_context(tenant_a.schema_name):
        assert Message.objects.get(pk=response.json()["id"]).sender_id == inbox["agent"].pk
