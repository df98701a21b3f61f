"""The webhook's POST path under ASGI: verified, stored durably, acknowledged, with no Django request.

Meta's webhook is the one endpoint whose rate the business doesn't choose, so it skips what it doesn't
need: Django's middleware stack, a thread per request and a new database connection per request
(measured in docs/benchmarks.md). The checks are the same functions the Django view uses
(whatsapp.webhook); what differs is the write: POSTs that arrive while a batch is being committed wait
for the next one, and each batch is one INSERT, one COMMIT and one job (group commit). A POST is
acknowledged only after its batch has committed, so a 200 always means stored.

Acknowledgements are bounded (issue 14): a POST not stored within WHATSAPP_WEBHOOK_ACK_DEADLINE of
arriving is answered 503 and Meta delivers it again; while the store is behind by an eighth of that (or
two full batches wait), new POSTs are refused at once, before their verification, so an overloaded
process spends its time on the POSTs it can still store in time. Measured in docs/benchmarks.md
("Webhook acknowledgement under load").

Everything else (the GET handshake, other paths) goes to the wrapped application.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
import structlog
from django.conf import settings
from django.db import InterfaceError, OperationalError

from tenants.db import connection
from whatsapp import webhook

log = structlog.get_logger("whatsapp.webhook")

PATH = "/webhooks/whatsapp/"
MAX_BATCH = 200
# Load shedding: a POST is refused at once, unverified, while more than this many POSTs wait for a batch
# (two full batches)...
MAX_WAITING = 2 * MAX_BATCH
# ...or while the batch in flight or the oldest waiting POST is older than this share of the deadline.
# Measured (docs/benchmarks.md): with half the deadline, an overloaded process took more than it could
# store and its latency grew past Meta's patience before anything was refused; an eighth keeps it bounded.
SHED_AFTER_SHARE = 0.125
# Refused unverified while the store is behind (_GroupCommit.behind): Meta delivers it again later.
OVERLOADED = webhook.Rejected(503, "overloaded", "Too many events at once; deliver this one again later.")

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


def _store(accepted: list[webhook.Accepted]) -> list[int]:
    """In the ingress's own thread, whose connection stays open between batches."""
    from whatsapp.actors import wake_webhook_processing
    from whatsapp.services import record_webhook_events

    connection.set_schema_to_public()
    try:
        ids = record_webhook_events(accepted=accepted)
    except (OperationalError, InterfaceError):
        # The kept connection died (database restarted): one retry on a fresh one.
        connection.close()
        ids = record_webhook_events(accepted=accepted)
    # Committed: if the broker is down the sweeper processes them later.
    wake_webhook_processing()
    return ids


def _load_secrets() -> webhook.Secrets:
    from whatsapp.services import webhook_secrets

    connection.set_schema_to_public()
    return webhook_secrets()


# The database is unreachable: storing the bodies one by one would fail the same way.
_CONNECTION_ERRORS = (OperationalError, InterfaceError, psycopg.OperationalError, psycopg.InterfaceError)


class _Disconnected(Exception):
    """The client went away before its body arrived."""


class NotStored(Exception):
    """The event was not stored in time (or its batch failed): the POST is answered 503, so Meta delivers
    it again."""


# A queued POST: its verified body, the future its request awaits, and when it was queued (loop time).
_Item = tuple[webhook.Accepted, "asyncio.Future[int]", float]


class _GroupCommit:
    """POSTs queue their bodies; one flusher task per event loop commits whatever is waiting as one batch,
    then whatever queued meanwhile. Each POST awaits only its own batch: the flusher, not the first
    request, carries the loop, so under sustained load no request waits for the batches that arrived after
    it (its acknowledgement is bounded by one batch in flight plus its own). The task ends when nothing
    waits and the next POST starts another, so nothing outlives the requests it serves.

    Every request gets an answer within its deadline: its event stored (200), or not stored in time, its
    batch failed, or the flusher was cancelled (NotStored, 503). A request that gives up (deadline, or its
    client went away) before its batch was taken leaves the queue, so under overload the queue holds at
    most a deadline's worth of arrivals and the excess is refused, not stored late. One that gives up
    while its batch is being committed may be stored after all: Meta's redelivery is then a second
    WebhookEvent with the same body, and processing stores each message once (by its wamid)."""

    def __init__(self, executor: ThreadPoolExecutor) -> None:
        self.executor = executor
        self.waiting: list[_Item] = []
        self.flusher: asyncio.Task[None] | None = None
        self.flush_started: float | None = None  # loop time the batch in flight was handed to the store

    def behind(self, seconds: float) -> bool:
        """The store is behind: more than MAX_WAITING POSTs wait, or the batch in flight or the oldest POST
        waiting is older than `seconds`. A POST arriving now would most likely miss its deadline after
        costing a verification; the ingress refuses it at once instead (503), so an overloaded process
        spends its time on POSTs it can store."""
        if len(self.waiting) > MAX_WAITING:
            return True
        now = asyncio.get_running_loop().time()
        if self.flush_started is not None and now - self.flush_started > seconds:
            return True
        return bool(self.waiting) and now - self.waiting[0][2] > seconds

    async def submit(self, accepted: webhook.Accepted, *, timeout: float | None = None) -> int:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[int] = loop.create_future()
        self.waiting.append((accepted, future, loop.time()))
        if self.flusher is None or self.flusher.done():
            self.flusher = loop.create_task(self._run(loop))
        try:
            # Shielded: giving up (deadline, cancellation) must not cancel the future the flusher answers.
            return await asyncio.wait_for(asyncio.shield(future), timeout)
        except TimeoutError:
            raise NotStored(f"not stored within {timeout:.3f} s") from None
        finally:
            # Gave up or answered: a future still pending is dropped from the queue by the flusher (or its
            # result, if its batch is in flight, is ignored).
            future.cancel()

    async def _run(self, loop: asyncio.AbstractEventLoop) -> None:
        batch: list[_Item] = []
        try:
            while True:
                self.waiting = [item for item in self.waiting if not item[1].done()]
                if not self.waiting:
                    return
                batch, self.waiting = self.waiting[:MAX_BATCH], self.waiting[MAX_BATCH:]
                await self._flush(loop, batch)
                batch = []
        except BaseException as exc:
            # Cancelled (the loop is shutting down) or a bug: every request still waiting is answered
            # (503, Meta delivers again) instead of hanging.
            for _, future, _ in batch + self.waiting:
                if not future.done():
                    future.set_exception(NotStored(f"webhook batch not stored: {exc!r}"))
            self.waiting = []
            self.flush_started = None
            raise

    async def _flush(self, loop: asyncio.AbstractEventLoop, batch: list[_Item]) -> None:
        try:
            # Shielded: the store runs to its end in its thread whatever happens to this task, and the
            # connection is not left mid-transaction for the next batch.
            self.flush_started = loop.time()
            ids = await asyncio.shield(
                loop.run_in_executor(self.executor, _store, [item[0] for item in batch])
            )
            self.flush_started = None
        except Exception as exc:
            self.flush_started = None
            if len(batch) > 1 and not isinstance(exc, _CONNECTION_ERRORS):
                # Something in one body the database refused: it must not fail the others. Each alone.
                log.warning("webhook_batch_store_failed", events=len(batch), error=repr(exc))
                for item in batch:
                    if not item[1].done():
                        await self._flush(loop, [item])
                return
            # The batch's one transaction rolled back: nothing of it is stored, every request hears so.
            for _, future, _ in batch:
                if not future.done():
                    future.set_exception(NotStored(f"webhook batch not stored: {exc!r}"))
            return
        for (_, future, _), event_id in zip(batch, ids, strict=True):
            if not future.done():
                future.set_result(event_id)


class WebhookIngress:
    def __init__(self, app: Callable[..., Awaitable[None]]) -> None:
        self.app = app
        # One thread, hence one kept database connection, per process; batching makes one enough.
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="webhook-ingress")
        self.batches: dict[asyncio.AbstractEventLoop, _GroupCommit] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != PATH:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        limit = settings.WHATSAPP_WEBHOOK_MAX_BYTES
        headers = {name.lower(): value for name, value in scope.get("headers", [])}
        try:
            declared = int(headers.get(b"content-length", b"0") or 0)
        except ValueError:
            declared = 0
        if declared > limit:
            await self._reply(send, webhook.too_large(limit))
            return
        try:
            body = await self._read(receive, limit)
        except _Disconnected:
            return  # nobody to answer, nothing stored
        if body is None:
            await self._reply(send, webhook.too_large(limit))
            return
        deadline = settings.WHATSAPP_WEBHOOK_ACK_DEADLINE
        batch = self._batch()
        if batch.behind(deadline * SHED_AFTER_SHARE):
            await self._reply(send, OVERLOADED)
            return
        verdict = webhook.check_webhook(
            body=body,
            signature=headers.get(b"x-hub-signature-256", b"").decode("latin-1"),
            secrets=await self._secrets(),
            limit=limit,
        )
        if isinstance(verdict, webhook.Rejected):
            await self._reply(send, verdict)
            return
        remaining = deadline - (time.perf_counter() - started)
        try:
            event_id = await batch.submit(verdict, timeout=max(remaining, 0.0))
        except Exception as exc:  # NotStored, or a bug: either way not known to be stored
            # Not stored (in time): a 503 makes Meta deliver it again later.
            log.error("webhook_store_failed", error=str(exc))
            await self._reply(send, webhook.Rejected(503, "unavailable", "The event could not be stored."))
            return
        webhook.count("accepted", seconds=time.perf_counter() - started)
        await self._send_json(send, 200, b'{"status": "accepted", "event": %d}' % event_id)

    def close(self) -> None:
        """Close the kept connection (tests, before their database is dropped)."""
        # Looked up in the ingress's thread: `connection` resolves to the calling thread's connection.
        self.executor.submit(lambda: connection.close()).result()

    def _batch(self) -> _GroupCommit:
        loop = asyncio.get_running_loop()
        batch = self.batches.get(loop)
        if batch is None:
            # Keyed by loop: a test's event loops come and go; a server has one per process.
            self.batches = {known: b for known, b in self.batches.items() if not known.is_closed()}
            batch = self.batches[loop] = _GroupCommit(self.executor)
        return batch

    async def _secrets(self) -> webhook.Secrets:
        from whatsapp.services import cached_webhook_secrets

        secrets = cached_webhook_secrets()
        if secrets is None:
            secrets = await asyncio.get_running_loop().run_in_executor(self.executor, _load_secrets)
        return secrets

    @staticmethod
    async def _read(receive: Receive, limit: int) -> bytes | None:
        """The body, or None when it is over the limit."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _Disconnected
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def _reply(self, send: Send, rejected: webhook.Rejected) -> None:
        webhook.count(rejected.code)
        await self._send_json(send, rejected.status, rejected.json())

    @staticmethod
    async def _send_json(send: Send, status: int, body: bytes) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))],
            }
        )
        await send({"type": "http.response.body", "body": body})
