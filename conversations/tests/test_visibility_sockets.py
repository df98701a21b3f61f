"""Realtime fan-out by the visibility rule: a socket hears of a conversation only when its user may see
it (through the real ASGI stack, the Redis channel layer and PostgreSQL, as test_consumers.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django_tenants.utils import schema_context

from conversations import services
from conversations.tests.test_consumers import (  # noqa: F401  (committed: the fixture)
    SCHEMA,
    _agent,
    _connect,
    _conversation,
    _cookie_for,
    _events,
    _hello,
    _in_schema,
    committed,
)
from crm import services as crm_services
from crm.models import Agent


@pytest.fixture
def made(committed: dict[str, Any]) -> Iterator[dict[str, Any]]:  # noqa: F811
    """test_consumers' committed rows, and the teams made here (removed in this thread: a connection
    left open in the async tests' worker thread would outlive the test database)."""
    yield committed
    with schema_context(SCHEMA):
        for team in committed.get("teams", []):
            team.delete()


@pytest.mark.django_db
def test_the_socket_groups_of_a_viewer_meet_an_events_audience_exactly_when_it_may_see_it() -> None:
    """The rule as groups (events.audience / events.viewer_groups) against the rule as a row check, over
    every placement of a conversation and every kind of viewer. (Also makes pytest-django set the test
    database up when this module runs alone.)"""
    from itertools import product

    from conversations.events import audience, viewer_groups
    from conversations.models import Conversation
    from conversations.selectors import Viewer

    me, someone = 11, 12
    for role, teams, assignee, team in product(
        ("owner", "admin", "supervisor", "agent"),
        ((), (1,), (1, 2)),
        (None, me, someone),
        (None, 1, 3),
    ):
        viewer = Viewer(user=type("U", (), {"pk": me})(), role=role, team_ids=teams)
        conversation = Conversation(assignee_id=assignee, team_id=team)
        hears = bool(set(viewer_groups("s", viewer)) & set(audience(assignee, team, schema="s")))
        assert hears == conversation.is_visible_to(viewer), (role, teams, assignee, team)


def _team(made: dict[str, Any], name: str, *members: Any) -> Any:
    with schema_context(SCHEMA):
        team = crm_services.save_team(name=name, member_ids=[Agent.objects.get(user=m).pk for m in members])
    made.setdefault("teams", []).append(team)
    return team


async def test_an_agents_socket_hears_only_of_conversations_it_may_see_and_a_supervisors_of_all(made):
    ann = await sync_to_async(_agent)(made, "vis-ann@alpha.test")
    bob = await sync_to_async(_agent)(made, "vis-bob@alpha.test")
    boss = await sync_to_async(_agent)(made, "vis-boss@alpha.test", "supervisor")
    ours = await sync_to_async(_team)(made, "Vis ours", ann)
    theirs = await sync_to_async(_team)(made, "Vis theirs", bob)
    conversations = {
        "own": await sync_to_async(_conversation)(made, "+15550019001", assignee=ann),
        "team": await sync_to_async(_conversation)(made, "+15550019002", team=ours),
        "shared": await sync_to_async(_conversation)(made, "+15550019003"),
        "other agent": await sync_to_async(_conversation)(made, "+15550019004", assignee=bob),
        "other team": await sync_to_async(_conversation)(made, "+15550019005", team=theirs),
    }
    sockets = {}
    for name, user in (("ann", ann), ("boss", boss)):
        socket, connected = await _connect(await sync_to_async(_cookie_for)(user))
        assert connected
        await _hello(socket)
        sockets[name] = socket

    for conversation in conversations.values():
        await _in_schema(services.add_private_note, conversation=conversation, text="note", author=boss)
    heard = {name: {e["conversation"] for e in await _events(s)} for name, s in sockets.items()}

    ids = {name: c.pk for name, c in conversations.items()}
    assert heard["ann"] == {ids["own"], ids["team"], ids["shared"]}
    assert heard["boss"] == set(ids.values())
    for socket in sockets.values():
        await socket.disconnect()


async def test_who_loses_sight_by_a_reassignment_hears_only_that_it_changed(made):
    ann = await sync_to_async(_agent)(made, "vis-ann2@alpha.test")
    bob = await sync_to_async(_agent)(made, "vis-bob2@alpha.test")
    boss = await sync_to_async(_agent)(made, "vis-boss2@alpha.test", "admin")
    conversation = await sync_to_async(_conversation)(made, "+15550019006", assignee=ann)
    ann_socket, _ = await _connect(await sync_to_async(_cookie_for)(ann))
    bob_socket, _ = await _connect(await sync_to_async(_cookie_for)(bob))
    await _hello(ann_socket)
    await _hello(bob_socket)
    await _in_schema(
        services.assign_conversation, conversation=conversation, assignee=bob, team=None, by=boss
    )

    [lost] = [e for e in await _events(ann_socket) if e["type"] == "conversation.assigned"]
    # Enough for Ann's list to drop the row; nothing of what the conversation became.
    assert set(lost) == {"type", "conversation", "seq"}
    gained = [e for e in await _events(bob_socket) if e["type"] == "conversation.assigned"]
    assert gained and gained[0]["assignee"] == bob.pk

    # From now on Ann hears nothing of it.
    await _in_schema(services.add_private_note, conversation=conversation, text="bob's now", author=bob)
    assert await _events(ann_socket) == []
    await ann_socket.disconnect()
    await bob_socket.disconnect()


async def test_a_socket_stops_hearing_who_views_a_conversation_it_lost(made):
    ann = await sync_to_async(_agent)(made, "vis-ann3@alpha.test")
    bob = await sync_to_async(_agent)(made, "vis-bob3@alpha.test")
    boss = await sync_to_async(_agent)(made, "vis-boss3@alpha.test", "admin")
    conversation = await sync_to_async(_conversation)(made, "+15550019007", assignee=ann)
    ann_socket, _ = await _connect(await sync_to_async(_cookie_for)(ann))
    boss_socket, _ = await _connect(await sync_to_async(_cookie_for)(boss))
    await _hello(ann_socket)
    await _hello(boss_socket)
    await ann_socket.send_json_to({"type": "view", "conversation": conversation.pk})
    await _events(ann_socket)

    await _in_schema(
        services.assign_conversation, conversation=conversation, assignee=bob, team=None, by=boss
    )
    await _events(ann_socket)
    await boss_socket.send_json_to({"type": "view", "conversation": conversation.pk})
    await _events(boss_socket)
    assert [e for e in await _events(ann_socket) if e["type"] == "presence"] == []
    await ann_socket.disconnect()
    await boss_socket.disconnect()


async def test_leaving_a_team_closes_the_socket_so_it_rejoins_without_the_teams_events(made):
    ann = await sync_to_async(_agent)(made, "vis-ann4@alpha.test")
    team = await sync_to_async(_team)(made, "Vis leaving", ann)
    socket, _ = await _connect(await sync_to_async(_cookie_for)(ann))
    await _hello(socket)

    def leave() -> None:
        with schema_context(SCHEMA):
            crm_services.save_team(team=team, name=team.name, member_ids=[])

    await sync_to_async(leave)()
    output = await socket.receive_output(timeout=5)
    assert (output["type"], output.get("code")) == ("websocket.close", 4403)
    await socket.disconnect()
