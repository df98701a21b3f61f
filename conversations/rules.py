"""Messaging rules used by several modules (the reply path, the inbox pages, the API, the channel
parsers): the 24-hour customer-service window, the length limits and the preview labels. One
definition each, so the composer's hints, the server's checks and the stored previews agree."""

from __future__ import annotations

import datetime as dt

from django.utils import timezone

# Meta's customer-service window: free-form messages only within 24 h of the contact's last message.
# Meta counts it per customer, so the contact's last inbound message decides (any conversation).
CUSTOMER_SERVICE_WINDOW = dt.timedelta(hours=24)
# A WhatsApp text message, and what the inbox stores for notes and bot texts.
TEXT_LIMIT = 4096
# A media caption and an interactive message's body.
CAPTION_LIMIT = 1024
MEDIA_KINDS = ("image", "video", "audio", "document", "sticker")

# The icon a stored preview of each media kind starts with (the inbox maps them back to its sprites).
MEDIA_ICONS = {"image": "📷", "video": "🎥", "audio": "🎵", "voice": "🎤", "document": "📄"}


def window_closes_at(last_inbound_at: dt.datetime | None) -> dt.datetime | None:
    """End of the customer-service window opened by the contact's last message (None: never wrote)."""
    return last_inbound_at + CUSTOMER_SERVICE_WINDOW if last_inbound_at else None


def is_window_open(last_inbound_at: dt.datetime | None, *, now: dt.datetime | None = None) -> bool:
    closes = window_closes_at(last_inbound_at)
    return closes is not None and (now or timezone.now()) < closes


def media_label(kind: str, *, filename: str = "", voice: bool = False) -> str:
    """A media message's preview without its caption ("📷 Photo", "📄 invoice.pdf")."""
    if kind == "image":
        return f"{MEDIA_ICONS['image']} Photo"
    if kind == "video":
        return f"{MEDIA_ICONS['video']} Video"
    if kind == "audio":
        return f"{MEDIA_ICONS['voice']} Voice message" if voice else f"{MEDIA_ICONS['audio']} Audio"
    if kind == "sticker":
        return "Sticker"
    return f"{MEDIA_ICONS['document']} {filename or 'Document'}"


def media_preview(kind: str, caption: str = "", *, filename: str = "", voice: bool = False) -> str:
    label = media_label(kind, filename=filename, voice=voice)
    return f"{label}: {caption}" if caption else label
