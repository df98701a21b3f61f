"""Campaign progress reaches the campaign page over the inbox WebSocket: owners, admins and supervisors
hear it, agents (who cannot open campaigns) do not."""

from __future__ import annotations

from types import SimpleNamespace

from asgiref.sync import sync_to_async

from campaigns import services
from conversations.tests.test_consumers import (
    _agent,
    _connect,
    _cookie_for,
    _events,
    _hello,
    _in_schema,
    committed,  # noqa: F401 - committed rows in alpha, removed afterwards
)


async def test_progress_events_reach_supervisors_and_not_agents(committed):  # noqa: F811
    boss = await sync_to_async(_agent)(committed, "camp-boss@alpha.test", "supervisor")
    agent = await sync_to_async(_agent)(committed, "camp-agent@alpha.test")
    sockets = {}
    for name, user in (("boss", boss), ("agent", agent)):
        cookie = await sync_to_async(_cookie_for)(user)
        socket, connected = await _connect(cookie)
        assert connected
        await _hello(socket)
        sockets[name] = socket
    campaign = SimpleNamespace(pk=4242, status="running", pause_reason="", waiting="")
    counts = {"total": 10, "pending": 4, "queued": 2, "sent": 3, "failed": 1}
    await _in_schema(services.publish_progress, campaign, counts)
    heard = await _events(sockets["boss"])
    assert heard == [
        {
            "type": "campaign.progress",
            "campaign": 4242,
            "status": "running",
            "pause_reason": "",
            "waiting": "",
            **counts,
        }
    ]
    assert await _events(sockets["agent"]) == []
    for socket in sockets.values():
        await socket.disconnect()
