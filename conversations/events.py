"""The one realtime entry point: services call these; each publishes on commit to the tenant's groups.

Consumers (conversations.consumers) receive them as `realtime.event` and forward the payload.

An event about a conversation goes only to the groups of those allowed to see it (see
conversations.selectors.Viewer): its assignee, its team, everyone when it has neither, and the
supervisors. It is also written to InboxEvent in the caller's transaction, so a browser that was
disconnected can replay what it missed by sequence number. Payloads carry ids, never content: the
browser fetches the rendered fragment over HTTP, where the same visibility rules are checked again.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Iterable
from typing import Any

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
from tenants.db import connection

log = structlog.get_logger("realtime")


# Publishing runs on one long-lived event loop per process. async_to_sync per group started a new loop
# each time, and channels_redis keeps its connections per loop: every event paid for new Redis
# connections (46 % of an inbound message's processing time in benchmarks/inbox.py's profile).
_loop: asyncio.AbstractEventLoop | None = None
_loop_pid = 0
_loop_lock = threading.Lock()
PUBLISH_TIMEOUT = 5.0


def _publisher_loop() -> asyncio.AbstractEventLoop:
    global _loop, _loop_pid
    with _loop_lock:
        # A forked worker process inherits the variable but not the thread: start its own.
        if _loop is None or _loop.is_closed() or _loop_pid != os.getpid():
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, daemon=True, name="realtime-publisher").start()
            _loop, _loop_pid = loop, os.getpid()
        return _loop


def _send(groups: Iterable[str], payload: dict[str, Any]) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    message = {"type": "realtime.event", "payload": payload}
    targets = list(dict.fromkeys(groups))

    async def send_all() -> None:
        for group in targets:
            await layer.group_send(group, message)

    # Waiting keeps events in commit order; a browser that misses one catches up from InboxEvent.
    future = asyncio.run_coroutine_threadsafe(send_all(), _publisher_loop())
    try:
        future.result(timeout=PUBLISH_TIMEOUT)
    except Exception as exc:
        future.cancel()
        log.warning("realtime_publish_failed", type=payload.get("type"), error=repr(exc))


def publish(payload: dict[str, Any], *, group: str | None = None) -> None:
    """Send to a group of the current tenant (default: all its agents) once the transaction commits.

    For events that are not about one conversation; conversation events use publish_for().
    """
    target = group or agents_group(connection.schema_name)
    transaction.on_commit(lambda: _send([target], payload))


def audience(assignee_id: int | None, team_id: int | None) -> list[str]:
    schema = connection.schema_name
    groups = [everything_group(schema)]
    if assignee_id is not None:
        groups.append(user_group(schema, assignee_id))
    if team_id is not None:
        groups.append(team_group(schema, team_id))
    if assignee_id is None and team_id is None:
        groups.append(unassigned_group(schema))
    return groups


def publish_for(
    conversation: Any,
    payload: dict[str, Any],
    *,
    previously: tuple[int | None, int | None] | None = None,
) -> None:
    """Record the event and, on commit, send it to those who may see the conversation.

    `previously` is the (assignee_id, team_id) before a reassignment: those who just lost sight of the
    conversation get the event too, so their list drops it.
    """
    from conversations.models import InboxEvent

    event = InboxEvent.objects.create(
        conversation_id=conversation.pk, payload=payload, created_at=timezone.now()
    )
    groups = audience(conversation.assignee_id, conversation.team_id)
    if previously is not None:
        groups += audience(*previously)
    message = {**payload, "seq": event.pk}
    transaction.on_commit(lambda: _send(groups, message))


def message_created(message: Any) -> None:
    publish_for(
        message.conversation,
        {
            "type": "message.created",
            "conversation": message.conversation_id,
            "message": message.pk,
            "direction": message.direction,
            "kind": message.type,
        },
    )


def message_updated(message: Any) -> None:
    publish_for(
        message.conversation,
        {
            "type": "message.updated",
            "conversation": message.conversation_id,
            "message": message.pk,
            "status": message.status,
        },
    )


def conversation_updated(
    conversation: Any,
    *,
    change: str = "updated",
    previously: tuple[int | None, int | None] | None = None,
) -> None:
    publish_for(
        conversation,
        {
            "type": f"conversation.{change}",
            "conversation": conversation.pk,
            "status": conversation.status,
            "assignee": conversation.assignee_id,
            "unread": conversation.unread_count,
        },
        previously=previously,
    )
