"""The inbox socket end to end through the real ASGI stack (host → tenant, session auth), the Redis
channel layer and PostgreSQL. The socket's DB calls run in other threads, so these tests commit their
rows (the `committed` fixture) and remove them afterwards."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.sessions.models import Session
from django.test import Client
from django_tenants.utils import schema_context

from conftest import PASSWORD
from conversations import services
from conversations.models import Conversation, InboxEvent, Message
from crm.models import Contact
from crm.services import create_agent
from tenants.db import connection

SCHEMA = "alpha"


@pytest.fixture
def committed(django_db_setup: Any, django_db_blocker: Any) -> Iterator[dict[str, Any]]:
    """Rows committed in alpha's schema, deleted again at the end."""
    made: dict[str, Any] = {"users": [], "contacts": []}
    with django_db_blocker.unblock():
        yield made
        with schema_context(SCHEMA):
            conversation_ids = list(
                Conversation.objects.filter(contact__in=made["contacts"]).values_list("pk", flat=True)
            )
            InboxEvent.objects.filter(conversation_id__in=conversation_ids).delete()
            Message.objects.filter(conversation_id__in=conversation_ids).delete()
            Conversation.objects.filter(pk__in=conversation_ids).delete()
            Contact.objects.filter(pk__in=[c.pk for c in made["contacts"]]).delete()
            get_user_model().objects.filter(pk__in=[u.pk for u in made["users"]]).delete()
            Session.objects.all().delete()
        connection.set_schema_to_public()


def _agent(made: dict[str, Any], email: str, role: str = "agent") -> Any:
    with schema_context(SCHEMA):
        user = create_agent(email=email, password=PASSWORD, role=role, name=email.split("@")[0].title()).user
    made["users"].append(user)
    return user


def _conversation(made: dict[str, Any], phone: str, **fields: Any) -> Conversation:
    with schema_context(SCHEMA):
        contact = Contact.objects.create(name=f"Socket {phone[-4:]}", phone=phone)
        made["contacts"].append(contact)
        return Conversation.objects.create(contact=contact, **fields)


def _cookie_for(user: Any, host: str = "alpha.localhost") -> str:
    client = Client(HTTP_HOST=host)
    with schema_context(SCHEMA):
        client.force_login(user)
    return f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"


async def _connect(cookie: str | None, host: str = "alpha.localhost") -> tuple[WebsocketCommunicator, bool]:
    from config.asgi import application

    headers = [(b"host", host.encode()), (b"origin", f"http://{host}".encode())]
    if cookie:
        headers.append((b"cookie", cookie.encode()))
    socket = WebsocketCommunicator(application, "/ws/inbox/", headers=headers)
    connected, _ = await socket.connect()
    return socket, connected


async def _hello(socket: WebsocketCommunicator) -> dict[str, Any]:
    hello = await socket.receive_json_from(timeout=5)
    assert hello["type"] == "hello"
    return hello


async def _events(socket: WebsocketCommunicator, *, wait: float = 0.5) -> list[dict[str, Any]]:
    """Everything the socket sends until it has been quiet for `wait` seconds."""
    out = []
    while not await socket.receive_nothing(timeout=wait):
        out.append(await socket.receive_json_from(timeout=5))
    return out


def _in_schema(func: Any, *args: Any, **kwargs: Any) -> Any:
    def run() -> Any:
        with schema_context(SCHEMA):
            return func(*args, **kwargs)

    return sync_to_async(run)()


async def test_a_socket_without_a_session_is_refused(committed):
    socket, connected = await _connect(None)
    assert not connected
    await socket.disconnect()


async def test_a_session_of_another_tenant_is_refused_on_this_host(committed):
    user = await sync_to_async(_agent)(committed, "sock-a@alpha.test")
    cookie = await sync_to_async(_cookie_for)(user)
    socket, connected = await _connect(cookie, host="beta.localhost")
    assert not connected
    await socket.disconnect()


async def test_events_reach_only_the_agents_allowed_to_see_the_conversation(committed):
    ann = await sync_to_async(_agent)(committed, "ann@alpha.test")
    bob = await sync_to_async(_agent)(committed, "bob@alpha.test")
    boss = await sync_to_async(_agent)(committed, "boss@alpha.test", "supervisor")
    anns = await sync_to_async(_conversation)(committed, "+15550009001", assignee=ann)
    shared = await sync_to_async(_conversation)(committed, "+15550009002")
    sockets = {}
    for name, user in (("ann", ann), ("bob", bob), ("boss", boss)):
        socket, connected = await _connect(await sync_to_async(_cookie_for)(user))
        assert connected
        await _hello(socket)
        sockets[name] = socket

    await _in_schema(services.add_private_note, conversation=anns, text="for ann", author=ann)
    got = {name: await _events(s) for name, s in sockets.items()}
    assert [e["conversation"] for e in got["ann"]] == [anns.pk]
    assert [e["conversation"] for e in got["boss"]] == [anns.pk]
    assert got["bob"] == []

    await _in_schema(services.add_private_note, conversation=shared, text="for all", author=boss)
    got = {name: await _events(s) for name, s in sockets.items()}
    assert all([e["conversation"] for e in events] == [shared.pk] for events in got.values()), got
    for socket in sockets.values():
        await socket.disconnect()


async def test_the_agent_who_loses_a_conversation_hears_about_it(committed):
    ann = await sync_to_async(_agent)(committed, "ann2@alpha.test")
    bob = await sync_to_async(_agent)(committed, "bob2@alpha.test")
    boss = await sync_to_async(_agent)(committed, "boss2@alpha.test", "admin")
    conv = await sync_to_async(_conversation)(committed, "+15550009003", assignee=ann)
    ann_socket, _ = await _connect(await sync_to_async(_cookie_for)(ann))
    bob_socket, _ = await _connect(await sync_to_async(_cookie_for)(bob))
    await _hello(ann_socket)
    await _hello(bob_socket)
    await _in_schema(services.assign_conversation, conversation=conv, assignee=bob, team=None, by=boss)
    ann_events = [e["type"] for e in await _events(ann_socket)]
    bob_events = [e["type"] for e in await _events(bob_socket)]
    assert "conversation.assigned" in ann_events
    assert "conversation.assigned" in bob_events
    await ann_socket.disconnect()
    await bob_socket.disconnect()


async def test_a_reconnecting_socket_catches_up_on_what_it_missed(committed):
    ann = await sync_to_async(_agent)(committed, "ann3@alpha.test")
    conv = await sync_to_async(_conversation)(committed, "+15550009004", assignee=ann)
    cookie = await sync_to_async(_cookie_for)(ann)
    socket, _ = await _connect(cookie)
    seq = (await _hello(socket))["seq"]
    await socket.disconnect()

    notes = []
    for i in range(3):
        notes.append(
            await _in_schema(services.add_private_note, conversation=conv, text=f"missed {i}", author=ann)
        )

    socket, _ = await _connect(cookie)
    await _hello(socket)
    await socket.send_json_to({"type": "resume", "after": seq})
    events = await _events(socket)
    created = [e["message"] for e in events if e["type"] == "message.created"]
    # A few seconds before `seq` are replayed too (commits land out of id order); the browser drops
    # the sequence numbers it already has.
    assert created[-3:] == [n.pk for n in notes]
    assert events[-1]["type"] == "resumed"
    # Replaying again sends nothing twice on the same socket.
    await socket.send_json_to({"type": "resume", "after": seq})
    assert [e for e in await _events(socket) if e["type"] != "resumed"] == []
    await socket.disconnect()


async def test_catch_up_leaves_out_conversations_the_agent_may_not_see(committed):
    ann = await sync_to_async(_agent)(committed, "ann4@alpha.test")
    bob = await sync_to_async(_agent)(committed, "bob4@alpha.test")
    bobs = await sync_to_async(_conversation)(committed, "+15550009005", assignee=bob)
    socket, _ = await _connect(await sync_to_async(_cookie_for)(ann))
    seq = (await _hello(socket))["seq"]
    await _in_schema(services.add_private_note, conversation=bobs, text="bob only", author=bob)
    await socket.send_json_to({"type": "resume", "after": seq})
    assert await _events(socket) == [{"type": "resumed", "count": 0}]
    await socket.disconnect()


async def test_agents_viewing_the_same_conversation_see_each_other(committed):
    ann = await sync_to_async(_agent)(committed, "ann5@alpha.test")
    bob = await sync_to_async(_agent)(committed, "bob5@alpha.test")
    conv = await sync_to_async(_conversation)(committed, "+15550009006")
    ann_socket, _ = await _connect(await sync_to_async(_cookie_for)(ann))
    bob_socket, _ = await _connect(await sync_to_async(_cookie_for)(bob))
    await _hello(ann_socket)
    await _hello(bob_socket)
    await ann_socket.send_json_to({"type": "view", "conversation": conv.pk})
    first = await _events(ann_socket)
    assert [v["name"] for v in first[-1]["viewers"]] == ["Ann5"]
    await bob_socket.send_json_to({"type": "view", "conversation": conv.pk})
    both = await _events(ann_socket)
    assert sorted(v["name"] for v in both[-1]["viewers"]) == ["Ann5", "Bob5"]
    await bob_socket.disconnect()
    after = await _events(ann_socket)
    assert [v["name"] for v in after[-1]["viewers"]] == ["Ann5"]
    await ann_socket.disconnect()


async def test_viewing_a_conversation_the_agent_may_not_see_is_refused(committed):
    ann = await sync_to_async(_agent)(committed, "ann6@alpha.test")
    bob = await sync_to_async(_agent)(committed, "bob6@alpha.test")
    bobs = await sync_to_async(_conversation)(committed, "+15550009007", assignee=bob)
    socket, _ = await _connect(await sync_to_async(_cookie_for)(ann))
    await _hello(socket)
    await socket.send_json_to({"type": "view", "conversation": bobs.pk})
    assert await _events(socket) == [{"type": "error", "code": "not_found", "conversation": bobs.pk}]
    await socket.disconnect()


@pytest.mark.django_db
def test_group_names_carry_the_schema_and_stay_under_100_characters():
    # (Also makes pytest-django set the test database up when this module runs alone.)
    from conversations.groups import everything_group, team_group, unassigned_group, viewers_group

    schema = "t" * 63
    for name in (
        everything_group(schema),
        team_group(schema, 10**12),
        unassigned_group(schema),
        viewers_group(schema, 10**15),
    ):
        assert name.startswith(f"t.{schema}.") and len(name) < 100
