"""Media: the Cloud API's limits, downloads of inbound media, uploads of outbound media."""

from __future__ import annotations

import base64
import hashlib
import mimetypes
import uuid

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction
from django.utils import timezone

from conversations import events
from conversations.errors import MediaRejected  # a ServiceError: 422 (the API and the inbox answer it)
from conversations.models import Channel, MediaFile
from tenants.db import connection
from whatsapp import metrics
from whatsapp.client import GraphError, RetryClass, client_for, is_graph_id

MB = 1024 * 1024
# Cloud API limits per kind (bytes) and accepted MIME types (documents: any).
MEDIA_LIMITS = {
    "image": 5 * MB,
    "video": 16 * MB,
    "audio": 16 * MB,
    "document": 100 * MB,
    "sticker": 500 * 1024,
}
MEDIA_TYPES: dict[str, frozenset[str]] = {
    "image": frozenset({"image/jpeg", "image/png"}),
    "video": frozenset({"video/mp4", "video/3gpp"}),
    "audio": frozenset({"audio/aac", "audio/amr", "audio/mpeg", "audio/mp4", "audio/ogg"}),
    "sticker": frozenset({"image/webp"}),
}
MAX_MEDIA_ATTEMPTS = 8


def check_media(*, kind: str, mime_type: str, size: int) -> None:
    if kind not in MEDIA_LIMITS:
        raise MediaRejected("invalid_media_kind", f"Media kind must be one of {sorted(MEDIA_LIMITS)}.")
    base_mime = mime_type.split(";")[0].strip().lower()
    allowed = MEDIA_TYPES.get(kind)
    if allowed is not None and base_mime not in allowed:
        raise MediaRejected(
            "unsupported_media_type",
            f"A WhatsApp {kind} must be one of {', '.join(sorted(allowed))}.",
        )
    if size > MEDIA_LIMITS[kind]:
        raise MediaRejected(
            "media_too_large",
            f"A WhatsApp {kind} is at most {MEDIA_LIMITS[kind] // 1024} KB; this is {size // 1024} KB.",
        )


def kind_for_mime(mime_type: str) -> str:
    base = mime_type.split(";")[0].strip().lower()
    for kind, types in MEDIA_TYPES.items():
        if base in types and kind != "sticker":
            return kind
    return "document"


def storage_path(kind: str, mime_type: str, filename: str = "") -> str:
    ext = mimetypes.guess_extension(mime_type.split(";")[0].strip()) or (
        "." + filename.rsplit(".", 1)[-1] if "." in filename else ""
    )
    now = timezone.now()
    return f"whatsapp/{connection.schema_name}/{kind}/{now:%Y/%m}/{uuid.uuid4().hex}{ext[:10]}"


def _sha_matches(content: bytes, expected: str) -> bool:
    if not expected:
        return True
    digest = hashlib.sha256(content).digest()
    return expected.lower() == digest.hex() or expected.rstrip("=") == base64.b64encode(
        digest
    ).decode().rstrip("=")


def download_media(*, media_file_id: int) -> str:
    """media id → URL (expires in 5 minutes) → bytes with the token → checked → tenant-scoped storage.
    Retryable failures raise (the actor retries); final ones mark the file failed with a reason."""
    media = MediaFile.objects.select_related("channel", "message").filter(pk=media_file_id).first()
    if media is None or media.status == MediaFile.Status.READY:
        return "skip"
    MediaFile.objects.filter(pk=media.pk).update(attempts=media.attempts + 1)
    if not is_graph_id(media.media_id):
        # The id comes from a webhook body: a URL or path there must never become a request with the token.
        media_failed(
            media,
            "The message's media id is not a WhatsApp media id; nothing was downloaded.",
        )
        metrics.MEDIA_DOWNLOADS.labels(result="rejected").inc()
        return "rejected"
    client = client_for(media.channel)
    try:
        info = client.get_media(media_id=media.media_id)
        mime = info.mime_type or media.mime_type
        check_media(kind=media.kind, mime_type=mime, size=info.file_size or 0)
        content = client.download(url=info.url, max_bytes=MEDIA_LIMITS[media.kind])
        if not (_sha_matches(content, info.sha256) and _sha_matches(content, media.sha256)):
            raise GraphError(
                code=None,
                title="Downloaded media does not match its sha256.",
                retry_class=RetryClass.RETRY,
            )
    except MediaRejected as rejected:
        media_failed(media, rejected.message)
        metrics.MEDIA_DOWNLOADS.labels(result="rejected").inc()
        return "rejected"
    except GraphError as error:
        if error.retry_class == RetryClass.RETRY and media.attempts + 1 < MAX_MEDIA_ATTEMPTS:
            metrics.MEDIA_DOWNLOADS.labels(result="retry").inc()
            raise
        media_failed(media, f"{error.code or ''} {error.title}".strip())
        metrics.MEDIA_DOWNLOADS.labels(result="failed").inc()
        return "failed"
    save_downloaded(media, content=content, mime_type=mime)
    return "ready"


def save_downloaded(media: MediaFile, *, content: bytes, mime_type: str) -> None:
    """A checked inbound file into the tenant's storage, the row ready (every provider's download job)."""
    path = default_storage.save(storage_path(media.kind, mime_type, media.filename), ContentFile(content))
    MediaFile.objects.filter(pk=media.pk).update(
        file=path,
        mime_type=mime_type,
        size=len(content),
        sha256=hashlib.sha256(content).hexdigest(),
        status=MediaFile.Status.READY,
        error="",
    )
    metrics.MEDIA_DOWNLOADS.labels(result="ok").inc()
    if media.message is not None:
        events.message_updated(media.message)


def media_failed(media: MediaFile, reason: str) -> None:
    MediaFile.objects.filter(pk=media.pk).update(status=MediaFile.Status.FAILED, error=reason[:300])
    if media.message is not None:
        events.message_updated(media.message)


@transaction.atomic
def retry_media_download(*, media: MediaFile) -> MediaFile:
    """A person's "Retry download" of an inbound file whose download failed (or whose job was lost): a
    fresh set of attempts. The thread hears about it (downloading…) and again when the job ends."""
    if media.direction != MediaFile.Direction.INBOUND or not media.can_retry_download:
        raise MediaRejected(
            "not_retryable", "This file is not waiting for a download that failed.", status=409
        )
    MediaFile.objects.filter(pk=media.pk).update(status=MediaFile.Status.PENDING, attempts=0, error="")
    media.status, media.attempts, media.error = MediaFile.Status.PENDING, 0, ""
    queue_media_download(media)
    if media.message is not None:
        events.message_updated(media.message)
    return media


def upload_media(
    *,
    channel: Channel,
    content: bytes,
    filename: str,
    mime_type: str,
    kind: str = "",
) -> MediaFile:
    """Check Cloud API limits, upload to Meta (media id) and keep a copy for the inbox."""
    kind = kind or kind_for_mime(mime_type)
    check_media(kind=kind, mime_type=mime_type, size=len(content))
    if not channel.is_active:
        raise MediaRejected("channel_inactive", channel.unavailable_reason)
    try:
        media_id = client_for(channel).upload_media(
            phone_number_id=channel.phone_number_id,
            content=content,
            mime_type=mime_type,
            filename=filename,
        )
    except GraphError as error:
        raise MediaRejected("upload_failed", f"WhatsApp refused the upload: {error.title}") from error
    path = default_storage.save(storage_path(kind, mime_type, filename), ContentFile(content))
    return MediaFile.objects.create(
        channel=channel,
        direction=MediaFile.Direction.OUTBOUND,
        kind=kind,
        media_id=media_id,
        file=path,
        filename=filename[:255],
        mime_type=mime_type,
        size=len(content),
        sha256=hashlib.sha256(content).hexdigest(),
        status=MediaFile.Status.READY,
    )


def queue_media_download(media: MediaFile) -> None:
    """Download the media after commit, in its tenant's schema."""
    from whatsapp.actors import enqueue_media_download

    media_id, schema = media.pk, connection.schema_name
    transaction.on_commit(lambda: enqueue_media_download(media_file_id=media_id, schema=schema))
