"""Many sockets at once (issue 20, benchmarks/sockets.py): the periodic re-checks of the sockets that one
event wakes are looked up together, by the same rules as one by one, and an event fans out to the sockets
of its own tenant only.

The socket tests' committed rows and helpers (test_consumers.py): the socket's DB calls run in other
threads."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.sessions.models import Session
from django.test import Client
from django.utils import timezone
from django_tenants.utils import schema_context

from conftest import PASSWORD
from conversations import consumers, services
from conversations.tests import test_consumers as socket_helpers
from conversations.tests.test_consumers import SCHEMA, _agent, _connect, _conversation, _hello
from crm import sessions
from crm.models import Agent, Team
from crm.services import create_agent

committed = socket_helpers.committed


def _session_key(schema: str, user: Any) -> str:
    client = Client(HTTP_HOST=f"{schema}.localhost")
    with schema_context(schema):
        client.force_login(user)
    return str(client.cookies[settings.SESSION_COOKIE_NAME].value)


@pytest.mark.django_db
def test_sessions_looked_up_together_are_judged_as_one_by_one(tenant_a: Any, owner_b: Any) -> None:
    with schema_context("alpha"):
        ann, bob, cara, dan = (
            create_agent(email=f"{name}.many@alpha.test", password=PASSWORD, role="agent").user
            for name in ("ann", "bob", "cara", "dan")
        )
    keys = {name: _session_key("alpha", user) for name, user in (("ann", ann), ("bob", bob), ("cara", cara))}
    keys["dan"] = _session_key("alpha", dan)
    keys["beta"] = _session_key("beta", owner_b)  # a session of another tenant
    keys["forged"] = "x" * 32
    with schema_context("alpha"):
        get_user_model().objects.filter(pk=bob.pk).update(is_active=False)  # deactivated
        cara.set_password("Another-Pass-77")  # the session's hash no longer matches
        cara.save()
        Session.objects.filter(session_key=keys["dan"]).update(expire_date=timezone.now() - dt.timedelta(1))
        together = sessions.users_for_sessions([*keys.values(), ""])
        one_by_one = {key: sessions.user_for_session(key) for key in keys.values()}
    assert {key: user.pk for key, user in together.items()} == {
        key: user.pk for key, user in one_by_one.items() if user is not None
    }
    assert {key: user.pk for key, user in together.items()} == {keys["ann"]: ann.pk}
    with schema_context("beta"):
        assert {key: user.pk for key, user in sessions.users_for_sessions(keys.values()).items()} == {
            keys["beta"]: owner_b.pk
        }


@pytest.mark.django_db
def test_a_batch_of_rechecks_spanning_tenants_looks_each_session_up_in_its_own_schema(
    tenant_a: Any, owner_a: Any, owner_b: Any
) -> None:
    with schema_context("alpha"):
        ann = create_agent(email="ann.batch@alpha.test", password=PASSWORD, role="agent").user
        team = Team.objects.create(name="Batch team")
        team.members.add(Agent.objects.get(user=ann))
    ann_key, owner_key, beta_key = (
        _session_key("alpha", ann),
        _session_key("alpha", owner_a),
        _session_key("beta", owner_b),
    )
    found = consumers._access_batch(
        [("alpha", ann_key), ("alpha", owner_key), ("beta", ann_key), ("alpha", beta_key), ("beta", beta_key)]
    )
    assert found == {
        ("alpha", ann_key): (ann.pk, "agent", (team.pk,)),
        ("alpha", owner_key): (owner_a.pk, "owner", ()),
        ("beta", ann_key): None,
        ("alpha", beta_key): None,
        ("beta", beta_key): (owner_b.pk, "owner", ()),
    }


async def test_rechecks_asked_for_together_are_one_lookup() -> None:
    calls: list[list[tuple[str, str | None]]] = []

    def lookup(requests: list[tuple[str, str | None]]) -> dict[Any, Any]:
        calls.append(requests)
        return {request: (7, "agent", ()) for request in requests if request[1] != "gone"}

    checks = consumers._Batches(lookup, consumers.ACCESS_BATCH_WINDOW)
    results = await asyncio.gather(*(checks.submit(("alpha", key)) for key in ("k1", "k2", "gone", "k3")))
    assert results == [(7, "agent", ()), (7, "agent", ()), None, (7, "agent", ())]
    assert len(calls) == 1 and len(calls[0]) == 4

    def broken(requests: list[tuple[str, str | None]]) -> dict[Any, Any]:
        raise RuntimeError("database down")

    checks.lookup = broken
    outcomes = await asyncio.gather(
        checks.submit(("alpha", "k1")), checks.submit(("alpha", "k2")), return_exceptions=True
    )
    assert all(isinstance(outcome, RuntimeError) for outcome in outcomes)


@pytest.mark.django_db
def test_the_pings_of_many_sockets_touch_their_agents_in_their_own_tenant(
    tenant_a: Any, owner_b: Any
) -> None:
    with schema_context("alpha"):
        ann = create_agent(email="ann.touch@alpha.test", password=PASSWORD, role="agent").user
        bob = create_agent(email="bob.touch@alpha.test", password=PASSWORD, role="agent").user
        Agent.objects.update(last_seen_at=None)
    with schema_context("beta"):
        Agent.objects.update(last_seen_at=None)
    # ann's id asked for in beta touches nobody there (ids are per schema: beta may have a user with it).
    consumers._touch_batch([("alpha", ann.pk), ("alpha", ann.pk), ("alpha", bob.pk), ("beta", owner_b.pk)])
    with schema_context("alpha"):
        touched = set(Agent.objects.filter(last_seen_at__isnull=False).values_list("user_id", flat=True))
        assert touched == {ann.pk, bob.pk}
    with schema_context("beta"):
        assert set(Agent.objects.filter(last_seen_at__isnull=False).values_list("user_id", flat=True)) == {
            owner_b.pk
        }


async def test_an_event_fans_out_to_its_tenants_sockets_only_and_due_rechecks_still_close_ended_sessions(
    committed: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(consumers, "SESSION_RECHECK_SECONDS", 0.0)  # every socket is due at the event
    ann = await sync_to_async(_agent)(committed, "fan.ann@alpha.test")
    gone = await sync_to_async(_agent)(committed, "fan.gone@alpha.test")
    boss = await sync_to_async(_agent)(committed, "fan.boss@alpha.test", "supervisor")
    shared = await sync_to_async(_conversation)(committed, "+15550029001")

    def beta_owner() -> Any:
        with schema_context("beta"):
            return get_user_model().objects.get(email="owner@beta.test")

    beta_key = await sync_to_async(_session_key)("beta", await sync_to_async(beta_owner)())
    keys = {
        name: await sync_to_async(_session_key)(SCHEMA, user)
        for name, user in (("ann", ann), ("gone", gone), ("boss", boss))
    }
    sockets = {}
    try:
        for name, key in keys.items():
            socket, connected = await _connect(f"{settings.SESSION_COOKIE_NAME}={key}")
            assert connected
            await _hello(socket)
            sockets[name] = socket
        socket, connected = await _connect(
            f"{settings.SESSION_COOKIE_NAME}={beta_key}", host="beta.localhost"
        )
        assert connected
        await _hello(socket)
        sockets["beta"] = socket

        def end_session() -> None:
            with schema_context(SCHEMA):
                Session.objects.filter(session_key=keys["gone"]).delete()

        await sync_to_async(end_session)()
        await sync_to_async(_note)(shared, boss)
        heard = {name: await _heard(socket) for name, socket in sockets.items()}
        assert shared.pk in heard["ann"]["conversations"] and shared.pk in heard["boss"]["conversations"]
        assert heard["gone"]["close"] == sessions.CLOSE_SIGNED_OUT
        assert shared.pk not in heard["gone"]["conversations"]
        assert shared.pk not in heard["beta"]["conversations"] and heard["beta"]["close"] is None
    finally:
        for socket in sockets.values():
            await socket.disconnect()

        def forget_beta() -> None:
            with schema_context("beta"):
                Session.objects.filter(session_key=beta_key).delete()

        await sync_to_async(forget_beta)()


def _note(conversation: Any, author: Any) -> None:
    with schema_context(SCHEMA):
        services.add_private_note(conversation=conversation, text="to everyone who may see it", author=author)


async def _heard(socket: Any, *, wait: float = 0.5) -> dict[str, Any]:
    """The conversations a socket heard of until it was quiet for `wait` seconds, and its close code."""
    out: dict[str, Any] = {"conversations": set(), "close": None}
    while not await socket.receive_nothing(timeout=wait):
        output = await socket.receive_output(timeout=5)
        if output["type"] == "websocket.close":
            out["close"] = int(output["code"])
            break
        if output["type"] == "websocket.send":
            out["conversations"].add(json.loads(output["text"]).get("conversation"))
    return out
