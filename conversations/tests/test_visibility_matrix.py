"""Who may see and do what with a conversation, on every surface that reaches one: role by endpoint.

One rule (conversations.models.visibility_q): owners, admins and supervisors see every conversation; an
agent sees those assigned to them, those of their teams and the shared queue (neither assignee nor
team). An agent's personal API key is that agent; an integration key (supervisor or above) sees all.
Not visible answers 404, never 403, and a refused write writes nothing. Another tenant's key is unknown
here (401); another tenant's session is no session here (the API answers 401, pages send to sign-in).

The rows are made once for the module, committed, in two tenants of its own (dropped at the end); each
test's own writes are rolled back with its transaction.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone
from django_tenants.utils import schema_context

from conftest import PASSWORD
from conversations.models import Conversation, Message
from tenants.db import connection

SLUG = "vismatrix"
OTHER_SLUG = "vismatrixo"
HOST = f"{SLUG}.localhost"

# The conversations, by how they relate to the agent under test.
CONVERSATIONS = ("own", "team", "other_agent", "shared")
AGENT_SEES = {"own", "team", "shared"}

# Principals: who asks, and through what (a browser session or an API key).
SESSIONS = ("owner", "admin", "supervisor", "agent")
KEYS = ("personal_key", "integration_key")
OUTSIDERS = ("other_tenant_user", "other_tenant_key")


def sees(principal: str, conversation: str) -> bool:
    if principal in ("agent", "personal_key"):
        return conversation in AGENT_SEES
    return principal in ("owner", "admin", "supervisor", "integration_key")


@dataclass
class World:
    tenant: Any
    channel_id: int
    users: dict[str, Any]
    keys: dict[str, str]
    conversations: dict[str, int] = field(default_factory=dict)
    contacts: dict[str, int] = field(default_factory=dict)
    contact_names: dict[str, str] = field(default_factory=dict)
    inbound: dict[str, int] = field(default_factory=dict)  # the contact's message, per conversation
    failed: dict[str, int] = field(default_factory=dict)  # a failed outbound message per conversation
    other_tenant: Any = None
    other_owner: Any = None


def _drop(slug: str) -> None:
    from tenants.models import Tenant

    tenant = Tenant.objects.filter(slug=slug).first()
    if tenant is not None:
        tenant.delete(force_drop=True)


@pytest.fixture(scope="module")
def world(django_db_setup: Any, django_db_blocker: Any) -> Iterator[World]:
    from conversations.models import Channel
    from crm import services as crm_services
    from crm.models import Contact
    from onboarding.services import onboard_tenant

    with django_db_blocker.unblock():
        connection.set_schema_to_public()
        for slug in (SLUG, OTHER_SLUG):
            _drop(slug)  # left over by a run that was killed
        try:
            tenant = onboard_tenant(
                slug=SLUG, name="Visibility", owner_email=f"owner@{SLUG}.test", owner_password=PASSWORD
            ).tenant
            other = onboard_tenant(
                slug=OTHER_SLUG,
                name="Elsewhere",
                owner_email=f"owner@{OTHER_SLUG}.test",
                owner_password=PASSWORD,
            ).tenant
            with schema_context(tenant.schema_name):
                from django.contrib.auth import get_user_model

                users = {"owner": get_user_model().objects.get(email=f"owner@{SLUG}.test")}
                for role in ("admin", "supervisor", "agent"):
                    users[role] = crm_services.create_agent(
                        email=f"{role}@{SLUG}.test", password=PASSWORD, role=role, name=role.title()
                    ).user
                users["other_agent"] = crm_services.create_agent(
                    email=f"other@{SLUG}.test", password=PASSWORD, role="agent", name="Other"
                ).user
                team = crm_services.save_team(name="Agent's team", member_ids=[users["agent"].agent.pk])
                crm_services.save_team(name="Other team", member_ids=[users["other_agent"].agent.pk])
                channel = Channel.objects.create(
                    phone_number_id="777000111", waba_id="777000222", display_phone="+15550770001"
                )
                keys = {
                    "personal_key": crm_services.create_api_key(
                        name="agent's", kind="personal", user=users["agent"]
                    ).raw,
                    "integration_key": crm_services.create_api_key(name="crm sync", role="supervisor").raw,
                }
                world = World(tenant=tenant, channel_id=channel.pk, users=users, keys=keys)
                placement = {
                    "own": {"assignee": users["agent"]},
                    "team": {"team": team},
                    "other_agent": {"assignee": users["other_agent"]},
                    "shared": {},
                }
                now = timezone.now()
                for i, (name, fields) in enumerate(placement.items()):
                    phone = f"+1555077{i:04d}"
                    contact = Contact.objects.create(
                        name=f"Matrix {name}", phone=phone, wa_id=phone[1:], last_inbound_at=now
                    )
                    conversation = Conversation.objects.create(
                        contact=contact, channel=channel, last_message_at=now, last_inbound_at=now, **fields
                    )
                    inbound = Message.objects.create(
                        conversation=conversation,
                        direction=Message.Direction.INBOUND,
                        text=f"hello from {name}",
                        preview=f"hello from {name}",
                        status=Message.Status.RECEIVED,
                        wamid=f"wamid.matrix.{i}",
                        timestamp=now - dt.timedelta(seconds=5),
                    )
                    failed = Message.objects.create(
                        conversation=conversation,
                        direction=Message.Direction.OUTBOUND,
                        text="did not go",
                        payload={"text": {"body": "did not go"}},
                        status=Message.Status.FAILED,
                        error_code=131026,
                        timestamp=now - dt.timedelta(seconds=1),
                    )
                    world.conversations[name] = conversation.pk
                    world.contacts[name] = contact.pk
                    world.contact_names[name] = contact.name
                    world.failed[name] = failed.pk
                    world.inbound[name] = inbound.pk
            with schema_context(other.schema_name):
                from django.contrib.auth import get_user_model

                world.other_tenant = other
                world.other_owner = get_user_model().objects.get(email=f"owner@{OTHER_SLUG}.test")
                world.keys["other_tenant_key"] = crm_services.create_api_key(name="theirs", role="owner").raw
            connection.set_schema_to_public()
            yield world
        finally:
            connection.set_schema_to_public()
            for slug in (SLUG, OTHER_SLUG):
                _drop(slug)


def client_for(world: World, principal: str) -> Client:
    if principal in SESSIONS:
        client = Client(HTTP_HOST=HOST)
        with schema_context(world.tenant.schema_name):
            client.force_login(world.users[principal])
        return client
    if principal == "other_tenant_user":
        # Signed in on the other tenant's host; the same cookie on this host is no session here.
        client = Client(HTTP_HOST=HOST)
        with schema_context(world.other_tenant.schema_name):
            client.force_login(world.other_owner)
        return client
    return Client(HTTP_HOST=HOST, HTTP_AUTHORIZATION=f"Bearer {world.keys[principal]}")


# --- what each endpoint does and how its answer is read ---------------------------------------------


def _messages_with(world: World, name: str, text: str) -> int:
    """Messages with this text in any conversation of the contact (a start may open a new one)."""
    with schema_context(world.tenant.schema_name):
        return Message.objects.filter(text=text, conversation__contact_id=world.contacts[name]).count()


def _status_of(world: World, name: str) -> str:
    with schema_context(world.tenant.schema_name):
        return Conversation.objects.get(pk=world.conversations[name]).status


def _failed_still(world: World, name: str) -> bool:
    with schema_context(world.tenant.schema_name):
        return Message.objects.get(pk=world.failed[name]).status == Message.Status.FAILED


@dataclass(frozen=True)
class Endpoint:
    name: str
    surface: str  # "api" or "page"
    call: Callable[[Client, World, str], Any]
    ok: int = 200
    # For lists: whether the conversation is listed (then `ok` is the status for every member).
    listed: Callable[[Any, World, str], bool] | None = None
    # For writes: nothing was written (checked when the call was refused).
    unchanged: Callable[[World, str], bool] | None = None
    hidden: int = 404  # the answer for a conversation the caller may not see


def _api_ids(response: Any, world: World, name: str) -> bool:
    return world.conversations[name] in {row["id"] for row in response.json()["results"]}


def _row_shown(response: Any, world: World, name: str) -> bool:
    return f'id="conv-{world.conversations[name]}"'.encode() in response.content


def _linked(response: Any, world: World, name: str) -> bool:
    return re.search(rf'href="/inbox/c/{world.conversations[name]}/"'.encode(), response.content) is not None


def _json(payload: dict[str, Any]) -> dict[str, Any]:
    return {"data": payload, "content_type": "application/json"}


ENDPOINTS = [
    # API v1
    Endpoint(
        "api list",
        "api",
        lambda c, w, n: c.get("/api/v1/conversations/", {"page_size": 100}),
        listed=_api_ids,
    ),
    Endpoint(
        "api list filtered by contact",
        "api",
        lambda c, w, n: c.get("/api/v1/conversations/", {"contact": w.contacts[n]}),
        listed=_api_ids,
    ),
    Endpoint("api detail", "api", lambda c, w, n: c.get(f"/api/v1/conversations/{w.conversations[n]}/")),
    Endpoint(
        "api messages",
        "api",
        lambda c, w, n: c.get(f"/api/v1/conversations/{w.conversations[n]}/messages/"),
    ),
    Endpoint(
        "api send",
        "api",
        lambda c, w, n: c.post(
            f"/api/v1/conversations/{w.conversations[n]}/messages/",
            **_json({"type": "text", "text": "api send"}),
        ),
        ok=201,
        unchanged=lambda w, n: _messages_with(w, n, "api send") == 0,
    ),
    Endpoint(
        "api mark read",
        "api",
        lambda c, w, n: c.post(
            f"/api/v1/conversations/{w.conversations[n]}/messages/",
            **_json({"type": "read", "message": w.inbound[n]}),
        ),
    ),
    Endpoint(
        "api update",
        "api",
        lambda c, w, n: c.patch(
            f"/api/v1/conversations/{w.conversations[n]}/", **_json({"status": "pending"})
        ),
        unchanged=lambda w, n: _status_of(w, n) == "open",
    ),
    Endpoint(
        "api retry",
        "api",
        lambda c, w, n: c.post(f"/api/v1/messages/{w.failed[n]}/retry/"),
        unchanged=_failed_still,
    ),
    Endpoint(
        "api start",
        "api",
        lambda c, w, n: c.post(
            "/api/v1/messages/",
            **_json({"contact": w.contacts[n], "channel": w.channel_id, "type": "text", "text": "api start"}),
        ),
        ok=201,
        unchanged=lambda w, n: _messages_with(w, n, "api start") == 0,
    ),
    # The inbox's pages and fragments
    Endpoint("page thread", "page", lambda c, w, n: c.get(f"/inbox/c/{w.conversations[n]}/")),
    Endpoint(
        "page thread fragment",
        "page",
        lambda c, w, n: c.get(f"/inbox/c/{w.conversations[n]}/", headers={"HX-Request": "true"}),
    ),
    Endpoint("page head", "page", lambda c, w, n: c.get(f"/inbox/c/{w.conversations[n]}/head/")),
    Endpoint("page messages", "page", lambda c, w, n: c.get(f"/inbox/c/{w.conversations[n]}/messages/")),
    Endpoint("page contact panel", "page", lambda c, w, n: c.get(f"/inbox/c/{w.conversations[n]}/contact/")),
    Endpoint("page message", "page", lambda c, w, n: c.get(f"/inbox/m/{w.failed[n]}/")),
    # A row the viewer may not see is "not in your list" (204), as for one that does not exist.
    Endpoint(
        "page row",
        "page",
        lambda c, w, n: c.get(f"/inbox/c/{w.conversations[n]}/row/", {"tab": "all", "status": "any"}),
        hidden=204,
    ),
    Endpoint(
        "page list",
        "page",
        lambda c, w, n: c.get("/inbox/list/", {"tab": "all", "status": "any"}),
        listed=_row_shown,
    ),
    Endpoint(
        "page search",
        "page",
        lambda c, w, n: c.get("/inbox/list/", {"tab": "all", "status": "any", "q": w.contact_names[n]}),
        listed=_row_shown,
    ),
    Endpoint(
        "page send",
        "page",
        lambda c, w, n: c.post(f"/inbox/c/{w.conversations[n]}/send/", {"text": "page send"}),
        unchanged=lambda w, n: _messages_with(w, n, "page send") == 0,
    ),
    Endpoint(
        "page note",
        "page",
        lambda c, w, n: c.post(f"/inbox/c/{w.conversations[n]}/note/", {"text": "page note"}),
        unchanged=lambda w, n: _messages_with(w, n, "page note") == 0,
    ),
    Endpoint(
        "page retry",
        "page",
        lambda c, w, n: c.post(f"/inbox/m/{w.failed[n]}/retry/"),
        unchanged=_failed_still,
    ),
    # The CRM's contact page links the contact's conversations the viewer may see.
    Endpoint(
        "crm contact page", "page", lambda c, w, n: c.get(f"/contacts/{w.contacts[n]}/"), listed=_linked
    ),
]


def _cases() -> list[Any]:
    cases = []
    for endpoint in ENDPOINTS:
        principals = (*SESSIONS, "other_tenant_user")
        if endpoint.surface == "api":
            principals = (*SESSIONS, *KEYS, *OUTSIDERS)
        for principal in principals:
            cases.append(pytest.param(endpoint, principal, id=f"{endpoint.name}-{principal}"))
    return cases


@pytest.fixture(autouse=True)
def _forget_idempotency_and_rates(settings: Any) -> None:
    import redis

    client = redis.Redis.from_url(settings.REDIS_URL)
    for key in client.scan_iter(f"*{SLUG}*"):
        client.delete(key)


@pytest.mark.parametrize(("endpoint", "principal"), _cases())
def test_each_surface_answers_each_caller_by_the_one_visibility_rule(
    db: None, world: World, endpoint: Endpoint, principal: str
) -> None:
    client = client_for(world, principal)
    for name in CONVERSATIONS:
        response = endpoint.call(client, world, name)
        where = f"{endpoint.name} as {principal} on the {name} conversation"
        if principal in OUTSIDERS:
            expected = 401 if endpoint.surface == "api" else 302
            assert response.status_code == expected, (where, response.status_code, response.content[:300])
            if endpoint.unchanged is not None:
                assert endpoint.unchanged(world, name), f"{where}: a refused write wrote"
            continue
        visible = sees(principal, name)
        if endpoint.listed is not None:
            assert response.status_code == endpoint.ok, (where, response.status_code, response.content[:300])
            assert endpoint.listed(response, world, name) == visible, where
            continue
        expected = endpoint.ok if visible else endpoint.hidden
        assert response.status_code == expected, (where, response.status_code, response.content[:300])
        if not visible and endpoint.unchanged is not None:
            assert endpoint.unchanged(world, name), f"{where}: a refused write wrote"
        if not visible and endpoint.hidden == 404 and endpoint.surface == "api":
            # The same answer as for a conversation that does not exist: nothing tells them apart.
            assert response.json()["error"]["code"] == "not_found", where


def test_a_hidden_conversation_answers_exactly_as_a_missing_one(db: None, world: World) -> None:
    client = client_for(world, "personal_key")
    hidden = client.get(f"/api/v1/conversations/{world.conversations['other_agent']}/")
    missing = client.get("/api/v1/conversations/999999999/")
    assert hidden.status_code == missing.status_code == 404
    hidden_body, missing_body = hidden.json(), missing.json()
    assert hidden_body == missing_body


def test_a_message_list_of_a_visible_conversation_holds_only_its_messages(db: None, world: World) -> None:
    client = client_for(world, "personal_key")
    response = client.get(f"/api/v1/conversations/{world.conversations['own']}/messages/")
    assert {row["conversation"] for row in response.json()["results"]} == {world.conversations["own"]}
