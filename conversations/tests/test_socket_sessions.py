"""An open inbox socket after its session ends or its access changes: it is closed and hears nothing more.

Real sockets through the ASGI stack (host → tenant, session auth), the Redis channel layer and committed
rows, as in test_consumers.py.

Redis Pub/Sub ignores database numbers, so a socket may also hear other test runs' events for `alpha`
on the same Redis server: the assertions look for the close frame and for this test's conversations.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.tokens import default_token_generator
from django.contrib.sessions.models import Session
from django.test import Client
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode
from django_tenants.utils import schema_context

from conftest import PASSWORD
from conversations import consumers, services
from conversations.tests import test_consumers as socket_helpers
from conversations.tests.test_consumers import SCHEMA, _agent, _connect, _conversation, _hello, _in_schema
from crm import services as crm_services
from crm.models import Agent
from crm.sessions import CLOSE_ACCESS_CHANGED, CLOSE_SIGNED_OUT, account_group, session_group

NEW_PASSWORD = "Fresh-Socket-Pass-31"
# The committed-rows fixture of the socket tests, shared.
committed = socket_helpers.committed


def _signed_in(user: Any) -> tuple[Client, str]:
    """A browser with its own session for this user, and its cookie header for the socket."""
    client = Client(HTTP_HOST="alpha.localhost")
    with schema_context(SCHEMA):
        client.force_login(user)
    return client, f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"


async def _open(user: Any) -> tuple[Client, WebsocketCommunicator]:
    client, cookie = await sync_to_async(_signed_in)(user)
    socket, connected = await _connect(cookie)
    assert connected
    await _hello(socket)
    return client, socket


async def _close_code(socket: WebsocketCommunicator) -> int:
    """The code of the close frame, skipping whatever events arrived before it."""
    while True:
        output = await socket.receive_output(timeout=5)
        if output["type"] == "websocket.close":
            return int(output["code"])


async def _conversations_heard(socket: WebsocketCommunicator, *, wait: float = 0.5) -> set[int]:
    heard = set()
    while not await socket.receive_nothing(timeout=wait):
        output = await socket.receive_output(timeout=5)
        if output["type"] == "websocket.send":
            heard.add(json.loads(output["text"]).get("conversation"))
    return heard


async def _note(conversation: Any, author: Any, text: str = "after") -> None:
    await _in_schema(services.add_private_note, conversation=conversation, text=text, author=author)


async def test_signing_out_closes_that_sessions_socket_and_no_event_follows(committed):
    ann = await sync_to_async(_agent)(committed, "out.ann@alpha.test")
    shared = await sync_to_async(_conversation)(committed, "+15550019001")
    browser, socket = await _open(ann)
    _, other_device = await _open(ann)

    assert (await sync_to_async(browser.post)("/logout/")).status_code == 302
    assert await _close_code(socket) == CLOSE_SIGNED_OUT

    await _note(shared, ann)
    assert shared.pk not in await _conversations_heard(socket)
    # The user's other session was not signed out: its socket stays open and hears the event.
    assert shared.pk in await _conversations_heard(other_device)
    await socket.disconnect()
    await other_device.disconnect()


def _reset_password(user: Any) -> int:
    with schema_context(SCHEMA):
        uid = urlsafe_base64_encode(force_bytes(user.pk))
        token = default_token_generator.make_token(user)
    client = Client(HTTP_HOST="alpha.localhost")
    form_page = client.get(f"/password-reset/{uid}/{token}/", follow=True)
    response = client.post(
        form_page.redirect_chain[-1][0], {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD}
    )
    return int(response.status_code)


async def test_a_password_reset_closes_every_socket_of_the_user(committed):
    ann = await sync_to_async(_agent)(committed, "reset.ann@alpha.test")
    shared = await sync_to_async(_conversation)(committed, "+15550019002")
    _, first = await _open(ann)
    _, second = await _open(ann)

    assert await sync_to_async(_reset_password)(ann) == 302
    assert await _close_code(first) == CLOSE_SIGNED_OUT
    assert await _close_code(second) == CLOSE_SIGNED_OUT
    await _note(shared, ann)
    assert shared.pk not in await _conversations_heard(first)
    await first.disconnect()
    await second.disconnect()


async def test_a_password_change_in_the_admin_closes_the_users_sockets(committed):
    boss = await sync_to_async(_agent)(committed, "change.boss@alpha.test", "admin")
    browser, socket = await _open(boss)
    response = await sync_to_async(browser.post)(
        "/admin/password_change/",
        {"old_password": PASSWORD, "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
    )
    assert response.status_code == 302
    assert await _close_code(socket) == CLOSE_SIGNED_OUT
    await socket.disconnect()


async def test_deactivating_an_agent_closes_their_socket_and_a_new_one_is_refused(committed):
    ann = await sync_to_async(_agent)(committed, "gone.ann@alpha.test")
    shared = await sync_to_async(_conversation)(committed, "+15550019003")
    _, cookie = await sync_to_async(_signed_in)(ann)
    socket, _ = await _connect(cookie)
    await _hello(socket)

    def deactivate() -> int:
        owner_browser = Client(HTTP_HOST="alpha.localhost")
        with schema_context(SCHEMA):
            owner_browser.force_login(get_user_model().objects.get(email="owner@alpha.test"))
            agent = Agent.objects.get(user=ann)
        return int(
            owner_browser.post(f"/settings/team/agents/{agent.pk}/active/", {"active": "0"}).status_code
        )

    try:
        assert await sync_to_async(deactivate)() == 302
        assert await _close_code(socket) == CLOSE_SIGNED_OUT
        await _note(shared, ann)
        assert shared.pk not in await _conversations_heard(socket)
        again, connected = await _connect(cookie)
        assert not connected
        await again.disconnect()
    finally:
        await socket.disconnect()


async def test_a_role_change_closes_the_socket_and_the_next_one_sees_only_what_the_new_role_may(committed):
    boss = await sync_to_async(_agent)(committed, "demoted.boss@alpha.test", "supervisor")
    bob = await sync_to_async(_agent)(committed, "demoted.bob@alpha.test")
    bobs = await sync_to_async(_conversation)(committed, "+15550019004", assignee=bob)
    _, cookie = await sync_to_async(_signed_in)(boss)
    socket, _ = await _connect(cookie)
    await _hello(socket)

    agent = await _in_schema(lambda: Agent.objects.get(user=boss))
    await _in_schema(crm_services.change_agent_role, agent=agent, role="agent", by_role="owner")
    assert await _close_code(socket) == CLOSE_ACCESS_CHANGED
    await _note(bobs, bob, "for bob only")
    assert bobs.pk not in await _conversations_heard(socket)
    await socket.disconnect()

    # The browser reconnects with the same session: now an agent, it no longer hears bob's conversation.
    socket, connected = await _connect(cookie)
    assert connected
    await _hello(socket)
    await _note(bobs, bob, "still bob's")
    assert bobs.pk not in await _conversations_heard(socket)
    await socket.disconnect()


async def test_a_socket_whose_session_vanished_closes_at_its_next_check(committed, monkeypatch):
    # No close message at all (a deleted session, a password changed from a shell): the socket's own
    # re-check catches it before it forwards anything.
    monkeypatch.setattr(consumers, "SESSION_RECHECK_SECONDS", 0.0)
    ann = await sync_to_async(_agent)(committed, "vanished.ann@alpha.test")
    shared = await sync_to_async(_conversation)(committed, "+15550019005")
    _, cookie = await sync_to_async(_signed_in)(ann)
    socket, _ = await _connect(cookie)
    await _hello(socket)
    await _in_schema(lambda: Session.objects.filter(session_key=cookie.split("=", 1)[1]).delete())
    await _note(shared, ann)
    assert await _close_code(socket) == CLOSE_SIGNED_OUT
    assert shared.pk not in await _conversations_heard(socket)
    await socket.disconnect()


@pytest.mark.django_db
def test_control_group_names_carry_the_schema_stay_short_and_hide_the_session_key():
    schema = "t" * 63
    key = "k" * 40
    for name in (account_group(schema, 10**12), session_group(schema, key)):
        assert name.startswith(f"t.{schema}.") and len(name) < 100
    assert key not in session_group(schema, key)
