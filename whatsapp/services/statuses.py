"""Delivery statuses of outbound messages."""

from __future__ import annotations

from conversations.models import Channel, Message
from conversations.services import apply_message_status
from whatsapp import metrics, parsing
from whatsapp.models import PendingStatus


def ingest_status(*, channel: Channel, update: parsing.StatusUpdate) -> Message | None:
    from whatsapp.delivery import (
        INTERRUPTED_TITLE,
        OPAQUE_PREFIX,
        apply_pending_statuses,
    )

    if not update.wamid or not update.status:
        return None
    message = Message.objects.select_for_update().filter(wamid=update.wamid).first()
    if message is None and update.opaque.startswith(OPAQUE_PREFIX):
        # Meta accepted a send whose wamid we never stored (worker killed mid-send): adopt it now.
        pk = update.opaque.removeprefix(OPAQUE_PREFIX)
        message = (
            Message.objects.select_for_update()
            .filter(
                pk=int(pk) if pk.isdigit() else 0,
                direction=Message.Direction.OUTBOUND,
                wamid__isnull=True,
                conversation__channel=channel,
            )
            .first()
        )
        if message is not None:
            message.wamid = update.wamid
            message.send_started_at = None
            if message.status == Message.Status.FAILED and message.error_title == INTERRUPTED_TITLE:
                message.status = Message.Status.QUEUED
                message.error_title = ""
            message.save(update_fields=["wamid", "send_started_at", "status", "error_title"])
            apply_pending_statuses(message=message)
    if message is None:
        PendingStatus.objects.create(
            wamid=update.wamid,
            status=update.status,
            timestamp=update.timestamp,
            payload=update.raw,
        )
        return None
    if apply_message_status(
        message=message,
        status=update.status,
        timestamp=update.timestamp,
        error_code=update.error_code,
        error_title=update.error_title,
        error_details=update.error_details,
    ):
        metrics.MESSAGES.labels(direction="out", type=message.type, status=update.status).inc()
    return message
