"""A draft's own content: checked before any row is written, and turned into what the channel sends."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from conversations import channels, rules
from conversations.errors import MessageRejected
from conversations.models import Conversation, Message
from conversations.services.sending import TemplateRef, check_channel

DRAFT_KINDS = ("text", "media", "template", "interactive", "reaction", "note")


@dataclass(frozen=True)
class Draft:
    """What someone wants to write. `kind` picks the fields that matter: text (text, reply_to), media
    (media, text as caption, reply_to), template (template, language, parameters), interactive
    (interactive, reply_to), reaction (target, emoji), note (text; staff only, never sent)."""

    kind: str
    text: str = ""
    media: Any = None  # an uploaded MediaFile (the channel adapter's upload_media)
    # A template of the number's provider (a row of its own model) or its name.
    template: Any = None
    language: str | None = None
    parameters: Any = None
    interactive: dict[str, Any] | None = None
    target: Message | None = None
    emoji: str = ""
    reply_to: Message | None = None
    idempotency_key: str | None = None
    bulk: bool = False


@dataclass
class Outbound:
    type: str
    payload: dict[str, Any]
    text: str
    preview: str
    free_form: bool
    template: TemplateRef | None = None


def prepare_draft(conversation: Conversation, draft: Draft) -> Outbound:
    """Check a draft's own content (before any row is written) and build what Meta is sent."""
    if draft.kind == "text":
        text = (draft.text or "").strip()
        if not text:
            raise MessageRejected("empty_text", "The message text is empty.")
        if len(text) > rules.TEXT_LIMIT:
            raise MessageRejected(
                "text_too_long",
                f"A WhatsApp text is at most {rules.TEXT_LIMIT} characters; this one has {len(text)}.",
            )
        return Outbound(
            Message.Type.TEXT, {"text": {"body": text, "preview_url": "http" in text}}, text, text, True
        )
    if draft.kind == "media":
        return _prepare_media(conversation, draft)
    if draft.kind == "template":
        return _prepare_template(conversation, draft)
    if draft.kind == "interactive":
        _require(conversation, channels.INTERACTIVE, "interactive messages")
        interactive = draft.interactive if isinstance(draft.interactive, dict) else {}
        body_text = _check_interactive(interactive)
        return Outbound(Message.Type.INTERACTIVE, {"interactive": interactive}, body_text, body_text, True)
    if draft.kind == "reaction":
        _require(conversation, channels.REACTIONS, "reactions")
        target = draft.target
        if target is None or target.conversation_id != conversation.pk or not target.wamid:
            raise MessageRejected("invalid_reaction_target", "Only a delivered message of this conversation.")
        emoji = draft.emoji
        return Outbound(
            Message.Type.REACTION,
            {"reaction": {"message_id": target.wamid, "emoji": emoji}},
            emoji,
            f"Reacted {emoji}" if emoji else "Removed a reaction",
            True,
        )
    raise MessageRejected("invalid_type", f"Cannot send a draft of kind '{draft.kind}'.")


def _prepare_media(conversation: Conversation, draft: Draft) -> Outbound:
    """An uploaded MediaFile (the channel adapter's upload_media), sent by its provider media id."""
    media = draft.media
    if media is None or media.kind not in rules.MEDIA_KINDS or not media.media_id or media.status != "ready":
        raise MessageRejected("invalid_media", "The media is not an uploaded file ready to send.")
    if conversation.channel_id != media.channel_id:
        raise MessageRejected("invalid_media", "The media was uploaded for another WhatsApp number.")
    body: dict[str, Any] = {"id": media.media_id}
    caption = (draft.text or "").strip()
    if caption:
        if media.kind in ("audio", "sticker"):
            raise MessageRejected("caption_not_allowed", f"A {media.kind} message cannot have a caption.")
        if len(caption) > rules.CAPTION_LIMIT:
            raise MessageRejected(
                "caption_too_long", f"A caption is at most {rules.CAPTION_LIMIT} characters."
            )
        body["caption"] = caption
    if media.kind == "document" and media.filename:
        body["filename"] = media.filename
    return Outbound(
        media.kind,
        {media.kind: body, "media_file": media.pk},
        caption,
        rules.media_preview(media.kind, caption, filename=media.filename),
        True,
    )


def _require(conversation: Conversation, capability: str, what: str) -> None:
    """Refuse a kind of message the number's provider cannot send (a number-less conversation is
    refused later, as no_channel)."""
    channel = conversation.channel
    if channel is not None and not channels.supports(channel, capability):
        raise MessageRejected(
            f"{capability}_unsupported",
            f"This number's channel cannot send {what}.",
            {"channel": channel.pk, "provider": getattr(channel, "provider", "")},
        )


def _prepare_template(conversation: Conversation, draft: Draft) -> Outbound:
    """Templates are allowed outside the 24-hour window; the provider checks the template and its
    parameters before anything is queued."""
    channel = check_channel(conversation)
    _require(conversation, channels.TEMPLATES, "templates")
    prepared = channels.adapter_for(channel).prepare_template(
        channel=channel, template=draft.template, language=draft.language, parameters=draft.parameters
    )
    return Outbound(
        Message.Type.TEMPLATE,
        prepared.payload,
        prepared.preview,
        prepared.preview,
        False,
        TemplateRef(prepared.template_id, prepared.category),
    )


def _check_interactive(interactive: dict[str, Any]) -> str:
    kind = interactive.get("type")
    body_text = str((interactive.get("body") or {}).get("text") or "")
    if not body_text:
        raise MessageRejected("invalid_interactive", "An interactive message needs body.text.")
    if len(body_text) > rules.CAPTION_LIMIT:
        raise MessageRejected(
            "invalid_interactive", f"body.text is at most {rules.CAPTION_LIMIT} characters."
        )
    action = interactive.get("action") or {}
    if kind == "button":
        buttons = action.get("buttons") or []
        if not 1 <= len(buttons) <= 3:
            raise MessageRejected("invalid_interactive", "Reply buttons: 1 to 3 buttons.")
        for button in buttons:
            reply = (button or {}).get("reply") or {}
            if not reply.get("id") or not 1 <= len(str(reply.get("title") or "")) <= 20:
                raise MessageRejected(
                    "invalid_interactive", "Each button needs reply.id and a title of 1 to 20 characters."
                )
    elif kind == "list":
        sections = action.get("sections") or []
        rows = [row for section in sections for row in (section or {}).get("rows") or []]
        if not action.get("button") or not sections or not 1 <= len(rows) <= 10:
            raise MessageRejected(
                "invalid_interactive", "A list needs action.button and 1 to 10 rows in its sections."
            )
        if any(not r.get("id") or not 1 <= len(str(r.get("title") or "")) <= 24 for r in rows):
            raise MessageRejected(
                "invalid_interactive", "Each row needs an id and a title of 1 to 24 characters."
            )
    elif kind == "cta_url":
        if not (action.get("parameters") or {}).get("url"):
            raise MessageRejected("invalid_interactive", "A call-to-action needs action.parameters.url.")
    else:
        raise MessageRejected("invalid_interactive", "Interactive type must be button, list or cta_url.")
    return body_text
