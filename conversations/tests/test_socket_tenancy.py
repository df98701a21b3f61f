"""The socket is authenticated by the session of the host's tenant only."""

from __future__ import annotations

from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.sessions.models import Session
from django.test import Client
from django_tenants.utils import schema_context

from config.asgi import application


def _session_cookie_for(schema: str, email: str) -> str:
    with schema_context(schema):
        client = Client()
        client.force_login(get_user_model().objects.get(email=email))
        return client.cookies[settings.SESSION_COOKIE_NAME].value


def _connect(host: str, session_key: str | None) -> tuple[bool, object, dict | None]:
    async def run() -> tuple[bool, object, dict | None]:
        headers = [(b"host", host.encode()), (b"origin", f"http://{host}".encode())]
        if session_key:
            headers.append((b"cookie", f"{settings.SESSION_COOKIE_NAME}={session_key}".encode()))
        communicator = WebsocketCommunicator(application, "/ws/inbox/", headers=headers)
        connected, code = await communicator.connect()
        first = await communicator.receive_json_from() if connected else None
        await communicator.disconnect()
        return connected, code, first

    return async_to_sync(run)()


def _forget(schema: str, key: str) -> None:
    with schema_context(schema):
        Session.objects.filter(session_key=key).delete()


def test_an_agent_connects_on_their_own_tenants_host(committed_db):
    key = _session_cookie_for("alpha", "owner@alpha.test")
    try:
        connected, _, hello = _connect("alpha.localhost", key)
    finally:
        _forget("alpha", key)
    assert connected
    assert hello is not None and hello["type"] == "hello"


def test_an_agent_of_tenant_a_is_refused_on_tenant_bs_host(committed_db):
    key = _session_cookie_for("alpha", "owner@alpha.test")
    try:
        connected, code, _ = _connect("beta.localhost", key)
    finally:
        _forget("alpha", key)
    assert not connected
    assert code == 4401


def test_an_anonymous_socket_is_refused(committed_db):
    connected, code, _ = _connect("alpha.localhost", None)
    assert not connected
    assert code == 4401


def test_a_socket_on_an_unknown_host_is_refused(committed_db):
    connected, code, _ = _connect("nobody.localhost", None)
    assert not connected
    assert code == 4404
