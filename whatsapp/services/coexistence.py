"""Coexistence webhooks of a number also used in the WhatsApp Business app, routed like every
number-level change (by metadata.phone_number_id, verified with that number's own secret):

- smb_message_echoes: what the business sent from the app → outbound messages marked as such;
- history: its past chats (in chunks, phase by phase) → imported quietly (no events, bot or unread);
- smb_app_state_sync: its address book → contact names.

The first of them marks the number as a coexistence number (its throughput is then 20 messages/s)."""

from __future__ import annotations

import structlog

from conversations.models import Channel, MediaFile, Message
from conversations.services.coexistence import (
    PastMessage,
    import_history,
    store_echoes,
    update_contact_names,
)
from whatsapp import parsing
from whatsapp.models import PendingStatus
from whatsapp.services.media import queue_media_download

log = structlog.get_logger("whatsapp")


def _past(message: parsing.InboundMessage, *, outbound: bool, status: str = "") -> PastMessage:
    return PastMessage(
        wamid=message.wamid,
        type=message.type,
        text=message.text,
        payload=message.payload,
        preview=message.preview,
        timestamp=message.timestamp,
        outbound=outbound,
        status=status,
    )


def _download_echo_media(channel: Channel, echoes: list[parsing.Echo], stored: list[Message]) -> None:
    """A photo or document sent from the phone is fetched from Meta like a customer's (a history import's
    media is not: months of files, most never opened, and their links may be long gone)."""
    media_of = {echo.message.wamid: echo.message.media for echo in echoes if echo.message.media}
    for message in stored:
        media = media_of.get(str(message.wamid))
        if media is None or not media.media_id:
            continue
        queue_media_download(
            MediaFile.objects.create(
                channel=channel,
                message=message,
                direction=MediaFile.Direction.INBOUND,  # downloaded from Meta, whoever sent it
                kind=media.kind,
                media_id=media.media_id,
                mime_type=media.mime_type,
                sha256=media.sha256,
                filename=media.filename[:255],
            )
        )


def mark_coexistence(channel: Channel) -> None:
    if not channel.coexistence:
        Channel.objects.filter(pk=channel.pk).update(coexistence=True)
        channel.coexistence = True
        log.info("whatsapp_number_coexistence", phone_number_id=channel.phone_number_id)


def ingest_coexistence(*, channel: Channel, change: parsing.Coexistence) -> None:
    from whatsapp.delivery import apply_pending_statuses  # delivery imports the services package

    mark_coexistence(channel)
    if change.kind == "smb_message_echoes":
        stored = store_echoes(
            channel=channel,
            echoes=[
                (echo.to_wa_id, _past(echo.message, outbound=True, status="sent")) for echo in change.echoes
            ],
        )
        _download_echo_media(channel, change.echoes, stored)
        # A status of an echo that arrived before it (another event, processed first) applies now.
        waiting = set(
            PendingStatus.objects.filter(wamid__in=[m.wamid for m in stored]).values_list("wamid", flat=True)
        )
        for message in stored:
            if message.wamid in waiting:
                apply_pending_statuses(message=message)
    elif change.kind == "history":
        if change.errors:
            # e.g. 2593109: the business declined to share its chat history.
            log.info(
                "whatsapp_history_not_shared", phone_number_id=channel.phone_number_id, errors=change.errors
            )
        threads: dict[str, list[PastMessage]] = {}
        for thread in change.threads:
            threads.setdefault(thread.wa_id, []).extend(
                _past(m.message, outbound=m.from_me, status=m.status) for m in thread.messages
            )
        done = import_history(channel=channel, threads=threads)
        log.info(
            "whatsapp_history_chunk",
            phone_number_id=channel.phone_number_id,
            phase=change.phase,
            chunk=change.chunk,
            progress=change.progress,
            conversations=done.conversations,
            messages=done.messages,
        )
    elif change.kind == "smb_app_state_sync":
        update_contact_names(
            names={c.wa_id: c.name for c in change.contacts if c.action in ("add", "edit", "") and c.name}
        )
