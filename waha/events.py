"""WAHA webhook events: stored in the tenant's schema before WAHA hears 200, processed by a job on the
"inbound" queue, and swept up when Redis or the workers were down.

The Cloud API webhook's guarantees (whatsapp/services/webhooks.py): a 200 means the body is committed;
the processing job is enqueued after that and its failure to enqueue loses nothing (the sweeper takes
events still pending WAHA_SWEEP_AFTER_SECONDS after they arrived); processing is idempotent by WAHA's
message id, so a redelivery, a replay or a job run twice stores nothing twice. An event whose message is
not stored yet (an ack or an echo that overtook it) is deferred with backoff, up to MAX_ATTEMPTS tries,
the last of which settles it (waha.inbound.Outcome)."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import dramatiq
import structlog
from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django_tenants.utils import schema_context

from tenants.db import connection
from tenants.jobs import TENANT_OPTION
from tenants.models import WahaRoute
from waha import inbound
from waha.models import WahaEvent, WahaSession
from whatsapp.parsing import clean_text

log = structlog.get_logger("waha.events")

MAX_ATTEMPTS = 8
BACKOFF_SECONDS = 2.0
BACKOFF_MAX_SECONDS = 300.0
SWEEP_BATCH = 100
SWEEP_LIMIT = 5000


def record_event(*, schema: str, webhook_id: str, body: bytes, request_id: str = "") -> WahaEvent:
    """Store a verified body in the tenant's schema (committed when this returns, in autocommit). A body
    that is not a JSON object with an event name is stored as failed (WAHA is answered 200 all the same:
    sending it again would not make it readable)."""
    event, error = "", ""
    try:
        envelope = json.loads(body)
    except (ValueError, RecursionError) as exc:
        envelope, error = None, f"Not JSON: {exc!r}"[:500]
    if envelope is not None:
        if isinstance(envelope, dict) and isinstance(envelope.get("event"), str):
            event = clean_text(envelope["event"])[:40]
        else:
            error = "Not a WAHA event: a JSON object with an `event` is expected."
    with schema_context(schema):
        return WahaEvent.objects.create(
            webhook_id=webhook_id,
            request_id=clean_text(request_id)[:100],
            event=event,
            body=body,
            status=WahaEvent.Status.FAILED if error else WahaEvent.Status.PENDING,
            error=error,
        )


def _safe_send(actor: dramatiq.Actor, *args: Any, schema: str, delay: float | None = None) -> bool:
    """Enqueue in the tenant's schema, or log and return False when the broker is down (the sweeper
    picks the event up later)."""
    options: dict[str, Any] = {TENANT_OPTION: schema}
    try:
        actor.send_with_options(args=args, delay=int(delay * 1000) if delay else None, **options)
    except Exception as exc:
        log.warning("enqueue_failed", actor=actor.actor_name, args=args, error=repr(exc))
        return False
    return True


def enqueue_events(*, event_ids: list[int], schema: str, delay: float | None = None) -> bool:
    return _safe_send(process_waha_events, event_ids, schema=schema, delay=delay)


def _backoff(attempts: int) -> float:
    return float(min(BACKOFF_SECONDS * 2 ** max(attempts - 1, 0), BACKOFF_MAX_SECONDS))


def process_event(*, event_id: int) -> str:
    """One pending event of the current tenant, in one transaction with everything it writes. Returns
    its new status ("skip": not pending, or another worker holds it)."""
    try:
        with transaction.atomic():
            event = (
                WahaEvent.objects.select_for_update(skip_locked=True)
                .filter(pk=event_id, status=WahaEvent.Status.PENDING)
                .first()
            )
            if event is None:
                return "skip"
            attempts = event.attempts + 1
            outcome = _handle(event, final=attempts >= MAX_ATTEMPTS)
            now = timezone.now()
            event.attempts, event.error = attempts, outcome.reason[:2000]
            if outcome.status == "defer":
                event.next_attempt_at = now + dt.timedelta(seconds=_backoff(attempts))
            else:
                event.status = (
                    WahaEvent.Status.PROCESSED if outcome.status == "processed" else WahaEvent.Status.IGNORED
                )
                event.processed_at, event.next_attempt_at = now, None
            event.save(update_fields=["attempts", "error", "status", "processed_at", "next_attempt_at"])
    except Exception as exc:
        log.exception("waha_event_failed", event_id=event_id)
        return _record_failure(event_id=event_id, error=exc)
    if outcome.status == "defer":
        enqueue_events(event_ids=[event_id], schema=connection.schema_name, delay=_backoff(attempts))
    return str(event.status)


def _handle(event: WahaEvent, *, final: bool) -> inbound.Outcome:
    if event.event == "":
        return inbound.Outcome("ignored", "not a WAHA event")
    waha_session = WahaSession.objects.filter(webhook_id=event.webhook_id).first()
    if waha_session is None:
        return inbound.Outcome("ignored", "the number was removed")
    envelope = json.loads(bytes(event.body))
    return inbound.handle_event(waha_session=waha_session, envelope=envelope, final=final)


def _record_failure(*, event_id: int, error: BaseException) -> str:
    event = WahaEvent.objects.filter(pk=event_id).first()
    if event is None:
        return "skip"
    event.attempts += 1
    event.error = repr(error)[:2000]
    if event.attempts >= MAX_ATTEMPTS:
        event.status = WahaEvent.Status.FAILED
        event.next_attempt_at = None
    else:
        event.next_attempt_at = timezone.now() + dt.timedelta(seconds=_backoff(event.attempts))
    event.save(update_fields=["attempts", "error", "status", "next_attempt_at"])
    if event.status == WahaEvent.Status.PENDING:
        enqueue_events(event_ids=[event_id], schema=connection.schema_name, delay=_backoff(event.attempts))
    return str(event.status)


@dramatiq.actor(queue_name="inbound", max_retries=0, time_limit=120_000)
def process_waha_events(event_ids: list[int]) -> None:
    """Events of the job's tenant, oldest first. Retries are our own (process_event reschedules a
    deferred or failed event; the sweeper catches what a lost job left)."""
    for event_id in sorted(event_ids):
        process_event(event_id=event_id)


def _schemas_with_waha_numbers() -> list[str]:
    """Active tenants that have a WAHA number: the only schemas the sweeper needs to look at."""
    return sorted(
        set(WahaRoute.objects.filter(tenant__is_active=True).values_list("tenant__schema_name", flat=True))
    )


def pending_event_ids(*, older_than: dt.datetime) -> list[int]:
    """The current tenant's events a job should have processed by `older_than` and has not."""
    return list(
        WahaEvent.objects.filter(status=WahaEvent.Status.PENDING)
        .filter(
            Q(next_attempt_at__isnull=True, received_at__lte=older_than) | Q(next_attempt_at__lte=older_than)
        )
        .order_by("received_at", "id")
        .values_list("pk", flat=True)[:SWEEP_LIMIT]
    )


@dramatiq.actor(queue_name="inbound", max_retries=0)
def sweep_waha_events() -> None:
    """Events still pending a while after they arrived or were due again (Redis or the workers were
    down, a job was lost) get a job. A suspended tenant's events wait for its restore."""
    cutoff = timezone.now() - dt.timedelta(seconds=settings.WHATSAPP_SWEEP_AFTER_SECONDS)
    for schema in _schemas_with_waha_numbers():
        with schema_context(schema):
            ids = pending_event_ids(older_than=cutoff)
        for index in range(0, len(ids), SWEEP_BATCH):
            enqueue_events(event_ids=ids[index : index + SWEEP_BATCH], schema=schema)
        if ids:
            log.info("waha_events_swept", schema=schema, count=len(ids))


def delete_old_events(*, older_than: dt.datetime) -> int:
    """The current tenant's processed and ignored events received before `older_than` (failed ones stay
    for inspection, as the Cloud API's do)."""
    done = [WahaEvent.Status.PROCESSED, WahaEvent.Status.IGNORED]
    deleted, _ = WahaEvent.objects.filter(status__in=done, received_at__lt=older_than).delete()
    return deleted


@dramatiq.actor(queue_name="default", max_retries=0)
def cleanup_waha_events() -> None:
    """Hourly: raw events past WHATSAPP_WEBHOOK_EVENT_RETENTION_DAYS, in each tenant with WAHA numbers."""
    cutoff = timezone.now() - dt.timedelta(days=settings.WHATSAPP_WEBHOOK_EVENT_RETENTION_DAYS)
    for schema in _schemas_with_waha_numbers():
        with schema_context(schema):
            deleted = delete_old_events(older_than=cutoff)
        if deleted:
            log.info("waha_events_deleted", schema=schema, count=deleted)
