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
import time
from dataclasses import dataclass
from typing import Any

import structlog
from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from conversations import events
from conversations.models import Channel, Message
from conversations.services import apply_message_status
from tenants.db import connection
from whatsapp import limiter, metrics
from whatsapp.client import GraphError, RetryClass, client_for
from whatsapp.models import PendingStatus

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
    contact = message.conversation.contact
    body: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": contact.wa_id or contact.phone.lstrip("+"),
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


def deliver_message(*, message_id: int) -> Outcome:
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

    slot = limiter.acquire(
        schema=connection.schema_name,
        phone_number_id=channel.phone_number_id,
        cap=channel.throughput_cap,
        bulk=message.bulk,
    )
    if not slot.reserved:
        metrics.SEND_RETRIES.labels(reason="limiter").inc()
        return Outcome("wait", delay=max(slot.wait, 0.005))
    if slot.wait > 0:
        time.sleep(slot.wait)
    metrics.LIMITER_WAIT_SECONDS.observe(slot.wait)

    if not _claim(message_id=message.pk):
        return Outcome("skip")
    started = time.perf_counter()
    try:
        wamid = client_for(channel).send_message(
            phone_number_id=channel.phone_number_id, body=build_request(message)
        )
    except GraphError as error:
        metrics.SEND_SECONDS.observe(time.perf_counter() - started)
        return handle_send_error(message_id=message.pk, channel=channel, error=error)
    metrics.SEND_SECONDS.observe(time.perf_counter() - started)
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
        message.error_code = None
        message.error_title = ""
        message.error_details = ""
        fields = ["wamid", "send_started_at", "next_attempt_at", "error_code", "error_title", "error_details"]
        if Message.STATUS_RANK[message.status] < Message.STATUS_RANK["sent"]:
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
    if pending:
        PendingStatus.objects.filter(pk__in=[p.pk for p in pending]).delete()


def handle_send_error(*, message_id: int, channel: Channel, error: GraphError) -> Outcome:
    log.info(
        "send_error", message=message_id, code=error.code, title=error.title, retry_class=error.retry_class
    )
    with transaction.atomic():
        message = Message.objects.select_for_update().get(pk=message_id)
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
