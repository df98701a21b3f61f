"""The bell's socket (/ws/notifications/) through the real ASGI stack, the Redis channel layer and
PostgreSQL. Its DB calls run in other threads, so these tests commit their rows and delete them after."""

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
from crm import actors, sessions
from crm.services import create_agent
from crm.services.notifications import notify
from tenants.db import connection

SCHEMA = "alpha"


@pytest.fixture
def committed(
    django_db_setup: Any, django_db_blocker: Any, monkeypatch: pytest.MonkeyPatch
) -> Iterator[list[Any]]:
    users: list[Any] = []
    monkeypatch.setattr(actors.send_notification_emails, "send", lambda ids: None)
    with django_db_blocker.unblock():
        yield users
        with schema_context(SCHEMA):
            get_user_model().objects.filter(pk__in=[u.pk for u in users]).delete()  # their notifications too
            Session.objects.all().delete()
        connection.set_schema_to_public()


def _agent(users: list[Any], email: str) -> Any:
    with schema_context(SCHEMA):
        user = create_agent(email=email, password=PASSWORD, role="agent", name=email.split("@")[0]).user
    users.append(user)
    return user


def _cookie_for(user: Any) -> str:
    client = Client(HTTP_HOST="alpha.localhost")
    with schema_context(SCHEMA):
        client.force_login(user)
    return f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"


async def _connect(cookie: str | None, host: str = "alpha.localhost") -> tuple[WebsocketCommunicator, bool]:
    from config.asgi import application

    headers = [(b"host", host.encode()), (b"origin", f"http://{host}".encode())]
    if cookie:
        headers.append((b"cookie", cookie.encode()))
    socket = WebsocketCommunicator(application, "/ws/notifications/", headers=headers)
    connected, _ = await socket.connect()
    return socket, connected


def _notify_in_schema(**kwargs: Any) -> Any:
    def run() -> Any:
        with schema_context(SCHEMA):
            return notify(**kwargs)

    return sync_to_async(run)()


async def _events(socket: WebsocketCommunicator, *, wait: float = 0.5) -> list[dict[str, Any]]:
    out = []
    while not await socket.receive_nothing(timeout=wait):
        out.append(await socket.receive_json_from(timeout=5))
    return out


async def test_a_socket_without_a_session_or_on_another_tenants_host_is_refused(committed):
    socket, connected = await _connect(None)
    assert not connected
    await socket.disconnect()
    ann = await sync_to_async(_agent)(committed, "sock-n0@alpha.test")
    socket, connected = await _connect(await sync_to_async(_cookie_for)(ann), host="beta.localhost")
    assert not connected
    await socket.disconnect()


async def test_a_notification_reaches_only_its_recipients_socket_as_ids(committed):
    ann = await sync_to_async(_agent)(committed, "sock-n1@alpha.test")
    bob = await sync_to_async(_agent)(committed, "sock-n2@alpha.test")
    ann_socket, ok_a = await _connect(await sync_to_async(_cookie_for)(ann))
    bob_socket, ok_b = await _connect(await sync_to_async(_cookie_for)(bob))
    assert ok_a and ok_b
    assert (await ann_socket.receive_json_from(timeout=5))["type"] == "hello"
    assert (await bob_socket.receive_json_from(timeout=5))["type"] == "hello"

    (row,) = await _notify_in_schema(recipients=[ann], kind="mention", title="<b>secret</b> title")
    got = await _events(ann_socket)
    assert got == [{"type": "notification.created", "notification": row.pk, "kind": "mention"}]
    assert await _events(bob_socket) == []
    await ann_socket.disconnect()
    await bob_socket.disconnect()


async def test_signing_out_closes_the_socket(committed):
    ann = await sync_to_async(_agent)(committed, "sock-n3@alpha.test")
    socket, connected = await _connect(await sync_to_async(_cookie_for)(ann))
    assert connected
    await socket.receive_json_from(timeout=5)

    def close() -> None:
        with schema_context(SCHEMA):
            sessions.close_user_sockets(user_id=ann.pk, code=sessions.CLOSE_SIGNED_OUT, reason="test")

    await sync_to_async(close)()
    output = await socket.receive_output(timeout=5)
    assert output["type"] == "websocket.close" and output["code"] == sessions.CLOSE_SIGNED_OUT
