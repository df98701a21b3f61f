"""Template helpers for the thread: reading Meta's payload shapes and formatting ticks and windows.

A message's payload is what the sender (or Meta, or a gateway) put in the webhook: every URL in it (media
`link`/`url`, a location's `url`, a contact card's `urls`, an ad referral's `source_url`/`image_url`/
`video_url`/`thumbnail_url`, catalogue images, profile pictures) is the sender's choice. None of them is
ever an `href` or a `src`: a `javascript:` link would run in the agent's session, and an image would tell a
tracker who read the message and when. They are shown as escaped text, or not at all; media is shown only
from our own stored copy (MediaFile), and a map link is built by us from numeric coordinates.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from django import template
from django.urls import reverse
from django.utils import formats, timezone
from django.utils.html import escape, format_html
from django.utils.safestring import SafeString, mark_safe

from conversations import rules, send_errors
from conversations.media import display_of, effective_mime
from crm.templatetags.ui import icon_html

register = template.Library()

# Status → (sprite icon, label). Drawn, not emoji or ✓ characters, so every machine shows the same ticks.
TICKS = {
    "queued": ("clock", "Sending"),
    "sent": ("check", "Sent"),
    "delivered": ("check-double", "Delivered"),
    "read": ("check-double", "Read"),
    "played": ("check-double", "Played"),
    "failed": ("alert", "Failed"),
}
# The emoji a stored preview starts with (whatsapp.parsing wrote them as icons) → the sprite's icon.
PREVIEW_ICONS = {
    # The media labels' icons (conversations.rules), a voice message's drawn as audio.
    **{icon: "audio" if kind == "voice" else kind for kind, icon in rules.MEDIA_ICONS.items()},
    "🖼": "image",
    "🎬": "video",
    "📍": "location",
    "👤": "contact",
    "🛒": "cart",
    "📣": "megaphone",
}
TYPE_ICONS = {
    "image": "image",
    "video": "video",
    "audio": "audio",
    "document": "document",
    "sticker": "sticker",
    "location": "location",
    "contacts": "contact",
    "order": "cart",
}


# Web addresses in chat text: with a scheme or starting with www. (Django's urlize also links bare
# domains and e-mail addresses, and was a third of a thread's render time).
_URL = re.compile(r"(?:https?://|www\.)[^\s<>\"']+", re.IGNORECASE)
_URL_TRAILING = ".,:;!?)]}"


@register.filter
def rich_text(text: Any) -> SafeString:
    """Message text as HTML: escaped, web addresses linked (new tab), line breaks kept."""
    text = str(text or "").replace("\r\n", "\n")
    parts = []
    position = 0
    for match in _URL.finditer(text):
        url = match.group(0).rstrip(_URL_TRAILING)
        parts.append(escape(text[position : match.start()]))
        href = url if "://" in url else f"http://{url}"
        parts.append(format_html('<a href="{}" target="_blank" rel="nofollow noopener">{}</a>', href, url))
        position = match.start() + len(url)
    parts.append(escape(text[position:]))
    return mark_safe("".join(parts).replace("\n", "<br>"))  # noqa: S308 - every part is escaped above


@register.filter
def ago(when: dt.datetime | None) -> str:
    """Compact time since last activity for the list ("4 min", "3 h", "2 d"); Django's timesince was a
    tenth of the list's render time."""
    if when is None:
        return ""
    seconds = int((timezone.now() - when).total_seconds())
    if seconds < 60:
        return "now"
    if seconds < 3600:
        return f"{seconds // 60} min"
    if seconds < 86400:
        return f"{seconds // 3600} h"
    if seconds < 7 * 86400:
        return f"{seconds // 86400} d"
    # Past a week, the date, in the locale's own short format like every other date on the pages.
    return formats.date_format(timezone.localtime(when), "SHORT_DATE_FORMAT")


@register.filter
def failure_help(code: Any) -> str:
    """What a failed message's error code means for the agent and what to do (conversations.send_errors)."""
    return send_errors.explain(code)


@register.filter
def preview_html(message: Any) -> SafeString:
    """A list row's preview: the type's icon from the sprite, then the text without the emoji the stored
    preview starts with (media, locations, contact cards)."""
    # A Message, or the list's annotation of the newest one (a dict: conversations.selectors).
    fields = message if isinstance(message, dict) else vars(message) if message is not None else {}
    kind = str(fields.get("type") or "")
    text = str(fields.get("preview") or fields.get("text") or kind)
    name = TYPE_ICONS.get(kind, "")
    for emoji, icon_name in PREVIEW_ICONS.items():
        if text.startswith(emoji):
            text = text[len(emoji) :].lstrip("\ufe0f ").strip()
            name = name or icon_name
            break
    text = text if len(text) <= 90 else text[:89] + "…"
    if not name:
        return format_html("{}", text)
    return format_html("{} {}", icon_html(name), text)


@register.filter
def part(message: Any) -> dict[str, Any]:
    """The type-specific part of a message's payload: Meta nests it under the type's name
    ({"type": "image", "image": {...}}); a payload may also be that part itself."""
    payload = getattr(message, "payload", None) or {}
    if not isinstance(payload, dict):
        return {}
    inner = payload.get(message.type)
    return inner if isinstance(inner, dict) else payload


@register.filter
def media_of(message: Any) -> dict[str, Any]:
    """URL, name, size and type of a media message. The URL is our stored copy's only: a `link` or `url`
    in the payload is the sender's, never loaded or linked (see the module's docstring)."""
    data = part(message)
    info: dict[str, Any] = {
        "url": "",
        "filename": data.get("filename") or "",
        "size": data.get("file_size") or data.get("size"),
        "mime": data.get("mime_type") or "",
        "caption": data.get("caption") or "",
        # "missing": no stored copy will come (no media object); otherwise the MediaFile's status.
        "status": "missing",
        "error": "",
        "retry_url": "",
    }
    try:
        media = message.media
    except Exception:
        media = None
    if media is not None:
        info["filename"] = getattr(media, "filename", "") or info["filename"]
        info["size"] = getattr(media, "size", None) or info["size"]
        info["mime"] = effective_mime(media) if media.mime_type or media.file else info["mime"]
        info["status"] = getattr(media, "status", "")
        info["error"] = getattr(media, "error", "")
        if info["status"] == "ready" and getattr(media, "file", None):
            # Our authenticated view (conversations.views.media_file), never the storage's own URL.
            info["url"] = reverse("inbox:media", args=[media.pk])
        if getattr(media, "can_retry_download", False):
            info["retry_url"] = reverse("inbox:media_retry", args=[media.pk])
    info["display"] = display_of(getattr(message, "type", "") or "", info["mime"])
    return info


@register.filter
def reactions_of(message: Any) -> list[str]:
    """Current reactions (the WhatsApp side keeps them on the target message, per side)."""
    stored = getattr(message, "reactions", None)
    return [str(v) for v in stored.values() if v] if isinstance(stored, dict) else []


@register.filter
def is_forwarded(message: Any) -> bool:
    if getattr(message, "is_forwarded", False):
        return True
    context = (getattr(message, "payload", None) or {}).get("context") or {}
    return bool(
        isinstance(context, dict) and (context.get("forwarded") or context.get("frequently_forwarded"))
    )


@register.filter
def tick(status: str) -> SafeString:
    """The status's tick as an icon; its label is on the element that holds it (aria-label, title)."""
    name = TICKS.get(status, ("", ""))[0]
    return icon_html(name) if name else SafeString("")


@register.filter
def tick_label(status: str) -> str:
    return TICKS.get(status, ("", status))[1]


@register.filter
def interactive_reply(message: Any) -> str:
    """The title of the button or list row the contact chose."""
    data = part(message)
    for key in ("button_reply", "list_reply", "nfm_reply"):
        chosen = data.get(key)
        if isinstance(chosen, dict):
            return str(chosen.get("title") or chosen.get("body") or chosen.get("name") or "")
    return str(data.get("text") or data.get("title") or message.text or "")


def _texts(items: Any, *keys: str) -> list[str]:
    """The first present key of each dict in a payload list, as text."""
    found = []
    for item in items if isinstance(items, list) else []:
        if isinstance(item, dict):
            value = next((item[k] for k in keys if item.get(k)), None)
            if isinstance(value, str | int | float):
                found.append(str(value))
    return found


@register.filter
def contacts_of(message: Any) -> list[dict[str, Any]]:
    """Contact cards: name, phones, emails and web addresses, all as text (the addresses are not linked)."""
    payload = getattr(message, "payload", None) or {}
    items = payload.get("contacts") if isinstance(payload, dict) else None
    cards = []
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict):
            continue
        name = item.get("name")
        if not isinstance(name, dict):
            name = {}
        cards.append(
            {
                "name": str(name.get("formatted_name") or name.get("first_name") or ""),
                "phones": _texts(item.get("phones"), "phone", "wa_id"),
                "emails": _texts(item.get("emails"), "email"),
                "urls": _texts(item.get("urls"), "url"),
            }
        )
    return cards


def _number(value: Any, limit: float) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if -limit <= number <= limit else None


@register.filter
def location_of(message: Any) -> dict[str, Any]:
    """A shared location: name, address and the sender's `url` as text; the map link is ours, built from
    the coordinates only when both are numbers in range."""
    data = part(message)
    latitude, longitude = _number(data.get("latitude"), 90), _number(data.get("longitude"), 180)
    return {
        "name": str(data.get("name") or ""),
        "address": str(data.get("address") or ""),
        "url": str(data.get("url") or ""),
        "latitude": latitude,
        "longitude": longitude,
        "has_map": latitude is not None and longitude is not None,
    }


@register.filter
def referral_of(message: Any) -> dict[str, Any] | None:
    """A Click-to-WhatsApp ad the contact came from: its headline, body and addresses, as text only."""
    payload = getattr(message, "payload", None) or {}
    referral = payload.get("referral") if isinstance(payload, dict) else None
    if not isinstance(referral, dict):
        return None
    urls = [referral.get(key) for key in ("source_url", "image_url", "video_url", "thumbnail_url")]
    return {
        "headline": str(referral.get("headline") or ""),
        "body": str(referral.get("body") or ""),
        "source_type": str(referral.get("source_type") or ""),
        "urls": [str(url) for url in urls if url and isinstance(url, str | int | float)],
    }


@register.filter
def duration(value: dt.timedelta | None) -> str:
    if value is None:
        return "—"
    seconds = int(value.total_seconds())
    if seconds < 60:
        return f"{seconds} s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min"
    return f"{hours // 24} d {hours % 24} h"


@register.filter
def left_until(when: dt.datetime | None) -> str:
    if when is None:
        return ""
    return duration(when - timezone.now())


@register.filter
def sum_of(values: list[int]) -> int:
    return sum(values)


@register.filter
def day_rows(report: Any) -> list[tuple[str, int, int]]:
    return list(zip(report.days, report.opened, report.resolved, strict=True))
