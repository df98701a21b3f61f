"""The WAHA channel as conversations sees it: the adapter registered for the provider "waha" in
WahaConfig.ready(). A WhatsApp-Web session sends text, media, locations and reactions, marks messages
read and shows "typing…"; it has no message templates, no interactive messages and no 24-hour
customer-service window (conversations.channels capabilities: the reply path, the composer and the API
ask for them rather than for the provider's name)."""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from conversations import channels
from conversations.channels import PreparedTemplate
from conversations.errors import MediaRejected, MessageRejected
from conversations.models import MediaFile
from waha.models import WahaSession
from whatsapp.services.media import check_media, kind_for_mime, storage_path

PROVIDER = "waha"
# Outbound files have no provider media id (WAHA takes the bytes with each send): a local token keeps
# MediaFile.media_id non-empty, as the draft check wants an uploaded file.
LOCAL_MEDIA_PREFIX = "waha-local:"

TEMPLATES_UNSUPPORTED = (
    "This number is linked through WhatsApp Web (WAHA), which has no message templates: write a normal "
    "message instead (there is no 24-hour window on such numbers)."
)
SESSION_STATES = {
    WahaSession.Status.STARTING: "is starting; messages wait until it works",
    WahaSession.Status.SCAN_QR_CODE: "is not linked (SCAN_QR_CODE): scan its QR code with the phone",
    WahaSession.Status.FAILED: "failed (FAILED): reconnect it under Settings → WhatsApp numbers",
    WahaSession.Status.STOPPED: "is stopped (STOPPED): start it under Settings → WhatsApp numbers",
}


def session_problem(waha_session: WahaSession | None) -> str:
    """Why a WAHA number cannot send now ("" when its session is WORKING)."""
    if waha_session is None:
        return "This number has no WhatsApp Web session: link it with a QR code first."
    if waha_session.status == WahaSession.Status.WORKING:
        return ""
    state = SESSION_STATES.get(waha_session.status, f"is {waha_session.status}")  # type: ignore[call-overload]
    return f"The WhatsApp Web session {waha_session.session} {state}."


def session_for(channel: Any) -> WahaSession | None:
    return WahaSession.objects.filter(channel_id=channel.pk).first()


class WahaAdapter:
    provider = PROVIDER
    label = "WhatsApp Web (WAHA)"
    capabilities = frozenset({channels.REACTIONS, channels.READ_RECEIPTS, channels.TYPING})

    def enqueue_send(self, *, message_id: int, bulk: bool, schema: str) -> None:
        from waha.delivery import enqueue_send  # the actors module loads the broker: not at ready()

        enqueue_send(message_id=message_id, schema=schema)

    def enqueue_read_receipt(self, *, message_id: int, schema: str, typing: bool) -> None:
        from waha.delivery import enqueue_seen

        enqueue_seen(message_id=message_id, schema=schema, typing=typing)

    def upload_media(
        self, *, channel: Any, content: bytes, filename: str, mime_type: str, kind: str = ""
    ) -> Any:
        """WhatsApp's own limits (the Cloud API's, which WhatsApp Web shares closely enough), the file
        kept in the tenant's storage; its bytes go to WAHA with the send (WAHA Core cannot fetch our
        private URLs)."""
        kind = kind or kind_for_mime(mime_type)
        check_media(kind=kind, mime_type=mime_type, size=len(content))
        if not channel.is_active:
            raise MediaRejected("channel_inactive", channel.unavailable_reason)
        path = default_storage.save(storage_path(kind, mime_type, filename), ContentFile(content))
        return MediaFile.objects.create(
            channel=channel,
            direction=MediaFile.Direction.OUTBOUND,
            kind=kind,
            media_id=f"{LOCAL_MEDIA_PREFIX}{uuid.uuid4().hex}",
            file=path,
            filename=filename[:255],
            mime_type=mime_type,
            size=len(content),
            sha256=hashlib.sha256(content).hexdigest(),
            status=MediaFile.Status.READY,
        )

    def retry_media_download(self, *, media: Any) -> Any:
        from waha.delivery import retry_media_download

        return retry_media_download(media=media)

    def prepare_template(
        self, *, channel: Any, template: Any, language: str | None, parameters: Any
    ) -> PreparedTemplate:
        raise MessageRejected(
            "templates_unsupported",
            TEMPLATES_UNSUPPORTED,
            {"channel": getattr(channel, "pk", None), "provider": PROVIDER},
        )

    def template_category(self, *, template_id: int) -> str:
        return ""

    def approved_templates(self, *, channel: Any) -> list[Any]:
        return []

    def number_status(self, *, channel: Any) -> str:
        if not channel.is_active:
            return str(channel.unavailable_reason)
        return session_problem(session_for(channel))
