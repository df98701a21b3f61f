"""The one realtime entry point: services call these; each publishes on commit to the tenant's groups.

Consumers (conversations.consumers) receive them as `realtime.batch` (the events published meanwhile,
in order) and forward each payload.

An event about a conversation goes only to the groups of those allowed to see it (the rule of
conversations.models.visibility_q, as groups: audience() and viewer_groups()): its assignee, its team,
every agent when it has neither, and the supervisors. Those who lose sight of it by a reassignment get a
bare notice (type and id) so their list drops it. It is also written to InboxEvent in the caller's
transaction, so a browser that was disconnected can replay what it missed by sequence number. Payloads
carry ids, never content: the browser fetches the rendered fragment over HTTP, where the same
visibility rules are checked again.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import threading
from collections.abc import Iterable
from typing import Any, NamedTuple

import structlog
from channels.layers import get_channel_layer
from django.db import transaction
from django.utils import timezone

from conversations.groups import (
    agents_group,
    everything_group,
    team_group,
    unassigned_group,
    user_group,
)
from conversations.models import InboxEvent
from crm import outgoing_events
from tenants.db import connection, insert_rows

log = structlog.get_logger("realtime")


# Publishing runs on one long-lived event loop per process, fed by an ordered queue. async_to_sync per
# group started a new loop each time, and channels_redis keeps its connections per loop: every event paid
# for new Redis connections (46 % of an inbound message's processing time in benchmarks/inbox.py's
# profile). The committing thread only enqueues: waiting for Redis cost it another 10 % per message.
PUBLISH_TIMEOUT = 5.0


MAX_BATCH = 500


class _Publisher:
    """Events queued by committing threads are sent by one task, in order. Whatever queued up while the
    previous send was in flight goes out together: one channel-layer message per group holding all its
    events (a group_send is several Redis round trips, each waiting for the GIL behind busy worker
    threads, so one send per event and group could not keep up with 100 inbound messages a second)."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.loop = asyncio.new_event_loop()
        self.queue: asyncio.Queue[tuple[list[str], dict[str, Any]]] | None = None
        ready = threading.Event()
        threading.Thread(target=self._run, args=(ready,), daemon=True, name="realtime-publisher").start()
        ready.wait()

    def _run(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        self.queue = asyncio.Queue()
        ready.set()
        self.loop.run_until_complete(self._drain())

    async def _drain(self) -> None:
        assert self.queue is not None
        while True:
            items = [await self.queue.get()]
            while not self.queue.empty() and len(items) < MAX_BATCH:
                items.append(self.queue.get_nowait())
            by_group: dict[str, list[dict[str, Any]]] = {}
            for groups, payload in items:
                for group in groups:
                    by_group.setdefault(group, []).append(payload)
            layer = get_channel_layer()
            try:
                for group, payloads in by_group.items():
                    if layer is not None:
                        message = {"type": "realtime.batch", "payloads": payloads}
                        await asyncio.wait_for(layer.group_send(group, message), PUBLISH_TIMEOUT)
            except Exception as exc:  # a browser that misses one catches up from InboxEvent
                log.warning("realtime_publish_failed", events=len(items), error=repr(exc))
            finally:
                for _ in items:
                    self.queue.task_done()

    def put(self, groups: list[str], payload: dict[str, Any]) -> None:
        assert self.queue is not None
        self.loop.call_soon_threadsafe(self.queue.put_nowait, (groups, payload))

    def flush(self, timeout: float = PUBLISH_TIMEOUT) -> None:
        """Wait until everything queued so far has been sent (process exit, tests)."""
        assert self.queue is not None
        try:
            asyncio.run_coroutine_threadsafe(self.queue.join(), self.loop).result(timeout)
        except Exception as exc:
            log.warning("realtime_flush_incomplete", error=repr(exc))


_publisher: _Publisher | None = None
_publisher_lock = threading.Lock()


def _get_publisher() -> _Publisher:
    global _publisher
    with _publisher_lock:
        # A forked worker process inherits the object but not its thread: start its own.
        if _publisher is None or _publisher.pid != os.getpid():
            _publisher = _Publisher()
        return _publisher


def flush() -> None:
    if _publisher is not None and _publisher.pid == os.getpid():
        _publisher.flush()


atexit.register(flush)


def _send(groups: Iterable[str], payload: dict[str, Any]) -> None:
    # In commit order: one queue, drained by one task.
    _get_publisher().put(list(dict.fromkeys(groups)), payload)


def publish(payload: dict[str, Any], *, group: str | None = None) -> None:
    """Send to a group of the current tenant (default: all its agents) once the transaction commits.

    For events that are not about one conversation; conversation events use publish_events().
    """
    target = group or agents_group(connection.schema_name)
    transaction.on_commit(lambda: _send([target], payload))


# The visibility rule (conversations.models.visibility_q) as channel-layer groups: an event goes to
# audience(conversation), a socket joins viewer_groups(viewer), and the socket gets the event exactly
# when the two share a group, i.e. when the viewer may see the conversation (a property test holds
# this equal to the queryset form).


def audience(assignee_id: int | None, team_id: int | None, *, schema: str | None = None) -> list[str]:
    schema = schema or connection.schema_name
    groups = [everything_group(schema)]
    if assignee_id is not None:
        groups.append(user_group(schema, assignee_id))
    if team_id is not None:
        groups.append(team_group(schema, team_id))
    if assignee_id is None and team_id is None:
        groups.append(unassigned_group(schema))
    return groups


def viewer_groups(schema: str, viewer: Any) -> list[str]:
    """The visibility groups a viewer's socket joins: everything for owners, admins and supervisors; an
    agent's own, their teams' and the shared queue's otherwise."""
    if viewer.sees_all:
        return [everything_group(schema)]
    groups = [unassigned_group(schema)]
    if viewer.user_id is not None:
        groups.append(user_group(schema, viewer.user_id))
    groups += [team_group(schema, team_id) for team_id in viewer.team_ids]
    return groups


class Event(NamedTuple):
    """An event about a conversation. `previously` is the (assignee_id, team_id) before a reassignment:
    those who just lost sight of the conversation get the event too, so their list drops it."""

    conversation: Any
    payload: dict[str, Any]
    previously: tuple[int | None, int | None] | None = None


def publish_events(events: list[Event]) -> None:
    """Record the events (one INSERT) and, on commit, send each to those who may see its conversation."""
    if not events:
        return
    now = timezone.now()
    rows = [InboxEvent(conversation_id=e.conversation.pk, payload=e.payload, created_at=now) for e in events]
    insert_rows(InboxEvent, rows)
    outgoing = []
    for event, row in zip(events, rows, strict=True):
        groups = audience(event.conversation.assignee_id, event.conversation.team_id)
        outgoing.append((groups, {**event.payload, "seq": row.pk}))
        if event.previously is not None:
            # Those who saw the conversation until this change and no longer do hear only that it changed
            # (type and id, as the inbox needs to drop its row): nothing of what it became.
            lost = [g for g in audience(*event.previously) if g not in groups]
            if lost:
                notice = {"type": event.payload["type"], "conversation": event.conversation.pk, "seq": row.pk}
                outgoing.append((lost, notice))

    def send() -> None:
        for groups, message in outgoing:
            _send(groups, message)

    transaction.on_commit(send)
    outgoing_events.emit_many(_webhook_event(event) for event in events)


def _webhook_event(event: Event) -> tuple[str, dict[str, Any]]:
    """The outgoing-webhook event for a realtime one (crm.outgoing_events drops the types it does not know:
    a resolution is a status change whose new status is resolved)."""
    kind = event.payload["type"]
    if kind == "conversation.status" and event.conversation.status == "resolved":
        kind = "conversation.resolved"
    refs = {"conversation": event.conversation.pk}
    if "message" in event.payload:
        refs["message"] = event.payload["message"]
    return kind, refs


def message_created_event(message: Any) -> Event:
    return Event(
        message.conversation,
        {
            "type": "message.created",
            "conversation": message.conversation_id,
            "message": message.pk,
            "direction": message.direction,
            "kind": message.type,
        },
    )


def message_created(message: Any) -> None:
    publish_events([message_created_event(message)])


def message_updated(message: Any) -> None:
    payload = {
        "type": "message.updated",
        "conversation": message.conversation_id,
        "message": message.pk,
        "status": message.status,
    }
    publish_events([Event(message.conversation, payload)])


def conversation_event(
    conversation: Any,
    *,
    change: str = "updated",
    previously: tuple[int | None, int | None] | None = None,
) -> Event:
    return Event(
        conversation,
        {
            "type": f"conversation.{change}",
            "conversation": conversation.pk,
            "status": conversation.status,
            "assignee": conversation.assignee_id,
            "unread": conversation.unread_count,
        },
        previously,
    )


def conversation_updated(
    conversation: Any,
    *,
    change: str = "updated",
    previously: tuple[int | None, int | None] | None = None,
) -> None:
    publish_events([conversation_event(conversation, change=change, previously=previously)])
