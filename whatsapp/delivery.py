"""Outbound delivery: one attempt to send one queued message, with Meta's error classes.

The rule that matters most: a message that has a wamid is never sent again, and neither is one whose
earlier attempt may have reached Meta (worker killed mid-send, connection lost after the request went
out). Before the HTTP call the attempt is claimed in its own committed transaction; a later job that
finds an unfinished claim does not send. Meta echoes `biz_opaque_callback_data` in status webhooks, so
such a message still gets its wamid and statuses if Meta did accept it.
"""

from __future__ import annotations

import datetime as dt
import random
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import structlog
from django.conf import settings
from django.db import OperationalError, close_old_connections, transaction
from django.db.models import Case, Count, F, IntegerField, Min, Q, QuerySet, Value, When
from django.utils import timezone
from django_tenants.utils import schema_context
from psycopg.errors import DeadlockDetected

from conversations import events
from conversations.models import Channel, Conversation, Message
from conversations.services import apply_message_status
from core.redis_client import redis_client
from crm.services.identities import identity_for_sending
from tenants.db import connection
from whatsapp import limiter, metrics
from whatsapp.client import GraphClient, GraphError, RetryClass, client_for
from whatsapp.models import MessageTemplate, NumberHealth, PendingStatus
from whatsapp.pricing import apply_pricing

log = structlog.get_logger("whatsapp.delivery")

OPAQUE_PREFIX = "wacrm:"
# A claim younger than this may belong to a worker that is still sending: leave it alone.
CLAIM_TIMEOUT = dt.timedelta(seconds=settings.WHATSAPP_SEND_CLAIM_TIMEOUT)
INTERRUPTED_TITLE = (
    "Sending was interrupted after the request may have reached WhatsApp; it was not sent again to "
    "avoid a duplicate. Retry if the contact did not receive it."
)


@dataclass(frozen=True)
class Outcome:
    action: str  # sent | failed | retry | wait | skip
    delay: float = 0.0
    wamid: str = ""


def opaque_for(message: Message) -> str:
    return f"{OPAQUE_PREFIX}{message.pk}"


def build_request(message: Message) -> dict[str, Any]:
    """The Cloud API body of one message, templates included. A contact with a number is sent to by
    `to`; one known only by a business-scoped user id (a username hides the number) by `recipient`,
    the BSUID of the sending number's account (crm.services.identities.identity_for_sending)."""
    contact = message.conversation.contact
    channel = message.conversation.channel
    field, address = identity_for_sending(contact=contact, scope=channel.waba_id if channel else "")
    body: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        field or "to": address,
        "type": message.type,
        message.type: message.payload.get(message.type, {}),
    }
    reply_to = message.reply_to
    if reply_to is not None and reply_to.wamid and message.type != Message.Type.REACTION:
        body["context"] = {"message_id": reply_to.wamid}
    if message.type != Message.Type.REACTION:
        body["biz_opaque_callback_data"] = opaque_for(message)
    return body


def backoff_delay(*, attempts: int, code: int | None) -> float:
    if code == 131056:
        # Pair rate limit (one message per ~6 s to one user): Meta asks for 4^n seconds.
        return float(4 ** max(1, attempts))
    base = settings.WHATSAPP_SEND_BACKOFF_SECONDS * (2 ** max(0, attempts - 1))
    capped = min(base, settings.WHATSAPP_SEND_BACKOFF_MAX_SECONDS)
    return capped * random.uniform(0.5, 1.0)  # jitter: retries of many messages do not stampede


# Meta's throughput levels (GET /{phone_number_id}?fields=throughput, kept in NumberHealth by the numbers
# page): messages per second. HIGH is "up to 1,000"; Meta raises a number to it automatically.
THROUGHPUT_LEVEL_CAPS = {"STANDARD": 80, "HIGH": 1000}
# What Meta's level and the Marketing Messages setting of a number are re-read after (NumberHealth; the
# channel's own throughput_cap and coexistence come with the channel, fresh for every send).
NUMBER_SETTINGS_SECONDS = 10.0
_number_settings: dict[tuple[str, int], tuple[float, str, bool]] = {}


def number_settings(channel: Channel) -> tuple[int, bool]:
    """(messages per second the limiter allows, onboarded to the Marketing Messages API). The cap is
    Meta's throughput level when the numbers page has read it, else the number's throughput_cap; a
    coexistence number stays at 20/s whatever the level (Channel.send_rate_cap)."""
    key = (connection.schema_name, channel.pk)
    cached = _number_settings.get(key)
    if cached is None or time.monotonic() - cached[0] >= NUMBER_SETTINGS_SECONDS:
        health = NumberHealth.objects.filter(channel_id=channel.pk).values_list(
            "throughput", "marketing_messages_onboarded"
        )
        level, onboarded = health.first() or ("", False)
        cached = (time.monotonic(), str(level).upper(), bool(onboarded))
        _number_settings[key] = cached
    cap = THROUGHPUT_LEVEL_CAPS.get(cached[1]) or channel.throughput_cap
    if channel.coexistence:
        cap = min(cap, channel.send_rate_cap)
    return cap, cached[2]


# 131049: Meta refused a marketing message to this user (its per-user marketing limit). Another one to
# the same contact within a day would be refused too (and may count against the number's quality).
MARKETING_LIMIT_SECONDS = 24 * 3600
MARKETING_LIMIT_TITLE = (
    "Not sent: WhatsApp refused a marketing message to this contact in the last 24 hours "
    "(its per-user marketing limit, 131049). Try again tomorrow."
)
# Meta's pair rate limit: one message to the same user about every 6 s (131056 beyond it).
PAIR_SECONDS = 6.0


def _marketing_key(contact_id: int) -> str:
    return f"wacrm:wa:mktlimit:{connection.schema_name}:{contact_id}"


def _pair_key(contact_id: int) -> str:
    return f"wacrm:wa:pair:{connection.schema_name}:{contact_id}"


def marketing_limited(*, contact_id: int) -> bool:
    """Meta refused a marketing message to the contact (131049) less than a day ago."""
    try:
        return bool(redis_client().exists(_marketing_key(contact_id)))
    except Exception:  # Redis down: let Meta decide
        return False


def _marketing_limited_among(contact_ids: list[int]) -> set[int]:
    """marketing_limited for many contacts in one Redis call."""
    if not contact_ids:
        return set()
    try:
        found = redis_client().mget([_marketing_key(c) for c in contact_ids])
    except Exception:  # Redis down: let Meta decide
        return set()
    return {c for c, value in zip(contact_ids, found, strict=True) if value is not None}


def _record_marketing_limit(contact_id: int) -> None:
    try:
        redis_client().set(_marketing_key(contact_id), 1, ex=MARKETING_LIMIT_SECONDS)
    except Exception as exc:
        log.warning("marketing_limit_not_recorded", contact=contact_id, error=repr(exc))


def _mark_pairs(contact_ids: list[int]) -> None:
    """Messages just went to these contacts: bulk sends to them wait PAIR_SECONDS (131056)."""
    if not contact_ids:
        return
    try:
        pipe = redis_client().pipeline(transaction=False)
        for contact_id in contact_ids:
            pipe.set(_pair_key(contact_id), 1, px=int(PAIR_SECONDS * 1000))
        pipe.execute()
    except Exception as exc:
        log.warning("pair_marks_failed", error=repr(exc))


def _unmark_pairs(contact_ids: list[int]) -> None:
    if not contact_ids:
        return
    try:
        redis_client().delete(*[_pair_key(c) for c in contact_ids])
    except Exception as exc:
        log.warning("pair_marks_failed", error=repr(exc))


def _recent_pairs(contact_ids: list[int]) -> set[int]:
    if not contact_ids:
        return set()
    try:
        found = redis_client().mget([_pair_key(c) for c in contact_ids])
    except Exception:
        return set()
    return {c for c, value in zip(contact_ids, found, strict=True) if value is not None}


def _template_categories(messages: list[Message]) -> dict[int, str]:
    ids = {
        m.payload.get("template_id")
        for m in messages
        if m.type == Message.Type.TEMPLATE and isinstance(m.payload.get("template_id"), int)
    }
    if not ids:
        return {}
    return {
        pk: (category or "").upper()
        for pk, category in MessageTemplate.objects.filter(pk__in=ids).values_list("pk", "category")
    }


def _is_marketing(message: Message, categories: dict[int, str]) -> bool:
    return (
        message.type == Message.Type.TEMPLATE
        and categories.get(message.payload.get("template_id")) == "MARKETING"  # type: ignore[arg-type]
    )


def load_due_message(*, message_id: int) -> Message | Outcome:
    """The queued outbound message `message_id` (with its conversation, number, contact and reply), due
    now; or the outcome when there is nothing to send: already sent or not queued, a duplicate job of
    one scheduled later, or a number that cannot send (the message failed visibly). Every channel's
    send job starts here."""
    message = (
        Message.objects.select_related("conversation__channel", "conversation__contact", "reply_to")
        .filter(pk=message_id, direction=Message.Direction.OUTBOUND)
        .first()
    )
    if message is None or message.wamid or message.status != Message.Status.QUEUED:
        return Outcome("skip")
    now = timezone.now()
    if message.next_attempt_at and message.next_attempt_at > now + dt.timedelta(seconds=1):
        return Outcome("skip")  # a duplicate job; the scheduled one (or the requeue sweeper) sends it
    channel = message.conversation.channel
    if channel is None or not channel.is_active:
        reason = channel.unavailable_reason if channel else "The conversation has no WhatsApp number."
        fail_message(message_id=message.pk, code=None, title=reason[:300])
        return Outcome("failed")
    return message


def take_send_slot(*, phone_number_id: str, cap: int, bulk: bool) -> Outcome | None:
    """Wait for this number's next send slot (the per-number cap, replies before bulk); None once it is
    ours, or the outcome "wait" when the limiter refused (the job comes back after the delay)."""
    slot = limiter.acquire(schema=connection.schema_name, phone_number_id=phone_number_id, cap=cap, bulk=bulk)
    if not slot.reserved:
        metrics.SEND_RETRIES.labels(reason="limiter").inc()
        return Outcome("wait", delay=max(slot.wait, 0.005))
    if slot.wait > 0:
        time.sleep(slot.wait)
    metrics.LIMITER_WAIT_SECONDS.observe(slot.wait)
    return None


def deliver_message(*, message_id: int) -> Outcome:
    message = load_due_message(message_id=message_id)
    if isinstance(message, Outcome):
        return message
    channel = message.conversation.channel
    assert channel is not None

    categories = _template_categories([message])
    marketing = _is_marketing(message, categories)
    if marketing and marketing_limited(contact_id=message.conversation.contact_id):
        fail_message(message_id=message.pk, code=131049, title=MARKETING_LIMIT_TITLE)
        return Outcome("failed")
    cap, onboarded = number_settings(channel)  # 20/s for a coexistence number, whatever its level
    waiting = take_send_slot(phone_number_id=channel.phone_number_id, cap=cap, bulk=message.bulk)
    if waiting is not None:
        return waiting

    if not _claim(message_id=message.pk):
        return Outcome("skip")
    started = time.perf_counter()
    try:
        wamid = client_for(channel).send_message(
            phone_number_id=channel.phone_number_id,
            body=build_request(message),
            marketing=marketing and onboarded,
        )
    except GraphError as error:
        metrics.SEND_SECONDS.observe(time.perf_counter() - started)
        return handle_send_error(message_id=message.pk, channel=channel, error=error)
    metrics.SEND_SECONDS.observe(time.perf_counter() - started)
    _mark_pairs([message.conversation.contact_id])
    record_message_sent(message_id=message.pk, wamid=wamid)
    return Outcome("sent", wamid=wamid)


def _claim(*, message_id: int) -> bool:
    """Mark the attempt as started, committed before any HTTP; False when nothing should be sent."""
    # The usual case in one autocommitted statement; the locked path below handles an earlier claim.
    if Message.objects.filter(
        pk=message_id, wamid__isnull=True, status=Message.Status.QUEUED, send_started_at__isnull=True
    ).update(send_started_at=timezone.now(), send_attempts=F("send_attempts") + 1):
        return True
    with transaction.atomic():
        message = Message.objects.select_for_update().get(pk=message_id)
        if message.wamid or message.status != Message.Status.QUEUED:
            return False
        now = timezone.now()
        if message.send_started_at is not None:
            if now - message.send_started_at < CLAIM_TIMEOUT:
                return False
            log.warning("send_interrupted", message=message_id, started=message.send_started_at.isoformat())
            _fail_locked(message, code=None, title=INTERRUPTED_TITLE, retry_class=RetryClass.UNCERTAIN)
            return False
        message.send_started_at = now
        message.send_attempts += 1
        message.save(update_fields=["send_started_at", "send_attempts"])
    return True


def record_message_sent(*, message_id: int, wamid: str) -> Message:
    with transaction.atomic():
        message = Message.objects.select_for_update().get(pk=message_id)
        message.wamid = wamid
        message.send_started_at = None
        message.next_attempt_at = None
        fields = ["wamid", "send_started_at", "next_attempt_at"]
        # A failed status that a round applied first (it adopted the wamid) stays, with its error; a
        # retry's error goes, and so does "interrupted" (the answer came after all).
        if message.status != Message.Status.FAILED or message.error_title == INTERRUPTED_TITLE:
            message.error_code = None
            message.error_title = ""
            message.error_details = ""
            fields += ["error_code", "error_title", "error_details"]
            if message.status in (Message.Status.QUEUED, Message.Status.FAILED):
                message.status = Message.Status.SENT
                fields.append("status")
        if message.sent_at is None:
            message.sent_at = timezone.now()
            fields.append("sent_at")
        message.save(update_fields=fields)
        metrics.MESSAGES.labels(direction="out", type=message.type, status="sent").inc()
        events.message_updated(message)
        apply_pending_statuses(message=message)
    return message


def apply_pending_statuses(*, message: Message) -> None:
    """Statuses that arrived before we knew the wamid (kept in PendingStatus) now apply, in order."""
    if not message.wamid:
        return
    pending = list(PendingStatus.objects.filter(wamid=message.wamid).order_by("timestamp", "id"))
    for status in pending:
        errors = status.payload.get("errors") or [{}]
        apply_message_status(
            message=message,
            status=status.status,
            timestamp=status.timestamp,
            error_code=errors[0].get("code"),
            error_title=str(errors[0].get("title") or ""),
            error_details=str((errors[0].get("error_data") or {}).get("details") or ""),
        )
        apply_pricing(message=message, raw=status.payload)
    if pending:
        PendingStatus.objects.filter(pk__in=[p.pk for p in pending]).delete()


def handle_send_error(*, message_id: int, channel: Channel, error: GraphError) -> Outcome:
    log.info(
        "send_error", message=message_id, code=error.code, title=error.title, retry_class=error.retry_class
    )
    if error.code == 130429:
        # Meta says the number is over its throughput: every worker's sends from it pause a moment.
        limiter.back_off(
            schema=connection.schema_name,
            phone_number_id=channel.phone_number_id,
            seconds=settings.WHATSAPP_THROTTLED_PAUSE_SECONDS,
        )
    with transaction.atomic():
        message = Message.objects.select_for_update().get(pk=message_id)
        if error.code == 131049:
            _record_marketing_limit(message.conversation.contact_id)
        if error.retry_class == RetryClass.RETRY:
            now = timezone.now()
            delay = backoff_delay(attempts=message.send_attempts, code=error.code)
            too_old = now + dt.timedelta(seconds=delay) - message.created_at > dt.timedelta(
                seconds=settings.WHATSAPP_SEND_MAX_AGE_SECONDS
            )
            if not too_old:
                message.send_started_at = None
                message.next_attempt_at = now + dt.timedelta(seconds=delay)
                message.error_code = error.code
                message.error_title = f"Retrying: {error.title}"[:300]
                message.error_details = error.details
                message.save(
                    update_fields=[
                        "send_started_at",
                        "next_attempt_at",
                        "error_code",
                        "error_title",
                        "error_details",
                    ]
                )
                metrics.SEND_RETRIES.labels(reason=str(error.code or error.http_status or "network")).inc()
                return Outcome("retry", delay=delay)
            _fail_locked(
                message,
                code=error.code,
                title=f"Gave up after {message.send_attempts} attempts: {error.title}",
                details=error.details,
                retry_class=error.retry_class,
            )
            return Outcome("failed")
        if error.retry_class == RetryClass.UNCERTAIN:
            _fail_locked(
                message,
                code=None,
                title=INTERRUPTED_TITLE,
                details=error.title,
                retry_class=error.retry_class,
            )
            return Outcome("failed")
        if error.retry_class in (RetryClass.AUTH, RetryClass.ACCOUNT):
            from whatsapp.services import set_channel_status

            status = (
                Channel.Status.NEEDS_REAUTH
                if error.retry_class == RetryClass.AUTH
                else Channel.Status.DISABLED
            )
            set_channel_status(channel=channel, status=status, reason=f"{error.code}: {error.title}")
        _fail_locked(
            message, code=error.code, title=error.title, details=error.details, retry_class=error.retry_class
        )
    return Outcome("failed")


def _fail_locked(
    message: Message, *, code: int | None, title: str, details: str = "", retry_class: RetryClass | str = ""
) -> None:
    message.status = Message.Status.FAILED
    message.error_code = code
    message.error_title = title[:300]
    message.error_details = details
    message.send_started_at = None
    message.next_attempt_at = None
    message.save(
        update_fields=[
            "status",
            "error_code",
            "error_title",
            "error_details",
            "send_started_at",
            "next_attempt_at",
        ]
    )
    metrics.SEND_FAILURES.labels(retry_class=str(retry_class or "permanent")).inc()
    metrics.MESSAGES.labels(direction="out", type=message.type, status="failed").inc()
    events.message_updated(message)


def fail_message(*, message_id: int, code: int | None, title: str, details: str = "") -> None:
    with transaction.atomic():
        message = Message.objects.select_for_update().get(pk=message_id)
        if message.status == Message.Status.QUEUED and not message.wamid:
            _fail_locked(message, code=code, title=title, details=details)


def send_read_receipt(*, message_id: int, typing: bool = False) -> None:
    message = Message.objects.select_related("conversation__channel").filter(pk=message_id).first()
    if message is None or not message.wamid or message.conversation.channel is None:
        return
    channel = message.conversation.channel
    if not channel.is_active:
        return
    try:
        client_for(channel).mark_read(
            phone_number_id=channel.phone_number_id, wamid=message.wamid, typing=typing
        )
    except GraphError as error:
        if error.retry_class in (RetryClass.AUTH, RetryClass.ACCOUNT):
            from whatsapp.services import set_channel_status

            set_channel_status(
                channel=channel,
                status=Channel.Status.NEEDS_REAUTH
                if error.retry_class == RetryClass.AUTH
                else Channel.Status.DISABLED,
                reason=f"{error.code}: {error.title}",
            )
            return
        if error.retryable:
            raise
        log.info("read_receipt_refused", message=message_id, code=error.code, title=error.title)


# -- bulk: several sends per job --------------------------------------------------------------------

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _http_pool() -> ThreadPoolExecutor:
    """Threads that only wait on HTTP (no database): a batch's sends overlap on the pooled client."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(
                max_workers=max(1, settings.WHATSAPP_SEND_CONCURRENCY), thread_name_prefix="wa-send"
            )
    return _pool


@dataclass(frozen=True)
class Requeue:
    message_id: int
    delay: float = 0.0


def deliver_bulk(
    *, message_id: int, gate: threading.Semaphore | None = None, busy_delay: float = 0.05
) -> list[Requeue]:
    """Send the number's queued bulk messages, this one first, several per job: claimed together (one
    committed transaction before any HTTP, as deliver_message), each at a limiter slot, their requests in
    flight together on the pooled client, the results written together. Returns the jobs to enqueue again.

    The guarantees are deliver_message's: only a queued message without a wamid and without a claim is
    claimed; a claimed message whose request may have gone out is never sent again (the requeue sweeper
    finds its claim after WHATSAPP_SEND_CLAIM_TIMEOUT and fails it visibly, and Meta's statuses still
    reconcile it by biz_opaque_callback_data); a message that was claimed but not sent is released."""
    row = (
        Message.objects.filter(pk=message_id, direction=Message.Direction.OUTBOUND)
        .values_list("status", "wamid", "send_started_at", "next_attempt_at", "bulk", "conversation__channel")
        .first()
    )
    if row is None:
        return []
    status, wamid, started, next_at, bulk, channel_id = row
    now = timezone.now()
    if wamid or status != Message.Status.QUEUED:
        return []
    if started is not None and now - started < CLAIM_TIMEOUT:
        return []  # another batch has it
    if next_at and next_at > now + dt.timedelta(seconds=1):
        return []  # a duplicate job; the scheduled one sends it
    channel = Channel.objects.filter(pk=channel_id).first() if channel_id else None
    if not bulk or started is not None or channel is None or not channel.is_active:
        # An interrupted claim, a number that stopped: the one-message path fails it with the reason.
        outcome = deliver_message(message_id=message_id)
        return [Requeue(message_id, outcome.delay)] if outcome.action in ("retry", "wait") else []

    if gate is not None and not gate.acquire(blocking=False):
        return [Requeue(message_id, busy_delay)]  # the process runs enough batches: try again shortly
    try:
        return _deliver_batch(channel=channel, message_id=message_id)
    finally:
        if gate is not None:
            gate.release()


@dataclass(frozen=True)
class NumberRun:
    claimed: int  # messages this job claimed
    again: float | None  # seconds until the number's job should run again; None: nothing is queued
    busy: bool = False  # the process ran enough batches already: nothing was looked at


def deliver_bulk_number(
    *,
    channel_id: int,
    gate: threading.Semaphore | None = None,
    busy_delay: float = 0.05,
    seconds: float = 5.0,
) -> NumberRun:
    """One number's job (the bulk lane's unit of work, instead of one job per message): batch after
    batch of its queued bulk messages (each batch as deliver_bulk's: claimed together before any HTTP,
    paced by the limiter, sent concurrently, results written together) for about `seconds`; first, claims
    a dead worker left behind fail visibly (never resent). `again` is 0 when more is queued, the
    earliest retry or pair wait when only those are left, `busy_delay` when the process already runs
    enough batches, None when nothing of the number is queued."""
    channel = Channel.objects.filter(pk=channel_id).first()
    if channel is None:
        return NumberRun(0, None)
    _fail_abandoned(channel_id)
    if not channel.is_active:
        return NumberRun(0, _fail_stopped_number(channel))
    if gate is not None and not gate.acquire(blocking=False):
        return NumberRun(0, busy_delay, busy=True)
    claimed = 0
    stop = threading.Event()  # shared by the job's batches: an answer that stops the number stops them all
    recording: Future[list[Requeue]] | None = None  # the previous batch's answers, written meanwhile
    schema = connection.schema_name
    try:
        deadline = time.monotonic() + seconds
        while channel is not None and channel.is_active and not stop.is_set():
            batch = _start_batch(channel=channel, message_id=None, stop=stop)
            if recording is not None:
                recording.result()  # one batch behind at most; its errors end the job
                recording = None
            if batch is None:
                break
            claimed += batch.claimed
            if connection.in_atomic_block:
                _finish_batch(batch)  # a caller's transaction (tests): another connection would not see it
            else:
                recording = _recorder_pool().submit(_finish_in_schema, schema, batch)
            if time.monotonic() >= deadline:
                break
            channel = Channel.objects.filter(pk=channel_id).first()  # an answer may have stopped it
    finally:
        try:
            if recording is not None:
                recording.result()
        finally:
            if gate is not None:
                gate.release()
    if stop.is_set() and channel is not None:
        channel = Channel.objects.filter(pk=channel_id).first()  # stopped, or only told to slow down
    if channel is None:
        return NumberRun(claimed, None)
    if not channel.is_active:
        return NumberRun(claimed, 0.0)  # the next run fails what is left, with the reason
    return NumberRun(claimed, next_bulk_run(channel_id=channel_id))


def _fail_abandoned(channel_id: int) -> None:
    """Bulk messages of the number whose claim is older than CLAIM_TIMEOUT (a worker died mid-batch): the
    one-message path fails them as interrupted."""
    stale = Message.objects.filter(
        conversation__channel_id=channel_id,
        direction=Message.Direction.OUTBOUND,
        bulk=True,
        status=Message.Status.QUEUED,
        wamid__isnull=True,
        send_started_at__lte=timezone.now() - CLAIM_TIMEOUT,
    )
    for message_id in stale.values_list("pk", flat=True)[:STOPPED_BATCH]:
        deliver_message(message_id=message_id)


def _queued_bulk(channel_id: int) -> QuerySet[Message]:
    return Message.objects.filter(
        conversation__channel_id=channel_id,
        direction=Message.Direction.OUTBOUND,
        bulk=True,
        status=Message.Status.QUEUED,
        wamid__isnull=True,
        send_started_at__isnull=True,
    )


def next_bulk_run(*, channel_id: int) -> float | None:
    """Seconds until the number's next queued bulk message may go (0: now), None when none is queued."""
    earliest = _queued_bulk(channel_id).aggregate(
        unscheduled=Count("pk", filter=Q(next_attempt_at__isnull=True)), at=Min("next_attempt_at")
    )
    if earliest["unscheduled"]:
        return 0.0
    if earliest["at"] is None:
        return None
    return max(0.0, (earliest["at"] - timezone.now()).total_seconds())


STOPPED_BATCH = 200


def _fail_stopped_number(channel: Channel) -> float | None:
    """The number stopped (re-authorisation, disabled, Meta's spam limit): its queued bulk messages fail
    with the reason, those waiting for a retry too (they could only fail the same way)."""
    ids = list(_queued_bulk(channel.pk).order_by("pk").values_list("pk", flat=True)[:STOPPED_BATCH])
    reason = (channel.unavailable_reason or "The number is not active.")[:300]
    for message_id in ids:
        fail_message(message_id=message_id, code=None, title=reason)
    return 0.0 if len(ids) == STOPPED_BATCH else None


def _deliver_batch(*, channel: Channel, message_id: int) -> list[Requeue]:
    return _run_batch(channel=channel, message_id=message_id)[1]


def _run_batch(*, channel: Channel, message_id: int | None) -> tuple[int, list[Requeue]]:
    """One batch of the number's queued bulk messages (`message_id` first when given): how many were
    claimed, and the messages to try again later."""
    batch = _start_batch(channel=channel, message_id=message_id, stop=threading.Event())
    if batch is None:
        return 0, []
    return batch.claimed, _finish_batch(batch)


BATCH_FIELDS = (
    "id",
    "type",
    "payload",
    "bulk",
    "reply_to_id",
    "conversation__id",
    "conversation__channel_id",
    "conversation__contact__id",
    "conversation__contact__wa_id",
    "conversation__contact__phone",
    "conversation__contact__whatsapp_user_id",
)


@dataclass
class _Batch:
    """A batch whose requests are in flight: what _finish_batch records."""

    channel: Channel
    claimed: int
    inflight: list[tuple[Message, Future[tuple[str, GraphError | None, float]]]]
    unsent: list[Message]
    requeue: list[Requeue]
    stop: threading.Event


def _start_batch(*, channel: Channel, message_id: int | None, stop: threading.Event) -> _Batch | None:
    """Claim a batch (committed before any HTTP) and send it at the number's pace (its requests in flight
    on the HTTP pool when this returns); None when nothing was claimed. `stop` is set by an answer that
    stops the number (auth, account, throttled): what is not sent by then stays unsent."""
    cap, onboarded = number_settings(channel)
    size = max(1, min(settings.WHATSAPP_BULK_BATCH, int(cap * settings.WHATSAPP_BULK_BATCH_SECONDS)))
    claimed = _claim_batch(channel=channel, first=message_id, size=size)
    if not claimed:
        return None
    # Only what a request is built from (build_request): whole rows of four models cost more CPU per
    # message than the rest of the batch. A quoted message (rare in bulk) is read when used.
    messages = list(
        Message.objects.select_related("conversation__contact")
        .only(*BATCH_FIELDS)
        .filter(pk__in=claimed)
        .order_by(_first(message_id), "pk")
    )
    for message in messages:
        message.conversation.channel = channel
    requeue: list[Requeue] = []
    categories = _template_categories(messages)
    contact_ids = [m.conversation.contact_id for m in messages]
    recent = _recent_pairs(contact_ids)
    limited = _marketing_limited_among(
        [m.conversation.contact_id for m in messages if _is_marketing(m, categories)]
    )
    to_send: list[Message] = []
    deferred: list[Message] = []
    for message in messages:
        contact_id = message.conversation.contact_id
        if contact_id in limited and _is_marketing(message, categories):
            fail_message(message_id=message.pk, code=131049, title=MARKETING_LIMIT_TITLE)
        elif contact_id in recent:
            deferred.append(message)  # a message reached them < 6 s ago: wait instead of a 131056
        else:
            to_send.append(message)
    if deferred:
        _release([m.pk for m in deferred], delay=PAIR_SECONDS)
        requeue += [Requeue(m.pk, PAIR_SECONDS) for m in deferred]

    schema = connection.schema_name
    client = client_for(channel)
    deadline = time.monotonic() + settings.WHATSAPP_BULK_BATCH_SECONDS * 2 + 0.5
    inflight: list[tuple[Message, Future[tuple[str, GraphError | None, float]]]] = []
    unsent: list[Message] = []
    pool = _http_pool()
    slots: list[float] = []  # booked slot times (time.monotonic()), in order
    try:
        for index, message in enumerate(to_send):
            if not slots and not stop.is_set():
                slots = _bulk_slots(
                    schema=schema, channel=channel, cap=cap, count=len(to_send) - index, deadline=deadline
                )
            if stop.is_set() or not slots:
                unsent = to_send[index:]
                break
            wait = slots.pop(0) - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            metrics.LIMITER_WAIT_SECONDS.observe(max(0.0, wait))
            body = build_request(message)
            marketing = onboarded and _is_marketing(message, categories)
            inflight.append(
                (message, pool.submit(_post, client, channel.phone_number_id, body, marketing, stop, cap))
            )
    except BaseException:
        # Nothing of the rest went out: released (those in flight keep their claim, as any sent request).
        _release([m.pk for m in to_send[len(inflight) :]], delay=0.0)
        raise
    # Marked when the requests go, not when they are answered: the next batch (claimed while this one's
    # answers are recorded) must not send to the same contacts within Meta's pair limit.
    _mark_pairs([m.conversation.contact_id for m, _ in inflight])
    return _Batch(channel, len(claimed), inflight, unsent, requeue, stop)


def _finish_batch(batch: _Batch) -> list[Requeue]:
    """The answers of a batch's requests, written together; the messages to try again later."""
    sent: list[tuple[Message, str]] = []
    failed: list[tuple[Message, GraphError]] = []
    unsent, requeue = list(batch.unsent), list(batch.requeue)
    for message, future in batch.inflight:
        wamid, error, seconds = future.result()
        if error is not None:
            failed.append((message, error))
        elif wamid:
            sent.append((message, wamid))
        else:
            unsent.append(message)  # not sent: the number stopped first
            continue
        metrics.SEND_SECONDS.observe(seconds)
    if sent:
        record_messages_sent(sent=[(m.pk, wamid) for m, wamid in sent])
    # Marked when the requests went: a contact whose message was refused or never sent may get the next.
    _unmark_pairs(
        [m.conversation.contact_id for m, _ in failed] + [m.conversation.contact_id for m in unsent]
    )
    for message, error in failed:
        outcome = handle_send_error(message_id=message.pk, channel=batch.channel, error=error)
        if outcome.action in ("retry", "wait"):
            requeue.append(Requeue(message.pk, outcome.delay))
    if unsent:
        # Claimed, never sent: released for another job (after a pause when Meta said slow down).
        delay = settings.WHATSAPP_THROTTLED_PAUSE_SECONDS if batch.stop.is_set() else 0.0
        _release([m.pk for m in unsent], delay=delay)
        requeue += [Requeue(m.pk, delay) for m in unsent]
    return requeue


_recorders: ThreadPoolExecutor | None = None


def _recorder_pool() -> ThreadPoolExecutor:
    """Threads that write a batch's answers while its number's next batch is sent (their own database
    connections, kept open as the worker threads' are)."""
    global _recorders
    with _pool_lock:
        if _recorders is None:
            _recorders = ThreadPoolExecutor(
                max_workers=max(1, settings.WHATSAPP_BULK_JOBS_PER_PROCESS), thread_name_prefix="wa-record"
            )
    return _recorders


def _finish_in_schema(schema: str, batch: _Batch) -> list[Requeue]:
    close_old_connections()  # a connection the database dropped since the last batch is replaced
    with schema_context(schema):
        return _finish_batch(batch)


def _first(message_id: int | None) -> Case | Value:
    if message_id is None:
        return Value(0)
    return Case(When(pk=message_id, then=Value(0)), default=Value(1), output_field=IntegerField())


def _claim_batch(*, channel: Channel, first: int | None, size: int) -> list[int]:
    """Claim up to `size` queued bulk messages of the number (`first` first), at most one per conversation
    (Meta's pair rate limit), skipping rows another batch holds; committed before any HTTP."""
    now = timezone.now()
    with transaction.atomic():
        candidates = list(
            Message.objects.filter(
                conversation__channel_id=channel.pk,
                direction=Message.Direction.OUTBOUND,
                bulk=True,
                status=Message.Status.QUEUED,
                wamid__isnull=True,
                send_started_at__isnull=True,
            )
            .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now + dt.timedelta(seconds=1)))
            .annotate(own=_first(first))
            .order_by("own", "pk")
            .select_for_update(skip_locked=True, of=("self",))
            .values_list("pk", "conversation_id")[: size * 2]
        )
        chosen: list[int] = []
        conversations: set[int] = set()
        for pk, conversation_id in candidates:
            if conversation_id not in conversations and len(chosen) < size:
                conversations.add(conversation_id)
                chosen.append(pk)
        if chosen:
            Message.objects.filter(pk__in=chosen).update(
                send_started_at=now, send_attempts=F("send_attempts") + 1
            )
    return chosen


def _release(message_ids: list[int], *, delay: float) -> None:
    """Claimed but never sent: queued again as if never attempted (after `delay`)."""
    Message.objects.filter(pk__in=message_ids, wamid__isnull=True, status=Message.Status.QUEUED).update(
        send_started_at=None,
        send_attempts=F("send_attempts") - 1,
        next_attempt_at=timezone.now() + dt.timedelta(seconds=delay) if delay else None,
    )


def _bulk_slots(*, schema: str, channel: Channel, cap: int, count: int, deadline: float) -> list[float]:
    """Book up to `count` bulk slots of the number in one limiter call (at most
    WHATSAPP_BULK_BOOK_AHEAD_SECONDS ahead, so agent replies still go first), waiting for the first free
    one; their times as time.monotonic(), or [] past the deadline."""
    while True:
        slots = limiter.acquire_bulk(
            schema=schema,
            phone_number_id=channel.phone_number_id,
            cap=cap,
            count=count,
            horizon=settings.WHATSAPP_BULK_BOOK_AHEAD_SECONDS,
        )
        now = time.monotonic()
        if slots.offsets:
            return [now + offset for offset in slots.offsets]
        if now + slots.wait > deadline:
            return []
        time.sleep(min(max(slots.wait, 0.001), 0.05))


# When each number's next bulk request may leave this process (time.monotonic()). Requests are submitted
# at their limiter slots, but a busy process (CPU, GIL, a garbage collection) can hold several threads past
# theirs: each takes its turn when it actually goes, so after a stall they leave spaced, not in a burst.
_spacing: dict[str, float] = {}
_spacing_lock = threading.Lock()


def _space(phone_number_id: str, cap: int) -> None:
    """Wait until the number's previous bulk request left at least one interval of the bulk pace (the
    cap's WHATSAPP_BULK_SHARE) ago, also when a late batch catches up."""
    interval = 1.0 / max(0.1, cap * settings.WHATSAPP_BULK_SHARE)
    while True:
        with _spacing_lock:
            now = time.monotonic()
            free = _spacing.get(phone_number_id, 0.0)
            if now >= free:
                _spacing[phone_number_id] = now + interval
                return
        time.sleep(free - now)


def _post(
    client: GraphClient,
    phone_number_id: str,
    body: dict[str, Any],
    marketing: bool,
    stop: threading.Event,
    cap: int = 0,
) -> tuple[str, GraphError | None, float]:
    if cap:
        _space(phone_number_id, cap)
    started = time.perf_counter()
    if stop.is_set():
        return "", None, 0.0  # an earlier answer stopped the number: this one never goes out
    try:
        wamid = client.send_message(phone_number_id=phone_number_id, body=body, marketing=marketing)
    except GraphError as error:
        if error.code == 130429 or error.retry_class in (RetryClass.AUTH, RetryClass.ACCOUNT):
            stop.set()
        return "", error, time.perf_counter() - started
    except Exception as exc:  # a bug, not Meta: the claim stays, so it is never resent blindly
        log.exception("bulk_send_crashed", error=repr(exc))
        crashed = GraphError(
            code=None, title=f"Sending failed: {exc!r}"[:300], retry_class=RetryClass.UNCERTAIN
        )
        return "", crashed, time.perf_counter() - started
    return wamid, None, time.perf_counter() - started


SENT_FIELDS = [
    "wamid",
    "status",
    "sent_at",
    "send_started_at",
    "next_attempt_at",
    "error_code",
    "error_title",
    "error_details",
]


DEADLOCK_RETRIES = 3


def record_messages_sent(*, sent: list[tuple[int, str]]) -> None:
    """record_message_sent for many messages: one locked read, one UPDATE, one event INSERT. A status
    round of the inbound worker may lock some of the same rows in another order (a status webhook that
    came before this batch finished adopts the wamid by biz_opaque_callback_data): PostgreSQL then breaks
    the deadlock by rolling one back, and this one tries again."""
    for attempt in range(DEADLOCK_RETRIES):
        try:
            _record_messages_sent(sent=sent)
            return
        except OperationalError as exc:
            if not isinstance(exc.__cause__, DeadlockDetected) or attempt == DEADLOCK_RETRIES - 1:
                raise
            log.info("record_sent_deadlock_retry", attempt=attempt + 1)
            time.sleep(0.02 * (attempt + 1))


def _record_messages_sent(*, sent: list[tuple[int, str]]) -> None:
    """Set-wise: the rows locked in wamid order (the order of the inbound worker's status rounds,
    services.webhooks), one UPDATE from the (id, wamid) pairs, one event INSERT; no model instances."""
    in_wamid_order = sorted(sent, key=lambda pair: pair[1])
    ids = [pk for pk, _ in in_wamid_order]
    wamids = [wamid for _, wamid in in_wamid_order]
    table = Message._meta.db_table
    kept = "(m.status = %(failed)s AND m.error_title <> %(interrupted)s)"
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            f"SELECT m.id FROM {table} m JOIN unnest(%s::bigint[]) WITH ORDINALITY AS v(id, n) "
            "ON m.id = v.id ORDER BY v.n FOR UPDATE OF m",
            [ids],
        )
        cursor.execute(
            # A retry's error goes, and so does "interrupted" (the answer came after all); a failed
            # status that a round applied first (it adopted the wamid) stays, with its error.
            f"UPDATE {table} m SET wamid = v.wamid, send_started_at = NULL, next_attempt_at = NULL, "
            f"error_code = CASE WHEN {kept} THEN m.error_code END, "
            f"error_title = CASE WHEN {kept} THEN m.error_title ELSE '' END, "
            f"error_details = CASE WHEN {kept} THEN m.error_details ELSE '' END, "
            f"status = CASE WHEN {kept} THEN m.status WHEN m.status IN (%(queued)s, %(failed)s) "
            "THEN %(sent)s ELSE m.status END, "
            "sent_at = COALESCE(m.sent_at, %(now)s) "
            "FROM unnest(%(ids)s::bigint[], %(wamids)s::text[]) AS v(id, wamid) WHERE m.id = v.id "
            "RETURNING m.id, m.conversation_id, m.status, m.type",
            {
                "failed": Message.Status.FAILED,
                "interrupted": INTERRUPTED_TITLE,
                "queued": Message.Status.QUEUED,
                "sent": Message.Status.SENT,
                "now": timezone.now(),
                "ids": ids,
                "wamids": wamids,
            },
        )
        updated = cursor.fetchall()
        for message_type in {row[3] for row in updated}:
            metrics.MESSAGES.labels(direction="out", type=message_type, status="sent").inc(
                sum(1 for row in updated if row[3] == message_type)
            )
        conversations = Conversation.objects.only("id", "assignee_id", "team_id").in_bulk(
            {row[1] for row in updated}
        )
        events.publish_events(
            [
                events.Event(
                    conversations[conversation_id],
                    {
                        "type": "message.updated",
                        "conversation": conversation_id,
                        "message": pk,
                        "status": status,
                    },
                )
                for pk, conversation_id, status, _type in updated
            ]
        )
        pending = set(PendingStatus.objects.filter(wamid__in=wamids).values_list("wamid", flat=True))
        if pending:
            for message in Message.objects.select_related("conversation").filter(wamid__in=pending):
                apply_pending_statuses(message=message)
