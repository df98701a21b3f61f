from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import structlog
from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings
from django_tenants.utils import schema_context
from redis import asyncio as aioredis

from conversations import events, metrics, selectors
from conversations.groups import user_group, viewers_group
from conversations.models import Conversation
from conversations.services import routing
from crm import sessions

log = structlog.get_logger("socket")

# Close codes in the 4000 range are ours: 4401 = not signed in to this tenant (or no longer: signed out,
# password changed, deactivated); 4403 = access changed (role, teams), reconnect. See crm.sessions.
CLOSE_UNAUTHENTICATED = sessions.CLOSE_SIGNED_OUT
CLOSE_ACCESS_CHANGED = sessions.CLOSE_ACCESS_CHANGED
# The session and the viewer (role, teams) are looked up again at most this often, when an event or a
# ping arrives: a safety net for a close message that was lost (Pub/Sub is at-most-once) or a change
# that sends none (`manage.py changepassword`, an expired or deleted session). One or two queries per
# socket per interval, never per event.
SESSION_RECHECK_SECONDS = 30.0
# A viewer that has not pinged for this long is gone (the browser pings every 25 s).
PRESENCE_TTL = 60
# Sequence numbers remembered per socket to drop duplicates (groups overlap; catch-up overlaps).
SEEN_MAX = 2000

# One client per event loop: an asyncio Redis connection belongs to the loop that opened it (one loop per
# server process in production; tests and embedded servers may run several loops in one process).
_clients: dict[int, tuple[asyncio.AbstractEventLoop, aioredis.Redis]] = {}


def presence_redis() -> aioredis.Redis:
    loop = asyncio.get_running_loop()
    entry = _clients.get(id(loop))
    if entry is None or entry[0] is not loop:
        for key, (old_loop, _) in list(_clients.items()):
            if old_loop.is_closed():
                del _clients[key]
        entry = _clients[id(loop)] = (loop, aioredis.Redis.from_url(settings.REDIS_URL))
    return entry[1]


def presence_key(schema: str, conversation_id: int) -> str:
    return f"wacrm:presence:{schema}:{conversation_id}"


# Database work of many sockets, together. One event fans out to every socket of a tenant, and after a
# quiet spell every one of them is due for its session re-check at once; an open inbox pings every 25 s.
# One by one (queries and, with CONN_MAX_AGE=0, a new database connection each, all on the one thread of
# database_sync_to_async) a thousand sockets kept the last of them waiting for seconds.
ACCESS_BATCH_WINDOW = 0.01
# Nobody waits for a ping's sign of life (the pong goes at once): up to a second's worth in one UPDATE.
TOUCH_BATCH_WINDOW = 1.0


def _access_batch(requests: list[tuple[str, str | None]]) -> dict[tuple[str, str | None], Any]:
    """{(schema, session key): (user pk, role, team ids), or None when the session no longer signs anyone
    in}: crm.sessions.user_for_session and selectors.viewer_for for many sockets at once."""
    by_schema: dict[str, set[str | None]] = {}
    for schema, key in requests:
        by_schema.setdefault(schema, set()).add(key)
    out: dict[tuple[str, str | None], Any] = {}
    for schema, keys in by_schema.items():
        with schema_context(schema):
            users = sessions.users_for_sessions(key for key in keys if key)
            viewers = selectors.viewers_for(list({user.pk: user for user in users.values()}.values()))
        for key in keys:
            user = users.get(key) if key else None
            if user is None:
                out[(schema, key)] = None
            else:
                viewer = viewers[user.pk]
                out[(schema, key)] = (user.pk, viewer.role, viewer.team_ids)
    return out


def _touch_batch(requests: list[tuple[str, int]]) -> dict[tuple[str, int], Any]:
    """routing.touch_agent for the agents of many sockets' pings: one UPDATE per tenant."""
    by_schema: dict[str, set[int]] = {}
    for schema, user_id in requests:
        by_schema.setdefault(schema, set()).add(user_id)
    for schema, user_ids in by_schema.items():
        with schema_context(schema):
            routing.touch_agents(user_ids=sorted(user_ids))
    return {}


class _Batches:
    """Requests from the sockets of one event loop for one lookup (a function of a list of requests to
    {request: result}), made in one trip to the database thread: those made while a batch is out form
    the next one."""

    def __init__(self, lookup: Callable[[list[Any]], dict[Any, Any]], window: float) -> None:
        self.lookup = lookup
        self.window = window
        self.pending: list[tuple[Any, asyncio.Future[Any]]] = []
        self.task: asyncio.Task[None] | None = None

    def submit(self, request: Any) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.pending.append((request, future))
        if self.task is None:
            self.task = asyncio.create_task(self._drain())
        return future

    async def _drain(self) -> None:
        try:
            while self.pending:
                # The other sockets woken by the same event are a few steps behind: let them join.
                await asyncio.sleep(self.window)
                batch, self.pending = self.pending, []
                try:
                    found = await database_sync_to_async(self.lookup)([request for request, _ in batch])
                except Exception as exc:
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for request, future in batch:
                    if not future.done():
                        future.set_result(found.get(request))
        finally:
            self.task = None


_batches: dict[int, tuple[asyncio.AbstractEventLoop, dict[str, _Batches]]] = {}


def batches(lookup: Callable[[list[Any]], dict[Any, Any]], window: float) -> _Batches:
    """The loop's batches for `lookup` (one loop per server process; tests may run several)."""
    loop = asyncio.get_running_loop()
    entry = _batches.get(id(loop))
    if entry is None or entry[0] is not loop:
        for key, (old_loop, _) in list(_batches.items()):
            if old_loop.is_closed():
                del _batches[key]
        entry = _batches[id(loop)] = (loop, {})
    if lookup.__name__ not in entry[1]:
        entry[1][lookup.__name__] = _Batches(lookup, window)
    return entry[1][lookup.__name__]


def _touch_done(future: asyncio.Future[Any]) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.warning("socket_touch_failed", error=repr(future.exception()))


class InboxConsumer(AsyncJsonWebsocketConsumer):
    """An agent's live connection. Only signed-in users of the host's tenant are accepted.

    The socket joins the groups of what its user may see (conversations.events sends each event only
    there). From the browser it takes:
      {"type": "ping"}                          keep-alive; refreshes presence
      {"type": "resume", "after": <seq>}        replay events missed since that sequence number
      {"type": "view", "conversation": <id>}    presence: this socket has that conversation open (null: none)
    """

    async def connect(self) -> None:
        self.closing = False
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        schema = self.scope["schema_name"]
        self.schema = schema
        self.viewer = await self._db(selectors.viewer_for, user)
        self.viewing: int | None = None
        self.seen: set[int] = set()
        self.seen_order: deque[int] = deque()
        self.recheck_at = time.monotonic() + SESSION_RECHECK_SECONDS
        # Control groups first: a sign-out or role change that lands while the others are joined still
        # reaches this socket.
        groups = [sessions.account_group(schema, user.pk)]
        session_key = self.scope.get("session_key")
        if session_key:
            groups.append(sessions.session_group(schema, session_key))
        # The visibility groups: events.audience() sends each conversation's events only to those who
        # may see it, so the socket gets exactly those. The user's own group is joined by everyone (it
        # is also how a supervisor's "assigned to me" shows).
        groups += [user_group(schema, user.pk), *events.viewer_groups(schema, self.viewer)]
        self.groups_joined = list(dict.fromkeys(groups))
        for group in groups:
            await self.channel_layer.group_add(group, self.channel_name)
        await self.accept()
        self.counted = True
        metrics.WEBSOCKET_CONNECTIONS.inc()
        seq = await self._db(selectors.latest_event_id)
        log.info("socket_connected", user=user.pk)
        await self.send_json({"type": "hello", "user": user.pk, "seq": seq})

    async def disconnect(self, code: int) -> None:
        if getattr(self, "counted", False):
            self.counted = False
            metrics.WEBSOCKET_CONNECTIONS.dec()
        await self._leave_groups()

    async def _leave_groups(self) -> None:
        groups, self.groups_joined = getattr(self, "groups_joined", []), []
        for group in groups:
            await self.channel_layer.group_discard(group, self.channel_name)
        if getattr(self, "viewing", None) is not None:
            await self._leave()

    # --- access: the socket lives only as long as the session and the role it was opened with -------

    async def session_close(self, event: dict[str, Any]) -> None:
        """crm.sessions asks: the session ended or the user's access changed."""
        await self._shut(int(event.get("code") or CLOSE_UNAUTHENTICATED), str(event.get("reason") or ""))

    async def _shut(self, code: int, reason: str) -> None:
        if self.closing:
            return
        # Nothing more is forwarded from here on, even what is already queued for this socket.
        self.closing = True
        log.info("socket_closed_by_server", user=self.scope["user"].pk, reason=reason, code=code)
        await self._leave_groups()
        await self.close(code=code)

    async def _access_change(self) -> tuple[int, str] | None:
        access = await batches(_access_batch, ACCESS_BATCH_WINDOW).submit(
            (self.schema, self.scope.get("session_key"))
        )
        if access is None or access[0] != self.scope["user"].pk:
            return CLOSE_UNAUTHENTICATED, "session_ended"
        if tuple(access[1:]) != (self.viewer.role, self.viewer.team_ids):
            return CLOSE_ACCESS_CHANGED, "access_changed"
        return None

    async def _still_allowed(self) -> bool:
        if self.closing:
            return False
        if time.monotonic() < self.recheck_at:
            return True
        self.recheck_at = time.monotonic() + SESSION_RECHECK_SECONDS
        change = await self._access_change()
        if change is None:
            return True
        await self._shut(*change)
        return False

    async def _db(self, func: Any, *args: Any, **kwargs: Any) -> Any:
        schema = self.scope["schema_name"]

        def run() -> Any:
            with schema_context(schema):
                return func(*args, **kwargs)

        return await database_sync_to_async(run)()

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        if not isinstance(content, dict):
            return
        if not await self._still_allowed():
            return
        kind = content.get("type")
        if kind == "ping":
            if self.viewing is not None:
                await self._mark_present(self.viewing)
            # A sign of life: keeps an online agent from being taken offline as idle (auto-assignment).
            # Written with the other sockets' within the second; the pong does not wait for it.
            touch = batches(_touch_batch, TOUCH_BATCH_WINDOW).submit((self.schema, self.scope["user"].pk))
            touch.add_done_callback(_touch_done)
            await self.send_json({"type": "pong"})
        elif kind == "resume":
            after = content.get("after")
            if isinstance(after, int) and after >= 0:
                await self._resume(after)
        elif kind == "view":
            target = content.get("conversation")
            await self._view(target if isinstance(target, int) else None)

    # --- catch-up -----------------------------------------------------------------------------------

    async def _resume(self, after: int) -> None:
        events, too_many = await self._db(selectors.events_since, self.viewer, after)
        if too_many:
            await self.send_json({"type": "resync"})
            return
        for event in events:
            await self._forward(event)
        await self.send_json({"type": "resumed", "count": len(events)})

    def _is_new(self, seq: Any) -> bool:
        if not isinstance(seq, int):
            return True
        if seq in self.seen:
            return False
        self.seen.add(seq)
        self.seen_order.append(seq)
        if len(self.seen_order) > SEEN_MAX:
            self.seen.discard(self.seen_order.popleft())
        return True

    async def _forward(self, payload: dict[str, Any]) -> None:
        if not self.closing and self._is_new(payload.get("seq")):
            await self.send_json(payload)

    async def dispatch(self, message: dict[str, Any]) -> None:
        # Channels closes stale database connections (a hop to the one database thread) before every
        # handler. This consumer reaches the database only through database_sync_to_async (_db and the
        # batches), which does that itself around each call; the hop was on every event's way to the
        # browser and on every ping (200 a second for 5,000 open inboxes).
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            await super().dispatch(message)  # refuses an unknown type
        else:
            await handler(message)

    async def realtime_batch(self, event: dict[str, Any]) -> None:
        """Events published by conversations.events arrive here, several at a time; a socket in several
        of the audience's groups gets each event once."""
        if not await self._still_allowed():
            return
        for payload in event["payloads"]:
            await self._forward(payload)
            # The open conversation was reassigned: if it is no longer this viewer's to see, the socket
            # stops hearing who else has it open.
            viewing = self.viewing
            reassigned = payload.get("type") == "conversation.assigned"
            if (
                reassigned
                and viewing is not None
                and payload.get("conversation") == viewing
                and not await self._db(self._can_view, viewing)
            ):
                await self._leave()

    # --- presence -----------------------------------------------------------------------------------

    async def _view(self, conversation_id: int | None) -> None:
        if conversation_id == self.viewing:
            return
        if self.viewing is not None:
            await self._leave()
        if conversation_id is None:
            return
        allowed = await self._db(self._can_view, conversation_id)
        if not allowed:
            await self.send_json({"type": "error", "code": "not_found", "conversation": conversation_id})
            return
        self.viewing = conversation_id
        await self.channel_layer.group_add(viewers_group(self.schema, conversation_id), self.channel_name)
        await self._mark_present(conversation_id)
        await self._broadcast_presence(conversation_id)

    def _can_view(self, conversation_id: int) -> bool:
        return Conversation.objects.visible_to(self.viewer).filter(pk=conversation_id).exists()

    async def _mark_present(self, conversation_id: int) -> None:
        user = self.scope["user"]
        entry = json.dumps({"id": user.pk, "name": user.get_full_name() or user.email, "at": time.time()})
        key = presence_key(self.schema, conversation_id)
        redis = presence_redis()
        await redis.hset(key, self.channel_name, entry)
        await redis.expire(key, PRESENCE_TTL * 2)

    async def _leave(self) -> None:
        conversation_id = self.viewing
        if conversation_id is None:
            return
        self.viewing = None
        await self.channel_layer.group_discard(viewers_group(self.schema, conversation_id), self.channel_name)
        await presence_redis().hdel(presence_key(self.schema, conversation_id), self.channel_name)
        await self._broadcast_presence(conversation_id)

    async def _broadcast_presence(self, conversation_id: int) -> None:
        raw = await presence_redis().hgetall(presence_key(self.schema, conversation_id))
        now = time.time()
        viewers: dict[int, str] = {}
        for value in raw.values():
            entry = json.loads(value)
            if now - entry["at"] <= PRESENCE_TTL:
                viewers[entry["id"]] = entry["name"]
        await self.channel_layer.group_send(
            viewers_group(self.schema, conversation_id),
            {
                "type": "presence.event",
                "conversation": conversation_id,
                "viewers": [{"id": k, "name": v} for k, v in sorted(viewers.items())],
            },
        )

    async def presence_event(self, event: dict[str, Any]) -> None:
        if self.closing or event["conversation"] != self.viewing:
            return
        await self.send_json(
            {"type": "presence", "conversation": event["conversation"], "viewers": event["viewers"]}
        )
