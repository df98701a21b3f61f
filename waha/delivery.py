"""Outbound through WAHA: one attempt to send one queued message, read receipts and "typing…", and the
download of received files. The Cloud API's guarantees (whatsapp/delivery.py), for a WhatsApp-Web
session:

- a message that has a provider id (Message.wamid: WAHA's id of the sent message, e.g.
  "true_15551234567@c.us_3EB0…", which the inbound side matches acks and `message.any` echoes on) is
  never sent again; before the HTTP call the attempt is claimed in its own committed transaction, and a
  later job that finds an unfinished claim does not send: after WHATSAPP_SEND_CLAIM_TIMEOUT it fails the
  message visibly (staff may retry) instead of risking a duplicate;
- failures by retry class (waha.client.WahaError): RETRY is scheduled again with backoff (within
  WHATSAPP_SEND_MAX_AGE_SECONDS), UNCERTAIN (the request was written, the answer lost) fails visibly
  and is never resent, AUTH and PERMANENT fail with WAHA's reason;
- per-number pacing through whatsapp.limiter at Channel.send_rate_cap (a WAHA number's throughput_cap
  is 2/s by default: WhatsApp bans numbers that send like robots).

Media go to WAHA as base64 `data` (WAHA Core cannot fetch our private file URLs); a reaction has no
message id of its own in WAHA's answer, so it is recorded as "reaction:<message pk>".
"""

from __future__ import annotations

import base64
import datetime as dt
import time
from typing import Any

import dramatiq
import structlog
from django.conf import settings
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone
from django_tenants.utils import schema_context

from conversations import events
from conversations.errors import MediaRejected
from conversations.models import Channel, MediaFile, Message
from crm.models import Contact, ContactIdentity
from tenants.db import connection
from tenants.jobs import TENANT_OPTION
from tenants.selectors import active_tenant_schemas
from waha.adapter import PROVIDER, session_for, session_problem
from waha.client import WahaClient, WahaError, client_for
from waha.models import WahaSession
from whatsapp import metrics
from whatsapp.client import RetryClass
from whatsapp.delivery import (
    CLAIM_TIMEOUT,
    INTERRUPTED_TITLE,
    Outcome,
    backoff_delay,
    fail_message,
    load_due_message,
    record_message_sent,
    take_send_slot,
)
from whatsapp.services.media import (
    MAX_MEDIA_ATTEMPTS,
    MEDIA_LIMITS,
    check_media,
    media_failed,
    save_downloaded,
)

log = structlog.get_logger("waha.delivery")

MEDIA_TYPES = frozenset({"image", "video", "audio", "document", "sticker"})
REACTION_ID_PREFIX = "reaction:"
MEDIA_ID_MAX = 128  # MediaFile.media_id's length
# A session still STARTING (WAHA restarting, reconnecting): its messages wait this long between checks.
STARTING_DELAY = 5.0


class Unsendable(Exception):
    """The message cannot be sent through WAHA at all (its type, a missing file, no address)."""


# -- addresses ---------------------------------------------------------------------------------------


def chat_id_for(contact: Contact) -> str:
    """WAHA's chat id of a contact: `<digits>@c.us` from the number, else a kept `@lid` identity
    (a WhatsApp user known only by a linked-device id) or `@g.us` one (a group chat, received on a number
    with groups on: a reply goes to the group). "" when the contact has none of them."""
    number = "".join(ch for ch in (contact.wa_id or contact.phone or "") if ch.isdigit())
    if number:
        return f"{number}@c.us"
    lid = (
        ContactIdentity.objects.filter(contact=contact)
        .filter(Q(value__endswith="@lid") | Q(value__endswith="@g.us"))
        .order_by("-updated_at", "-id")
        .values_list("value", flat=True)
        .first()
    )
    if lid:
        return str(lid)
    user_id = contact.whatsapp_user_id or ""
    return user_id if user_id.endswith("@lid") else ""


# -- sending -----------------------------------------------------------------------------------------


def _media_file(message: Message) -> dict[str, Any]:
    media_pk = (message.payload or {}).get("media_file")
    media = MediaFile.objects.filter(pk=media_pk).first() if isinstance(media_pk, int) else None
    name = media.file.name if media is not None and media.file else None
    if media is None or not name:
        raise Unsendable("The file to send is no longer stored.")
    try:
        with default_storage.open(name, "rb") as handle:
            content = handle.read()
    except OSError as exc:
        raise Unsendable(f"The file to send cannot be read: {exc}") from exc
    filename = media.filename or name.rsplit("/", 1)[-1]
    return {
        "mimetype": media.mime_type or "application/octet-stream",
        "filename": filename,
        "data": base64.b64encode(content).decode("ascii"),
    }


def send_through(client: WahaClient, session: str, chat_id: str, message: Message) -> str:
    """Send one stored message (any type the product stores and WhatsApp Web has); WAHA's message id."""
    kind = message.type
    payload = message.payload or {}
    reply_to = message.reply_to.wamid if message.reply_to is not None and message.reply_to.wamid else None
    if kind == Message.Type.TEXT:
        body = str((payload.get("text") or {}).get("body") or message.text or "")
        return client.send_text(session, chat_id, body, reply_to=reply_to)
    if kind in MEDIA_TYPES:
        file = _media_file(message)
        caption = str((payload.get(kind) or {}).get("caption") or "") or None
        if kind == Message.Type.IMAGE:
            return client.send_image(session, chat_id, file, caption=caption)
        if kind == Message.Type.AUDIO:
            return client.send_voice(session, chat_id, file)
        return client.send_file(session, chat_id, file, caption=caption)  # documents, videos, stickers
    if kind == Message.Type.LOCATION:
        location = payload.get("location") or {}
        try:
            latitude, longitude = float(location["latitude"]), float(location["longitude"])
        except (KeyError, TypeError, ValueError) as exc:
            raise Unsendable("The location has no valid latitude and longitude.") from exc
        title = str(location.get("name") or location.get("address") or "") or None
        return client.send_location(session, chat_id, latitude, longitude, title=title)
    if kind == Message.Type.REACTION:
        reaction = payload.get("reaction") or {}
        target = str(reaction.get("message_id") or "")
        if not target:
            raise Unsendable("The reaction has no message to react to.")
        client.react(session, target, str(reaction.get("emoji") or ""))
        return f"{REACTION_ID_PREFIX}{message.pk}"
    raise Unsendable(f"A WhatsApp Web number cannot send {message.get_type_display().lower()} messages.")


def deliver_message(*, message_id: int) -> Outcome:
    message = load_due_message(message_id=message_id)
    if isinstance(message, Outcome):
        return message
    channel = message.conversation.channel
    assert channel is not None
    if channel.provider != PROVIDER:
        log.warning("not_a_waha_message", message=message_id, provider=channel.provider)
        return Outcome("skip")
    waha_session = session_for(channel)
    problem = session_problem(waha_session)
    if problem:
        if waha_session is not None and waha_session.status == WahaSession.Status.STARTING:
            return _retry_later(message_id=message.pk, error=WahaError(None, problem, RetryClass.RETRY))
        fail_message(message_id=message.pk, code=None, title=problem[:300])
        return Outcome("failed")
    assert waha_session is not None
    chat_id = chat_id_for(message.conversation.contact)
    if not chat_id:
        fail_message(message_id=message.pk, code=None, title="The contact has no WhatsApp number to send to.")
        return Outcome("failed")

    waiting = take_send_slot(
        phone_number_id=channel.phone_number_id, cap=channel.send_rate_cap, bulk=message.bulk
    )
    if waiting is not None:
        return waiting

    if not claim(message_id=message.pk):
        return Outcome("skip")
    started = time.perf_counter()
    try:
        waha_id = send_through(client_for(waha_session), waha_session.session, chat_id, message)
    except Unsendable as exc:
        # Nothing went out: fail with the reason (the claim is cleared with it).
        fail_message(message_id=message.pk, code=None, title=str(exc)[:300])
        return Outcome("failed")
    except WahaError as error:
        metrics.SEND_SECONDS.observe(time.perf_counter() - started)
        return handle_send_error(message_id=message.pk, waha_session=waha_session, error=error)
    metrics.SEND_SECONDS.observe(time.perf_counter() - started)
    record_message_sent(message_id=message.pk, wamid=waha_id)
    touch_session(waha_session)
    return Outcome("sent", wamid=waha_id)


def claim(*, message_id: int) -> bool:
    """Mark the attempt as started, committed before any HTTP; False when nothing should be sent. A claim
    older than CLAIM_TIMEOUT belongs to an attempt that died mid-send: the message fails visibly."""
    if Message.objects.filter(
        pk=message_id, wamid__isnull=True, status=Message.Status.QUEUED, send_started_at__isnull=True
    ).update(send_started_at=timezone.now(), send_attempts=F("send_attempts") + 1):
        return True
    with transaction.atomic():
        message = Message.objects.select_for_update().get(pk=message_id)
        if message.wamid or message.status != Message.Status.QUEUED or message.send_started_at is None:
            return False
        if timezone.now() - message.send_started_at < CLAIM_TIMEOUT:
            return False
    log.warning("send_interrupted", message=message_id)
    fail_message(message_id=message_id, code=None, title=INTERRUPTED_TITLE)
    return False


def _retry_later(*, message_id: int, error: WahaError) -> Outcome:
    with transaction.atomic():
        message = Message.objects.select_for_update().get(pk=message_id)
        if message.wamid or message.status != Message.Status.QUEUED:
            return Outcome("skip")
        now = timezone.now()
        delay = max(backoff_delay(attempts=max(1, message.send_attempts), code=None), STARTING_DELAY)
        too_old = now + dt.timedelta(seconds=delay) - message.created_at > dt.timedelta(
            seconds=settings.WHATSAPP_SEND_MAX_AGE_SECONDS
        )
        if too_old:
            title = f"Gave up after {message.send_attempts} attempts: {error.message}"
        else:
            message.send_started_at = None
            message.next_attempt_at = now + dt.timedelta(seconds=delay)
            message.error_code = None
            message.error_title = f"Retrying: {error.message}"[:300]
            message.error_details = f"HTTP {error.status}" if error.status else ""
            message.save(
                update_fields=[
                    "send_started_at",
                    "next_attempt_at",
                    "error_code",
                    "error_title",
                    "error_details",
                ]
            )
            metrics.SEND_RETRIES.labels(reason=str(error.status or "network")).inc()
            return Outcome("retry", delay=delay)
    fail_message(message_id=message_id, code=None, title=title[:300])
    return Outcome("failed")


def handle_send_error(*, message_id: int, waha_session: WahaSession, error: WahaError) -> Outcome:
    log.info("waha_send_error", message=message_id, status=error.status, retry_class=error.retry_class)
    details = f"HTTP {error.status}" if error.status else ""
    if error.retry_class == RetryClass.RETRY:
        return _retry_later(message_id=message_id, error=error)
    if error.retry_class == RetryClass.UNCERTAIN:
        fail_message(message_id=message_id, code=None, title=INTERRUPTED_TITLE, details=error.message)
        return Outcome("failed")
    if error.retry_class == RetryClass.AUTH:
        WahaSession.objects.filter(pk=waha_session.pk).update(
            last_error=f"The WAHA server refused the API key: {error.message}"[:300]
        )
        fail_message(
            message_id=message_id,
            code=None,
            title=f"The WAHA server refused the API key ({error.status}): check the number's WAHA settings."[
                :300
            ],
            details=error.message,
        )
        return Outcome("failed")
    fail_message(
        message_id=message_id,
        code=None,
        title=f"WAHA refused the message: {error.message}"[:300],
        details=details,
    )
    return Outcome("failed")


def touch_session(waha_session: WahaSession) -> None:
    """A message went in or out: the idle-expiry sweep counts from now."""
    WahaSession.objects.filter(pk=waha_session.pk).update(last_activity_at=timezone.now())


# -- read receipts and "typing…" ---------------------------------------------------------------------


def send_seen(*, message_id: int, typing: bool = False) -> None:
    """Blue ticks on a received message (with `typing`: and "typing…" in the customer's chat).
    Retryable failures raise (the actor retries); others are logged: a receipt is not worth more."""
    message = (
        Message.objects.select_related("conversation__channel", "conversation__contact")
        .filter(pk=message_id)
        .first()
    )
    if message is None or not message.wamid or message.conversation.channel is None:
        return
    channel = message.conversation.channel
    if not channel.is_active or channel.provider != PROVIDER:
        return
    waha_session = session_for(channel)
    if waha_session is None or session_problem(waha_session):
        return
    chat_id = chat_id_for(message.conversation.contact)
    if not chat_id:
        return
    client = client_for(waha_session)
    try:
        client.send_seen(waha_session.session, chat_id, [message.wamid])
        if typing:
            client.start_typing(waha_session.session, chat_id)
    except WahaError as error:
        if error.retryable:
            raise
        log.info("waha_seen_refused", message=message_id, status=error.status, error=error.message)


# -- received files ----------------------------------------------------------------------------------


def _stored_url(media: MediaFile) -> str:
    """The file URL of a received file, for a retry: MediaFile.media_id when it holds one, else the
    message's payload (`media.url`, or `<kind>.url`)."""
    if media.media_id.startswith(("http://", "https://")):
        return media.media_id
    payload = media.message.payload if media.message is not None else {}
    for key in ("media", media.kind):
        part = (payload or {}).get(key)
        if isinstance(part, dict) and isinstance(part.get("url"), str):
            return str(part["url"])
    return ""


def download_media(*, media_file_id: int, url: str = "") -> str:
    """A received file from the number's WAHA server (with the API key, from that server's origin only),
    checked like a Cloud API download and kept in the tenant's storage. Retryable failures raise (the
    actor retries); final ones mark the file failed with a reason."""
    media = MediaFile.objects.select_related("channel", "message").filter(pk=media_file_id).first()
    if media is None or media.status == MediaFile.Status.READY:
        return "skip"
    MediaFile.objects.filter(pk=media.pk).update(attempts=media.attempts + 1)
    url = url or _stored_url(media)
    waha_session = session_for(media.channel)
    if not url or waha_session is None:
        media_failed(media, "The WhatsApp Web gateway gave no file to download.")
        metrics.MEDIA_DOWNLOADS.labels(result="rejected").inc()
        return "rejected"
    limit = MEDIA_LIMITS.get(media.kind, MEDIA_LIMITS["document"])
    try:
        content, served = client_for(waha_session).download(url, max_bytes=limit)
        mime = media.mime_type or served or "application/octet-stream"
        check_media(kind=media.kind, mime_type=mime, size=len(content))
    except MediaRejected as rejected:
        media_failed(media, rejected.message)
        metrics.MEDIA_DOWNLOADS.labels(result="rejected").inc()
        return "rejected"
    except WahaError as error:
        if error.retry_class == RetryClass.RETRY and media.attempts + 1 < MAX_MEDIA_ATTEMPTS:
            metrics.MEDIA_DOWNLOADS.labels(result="retry").inc()
            raise
        media_failed(media, error.message)
        metrics.MEDIA_DOWNLOADS.labels(result="failed").inc()
        return "failed"
    save_downloaded(media, content=content, mime_type=mime)
    touch_session(waha_session)
    return "ready"


@transaction.atomic
def retry_media_download(*, media: MediaFile) -> MediaFile:
    """A person's "Retry download" of a received file whose download failed (or whose job was lost)."""
    if media.direction != MediaFile.Direction.INBOUND or not media.can_retry_download:
        raise MediaRejected(
            "not_retryable", "This file is not waiting for a download that failed.", status=409
        )
    MediaFile.objects.filter(pk=media.pk).update(status=MediaFile.Status.PENDING, attempts=0, error="")
    media.status, media.attempts, media.error = MediaFile.Status.PENDING, 0, ""
    media_pk, schema = media.pk, connection.schema_name
    transaction.on_commit(lambda: enqueue_media_download(media_id=media_pk, schema=schema, url=""))
    if media.message is not None:
        events.message_updated(media.message)
    return media


# -- jobs --------------------------------------------------------------------------------------------


def _safe_send(actor: dramatiq.Actor, *args: Any, schema: str, delay: float | None = None) -> bool:
    """Enqueue in the tenant's schema, or log and return False when the broker is down: the row is
    durable and the sweeper (requeue_stuck_waha_sends) picks it up later."""
    options: dict[str, Any] = {TENANT_OPTION: schema}
    try:
        actor.send_with_options(args=args, delay=int(delay * 1000) if delay else None, **options)
    except Exception as exc:
        log.warning("enqueue_failed", actor=actor.actor_name, args=args, error=repr(exc))
        return False
    return True


@dramatiq.actor(queue_name="outbound", max_retries=3, time_limit=60_000)
def send_waha_message(message_id: int) -> None:
    outcome = deliver_message(message_id=message_id)
    if outcome.action in ("retry", "wait"):
        # Our own schedule (not Dramatiq's retries): limiter waits spend no retry.
        enqueue_send(message_id=message_id, schema=connection.schema_name, delay=outcome.delay)


def enqueue_send(*, message_id: int, schema: str, delay: float | None = None) -> bool:
    return _safe_send(send_waha_message, message_id, schema=schema, delay=delay)


@dramatiq.actor(queue_name="outbound", max_retries=5, min_backoff=1000)
def send_waha_seen(message_id: int, typing: bool = False) -> None:
    send_seen(message_id=message_id, typing=typing)


def enqueue_seen(*, message_id: int, schema: str, typing: bool = False) -> bool:
    return _safe_send(send_waha_seen, message_id, typing, schema=schema)


@dramatiq.actor(queue_name="media", max_retries=8, min_backoff=2000, max_backoff=600_000)
def download_waha_media(media_file_id: int, url: str = "") -> None:
    download_media(media_file_id=media_file_id, url=url)


def enqueue_media_download(*, media_id: int, schema: str, url: str) -> bool:
    """Download a received file (the MediaFile `media_id`, pending) from `url`, WAHA's payload.media.url.
    Call it after commit. The URL is kept on the row when media_id is blank (for "Retry download")."""
    if url and len(url) <= MEDIA_ID_MAX:
        MediaFile.objects.filter(pk=media_id, media_id="").update(media_id=url)
    return _safe_send(download_waha_media, media_id, url, schema=schema)


@dramatiq.actor(queue_name="default", max_retries=0)
def requeue_stuck_waha_sends() -> None:
    """Queued messages of WAHA numbers whose job was lost (broker down at enqueue) are enqueued again;
    an attempt left unfinished by a dead worker is enqueued so the delivery fails it instead of
    resending it (whatsapp.actors.requeue_stuck_sends does the same for the Cloud API's numbers)."""
    now = timezone.now()
    for schema in active_tenant_schemas():
        with schema_context(schema):
            stuck = Message.objects.filter(
                direction=Message.Direction.OUTBOUND,
                status=Message.Status.QUEUED,
                wamid__isnull=True,
                conversation__channel__provider=Channel.Provider.WAHA,
            ).filter(
                Q(send_started_at__lte=now - CLAIM_TIMEOUT)
                | Q(send_started_at__isnull=True, next_attempt_at__lte=now - dt.timedelta(seconds=30))
                | Q(
                    send_started_at__isnull=True,
                    next_attempt_at__isnull=True,
                    created_at__lte=now - dt.timedelta(seconds=60),
                )
            )
            for message_id in stuck.values_list("pk", flat=True)[:1000]:
                enqueue_send(message_id=message_id, schema=schema)
