"""WhatsApp jobs. Actors take ids, load rows and call services; enqueueing never breaks a request."""

from __future__ import annotations

import datetime as dt
import threading
import time
from typing import Any

import dramatiq
import redis
import structlog
from django.conf import settings
from django.db.models import Q
from django.utils import timezone
from django_tenants.utils import get_public_schema_name, schema_context

from conversations.models import Channel, Message
from core.redis_client import redis_client
from tenants.db import connection
from tenants.jobs import TENANT_OPTION
from tenants.models import WebhookEvent
from tenants.selectors import active_tenant_schemas, tenant_schemas
from whatsapp import delivery, retention, services

log = structlog.get_logger("whatsapp.jobs")


def _safe_send(
    actor: dramatiq.Actor, *args: Any, delay: float | None = None, schema: str | None = None, **options: Any
) -> bool:
    """Enqueue, or log and return False when the broker is down: sweepers pick the work up later.

    Pass `schema` when enqueueing from an on-commit callback: by then a schema_context may have exited.
    """
    if schema:
        options[TENANT_OPTION] = schema
    try:
        actor.send_with_options(args=args, delay=int(delay * 1000) if delay else None, **options)
    except Exception as exc:  # broker unreachable: the row is durable, a sweeper retries
        log.warning("enqueue_failed", actor=actor.actor_name, args=args, error=repr(exc))
        return False
    return True


# -- inbound -------------------------------------------------------------------------------------------


class WebhookEventsFailed(Exception):
    pass


@dramatiq.actor(queue_name="inbound", max_retries=8, min_backoff=1000, max_backoff=300_000)
def process_webhook_events(event_ids: list[int]) -> None:
    """The given events (the sweeper's, a replay's) and every fresh pending event (see _Drain). When
    one of the given events fails the job is retried with backoff; a fresh one that fails waits for
    the sweeper, which then enqueues it by id."""
    failed = _drain.run(event_ids)
    if failed:
        raise WebhookEventsFailed(f"webhook events failed: {failed}")


# Set while a processing job is queued that has not started a round yet (and so will see any event
# committed before it starts); it expires in case that job is lost.
WAKE_KEY = "wacrm:wa:inbound:scheduled"
WAKE_TTL_MS = 2000


def wake_webhook_processing() -> bool:
    """After new events are committed: a processing job, unless one is already queued that has not
    started (its round will take these events too). Under load that is one job per round instead of
    one per POST, each of which cost a worker ~2 ms of CPU even when it found nothing left to do."""
    try:
        if not redis_client().set(WAKE_KEY, 1, nx=True, px=WAKE_TTL_MS):
            return True
    except redis.RedisError as exc:
        log.warning("inbound_wake_flag_failed", error=repr(exc))
    return enqueue_webhook_events(event_ids=[])


def _round_starts() -> None:
    # Before the round looks for events: one committed after this gets a job of its own.
    try:
        redis_client().delete(WAKE_KEY)
    except redis.RedisError as exc:
        log.warning("inbound_wake_flag_failed", error=repr(exc))


# A round takes at most this many events besides the job's own; a drain hands over after this long.
DRAIN_BATCH = 200
DRAIN_SECONDS = 30.0
# A number connected, moved or switched off is seen by the next round after this long at most.
ROUTE_CACHE_SECONDS = 5.0


class _Drain:
    """One thread per worker process processes inbound events at a time, and each round takes every
    fresh event pending by then, not just its job's. Under load a transaction then holds many messages
    (a round's fixed statements cost ~13 ms of CPU on the benchmark machine; a message's own share is
    ~1 ms), and no more inbound transactions compete for the cores than there are processes. A job that
    arrives while the drain is busy hands its events (the sweeper's, a replay's) to the next round and
    returns at once."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.busy = False
        self.more = False
        self.handed: set[int] = set()

    def run(self, event_ids: list[int]) -> list[int]:
        """The job's own events that failed."""
        with self.lock:
            if self.busy:
                self.handed.update(event_ids)
                self.more = True
                return []
            self.busy, self.more = True, False
            own = sorted(self.handed | set(event_ids))
            self.handed.clear()
        try:
            failed: list[int] = []
            started = cached_at = time.monotonic()
            cache = services.RouteCache()
            while True:
                _round_starts()
                if time.monotonic() - cached_at > ROUTE_CACHE_SECONDS:
                    cache, cached_at = services.RouteCache(), time.monotonic()
                outcome = services.process_webhook_events(event_ids=own, fresh=DRAIN_BATCH, cache=cache)
                # A handed event that fails is left to the sweeper: its job has returned already.
                failed += [pk for pk in outcome.failed if pk in event_ids]
                full = len(outcome.taken) >= len(own) + DRAIN_BATCH
                with self.lock:
                    if not self.more and not full:
                        self.busy = False
                        return failed
                    self.more = False
                    own = sorted(self.handed)
                    self.handed.clear()
                if time.monotonic() - started > DRAIN_SECONDS:
                    # Hand over to a new job rather than run into the actor's time limit. Always a new
                    # job, not a wake: the wake flag may belong to a job that this drain took over while
                    # busy (it returned without a round), and events committed after this round started
                    # would then wait for the sweeper.
                    with self.lock:
                        own = sorted(self.handed | set(own))
                        self.handed.clear()
                        self.busy = False
                    enqueue_webhook_events(event_ids=own)
                    return failed
        except BaseException:
            with self.lock:
                self.busy = False
            raise


_drain = _Drain()


def enqueue_webhook_events(*, event_ids: list[int]) -> bool:
    # Events live in the public schema; processing switches to each change's tenant itself.
    return _safe_send(process_webhook_events, event_ids, schema=get_public_schema_name())


SWEEP_BATCH = 100


@dramatiq.actor(queue_name="inbound", max_retries=0)
def sweep_webhook_events() -> None:
    """Events still pending a while after they arrived (Redis or workers were down) get processed."""
    cutoff = timezone.now() - dt.timedelta(seconds=settings.WHATSAPP_SWEEP_AFTER_SECONDS)
    ids = list(
        WebhookEvent.objects.filter(status=WebhookEvent.Status.PENDING, received_at__lte=cutoff)
        .order_by("received_at")
        .values_list("pk", flat=True)[:5000]
    )
    for index in range(0, len(ids), SWEEP_BATCH):
        enqueue_webhook_events(event_ids=ids[index : index + SWEEP_BATCH])
    if ids:
        log.info("webhook_events_swept", count=len(ids))


@dramatiq.actor(queue_name="media", max_retries=8, min_backoff=2000, max_backoff=600_000)
def download_media(media_file_id: int) -> None:
    services.download_media(media_file_id=media_file_id)


def enqueue_media_download(*, media_file_id: int, schema: str | None = None) -> bool:
    return _safe_send(download_media, media_file_id, schema=schema)


# -- outbound ------------------------------------------------------------------------------------------


def _deliver(message_id: int, *, bulk: bool) -> None:
    outcome = delivery.deliver_message(message_id=message_id)
    if outcome.action in ("retry", "wait"):
        # Our own schedule (not Dramatiq's retries): limiter waits spend no retry, backoff follows Meta.
        enqueue_delivery(message_id=message_id, bulk=bulk, delay=outcome.delay)


# Agent replies and bulk sends use separate queues so a campaign never holds up a reply; and a worker
# thread that frees up takes a waiting reply before any bulk job (Dramatiq runs lower priority numbers
# first among the jobs its process has fetched).
BULK_PRIORITY = 100


@dramatiq.actor(queue_name="outbound", max_retries=3, time_limit=60_000)
def send_message(message_id: int) -> None:
    _deliver(message_id, bulk=False)


# Bulk batches a worker process runs at once (each holds a thread while it paces its number): the
# process's other threads stay free for replies and inbound webhooks whatever a campaign does.
_bulk_batches = threading.BoundedSemaphore(max(1, settings.WHATSAPP_BULK_JOBS_PER_PROCESS))
BULK_BUSY_DELAY = 0.05


@dramatiq.actor(queue_name="bulk", max_retries=3, time_limit=60_000, priority=BULK_PRIORITY)
def send_bulk_message(message_id: int) -> None:
    """This message and more of its number's queued bulk messages (delivery.deliver_bulk)."""
    again = delivery.deliver_bulk(message_id=message_id, gate=_bulk_batches, busy_delay=BULK_BUSY_DELAY)
    for job in again:
        enqueue_delivery(message_id=job.message_id, bulk=True, delay=job.delay or None)


# One bulk job per number, not per message: it sends batch after batch for this long, then enqueues
# itself again while the number has queued bulk messages (delivery.deliver_bulk_number).
BULK_NUMBER_SECONDS = 5.0
# A number's job queued and not started yet (lane "now"), or waiting for a retry or pair delay ("later"):
# a message queued meanwhile adds no job. The flag expires in case its job is lost (the sweeper and the
# broker's redelivery cover that too).
NUMBER_FLAG_MS = 10_000
# Set while a number's job runs (longer than a job's BULK_NUMBER_SECONDS and its last batch; it expires if
# the worker dies).
RUNNING_FLAG_MS = 20_000


def _number_flag(lane: str, schema: str, channel_id: int) -> str:
    return f"wacrm:wa:bulk:{lane}:{schema}:{channel_id}"


@dramatiq.actor(queue_name="bulk", max_retries=3, time_limit=60_000, priority=BULK_PRIORITY)
def send_bulk_number(channel_id: int, lane: str = "") -> None:
    """The number's queued bulk messages, in batches (delivery.deliver_bulk_number)."""
    schema = connection.schema_name
    running = _number_flag("running", schema, channel_id)
    try:
        if lane:  # before looking for messages: one queued after this gets a job of its own
            redis_client().delete(_number_flag(lane, schema, channel_id))
        # One job per number at a time: a campaign's dispatcher hands over every chunk, and a second job
        # would only hold another thread to pace the same number.
        alone = bool(redis_client().set(running, 1, nx=True, px=RUNNING_FLAG_MS))
    except redis.RedisError as exc:
        log.warning("bulk_flag_failed", error=repr(exc))
        alone = True
    if not alone:
        return  # the running job looks for queued messages again after it clears its flag
    try:
        run = delivery.deliver_bulk_number(
            channel_id=channel_id, gate=_bulk_batches, busy_delay=BULK_BUSY_DELAY, seconds=BULK_NUMBER_SECONDS
        )
    finally:
        try:
            redis_client().delete(running)
        except redis.RedisError as exc:
            log.warning("bulk_flag_failed", error=repr(exc))
    again = run.again
    if again is None:
        # Messages queued while this job ran whose own job found it running: seen now that it is not.
        again = delivery.next_bulk_run(channel_id=channel_id)
        if again is None:
            return
    if lane == "later" and not run.claimed and not run.busy and again > 0:
        return  # a delayed job that ran before anything was due (only tests run them early): no loop
    enqueue_bulk_number(channel_id=channel_id, delay=again, schema=schema)


def enqueue_bulk_number(*, channel_id: int, delay: float = 0.0, schema: str | None = None) -> bool:
    """The number's bulk job, unless one is queued already that will see what is queued now."""
    schema = schema or connection.schema_name
    lane = "later" if delay > 0 else "now"
    key, expires = _number_flag(lane, schema, channel_id), NUMBER_FLAG_MS + int(delay * 1000)
    try:
        client = redis_client()
        if lane == "now":
            fresh = bool(client.set(key, 1, nx=True, px=expires))
        else:
            # One waiting job per number, unless this one must run sooner (its due time is the value).
            due = time.time() + delay
            current = client.get(key)
            fresh = current is None or float(current) > due + 0.01
            if fresh:
                client.set(key, f"{due:.3f}", px=expires)
    except redis.RedisError as exc:
        log.warning("bulk_flag_failed", error=repr(exc))
        fresh = True
    if not fresh:
        return True
    return _safe_send(send_bulk_number, channel_id, lane, delay=delay or None, schema=schema)


def enqueue_delivery(
    *, message_id: int, bulk: bool = False, delay: float | None = None, schema: str | None = None
) -> bool:
    """The message's send: its own job for a reply; its number's bulk job for a bulk message."""
    if not bulk:
        return _safe_send(send_message, message_id, delay=delay, schema=schema)
    with schema_context(schema or connection.schema_name):
        channel_id = (
            Message.objects.filter(pk=message_id).values_list("conversation__channel_id", flat=True).first()
        )
    if channel_id is None:
        return _safe_send(send_bulk_message, message_id, delay=delay, schema=schema)
    return enqueue_bulk_number(channel_id=channel_id, delay=delay or 0.0, schema=schema)


@dramatiq.actor(queue_name="outbound", max_retries=5, min_backoff=1000)
def send_read_receipt(message_id: int, typing: bool = False) -> None:
    delivery.send_read_receipt(message_id=message_id, typing=typing)


def enqueue_read_receipt(*, message_id: int, schema: str | None = None, typing: bool = False) -> bool:
    if typing:
        return _safe_send(send_read_receipt, message_id, True, schema=schema)
    return _safe_send(send_read_receipt, message_id, schema=schema)


@dramatiq.actor(queue_name="default", max_retries=0)
def requeue_stuck_sends() -> None:
    """Queued messages whose job was lost (broker down at enqueue) are enqueued again; an attempt left
    unfinished by a dead worker is enqueued so the delivery marks it failed instead of resending it."""
    now = timezone.now()
    for schema in active_tenant_schemas():
        with schema_context(schema):
            # This app's numbers only: another provider's channel app requeues its own (waha.delivery).
            stuck = Message.objects.filter(
                direction=Message.Direction.OUTBOUND,
                status=Message.Status.QUEUED,
                wamid__isnull=True,
                conversation__channel__provider=Channel.Provider.CLOUD_API,
            ).filter(
                Q(send_started_at__lte=now - delivery.CLAIM_TIMEOUT)
                | Q(send_started_at__isnull=True, next_attempt_at__lte=now - dt.timedelta(seconds=30))
                | Q(
                    send_started_at__isnull=True,
                    next_attempt_at__isnull=True,
                    created_at__lte=now - dt.timedelta(seconds=60),
                )
            )
            numbers: set[int] = set()
            for message_id, bulk, started, channel_id in stuck.values_list(
                "pk", "bulk", "send_started_at", "conversation__channel_id"
            )[:1000]:
                if bulk and started is None and channel_id is not None:
                    numbers.add(channel_id)  # one job of its number takes them all
                else:
                    _safe_send(send_bulk_message if bulk else send_message, message_id, schema=schema)
            for channel_id in sorted(numbers):
                _safe_send(send_bulk_number, channel_id, schema=schema)


# -- templates -----------------------------------------------------------------------------------------


@dramatiq.actor(queue_name="default", max_retries=3, min_backoff=10_000)
def sync_channel_templates(channel_id: int) -> None:
    channel = Channel.objects.filter(pk=channel_id, status=Channel.Status.ACTIVE).first()
    if channel is not None:
        services.sync_templates(channel=channel)


@dramatiq.actor(queue_name="default", max_retries=0)
def sync_all_templates() -> None:
    for schema in active_tenant_schemas():
        with schema_context(schema):
            ids = list(Channel.objects.filter(status=Channel.Status.ACTIVE).values_list("pk", flat=True))
        for channel_id in ids:
            _safe_send(sync_channel_templates, channel_id, schema=schema)


# -- retention -----------------------------------------------------------------------------------------


@dramatiq.actor(queue_name="default", max_retries=3)
def cleanup_whatsapp_records() -> None:
    """Public schema: processed webhook events past their retention; then one message per tenant (each
    carrying its schema) for its stale pending statuses."""
    days = settings.WHATSAPP_WEBHOOK_EVENT_RETENTION_DAYS
    deleted = retention.delete_processed_webhook_events(older_than=timezone.now() - dt.timedelta(days=days))
    if deleted:
        log.info("webhook_events_deleted", count=deleted)
    for schema in tenant_schemas():
        _safe_send(cleanup_pending_statuses_for_tenant, schema=schema)


@dramatiq.actor(queue_name="default", max_retries=3)
def cleanup_pending_statuses_for_tenant() -> None:
    days = settings.WHATSAPP_PENDING_STATUS_RETENTION_DAYS
    deleted = retention.delete_stale_pending_statuses(older_than=timezone.now() - dt.timedelta(days=days))
    if deleted:
        log.info("pending_statuses_deleted", count=deleted)
