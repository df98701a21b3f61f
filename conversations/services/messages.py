"""The historical send_* functions, each a Draft handed to the one reply path: a sender is an agent
replying; no sender is the bot or a campaign."""

from __future__ import annotations

from typing import Any

from conversations.models import Conversation, Message
from conversations.services.drafts import Draft
from conversations.services.reply import send_reply


def _wrapper_by(sender: Any) -> dict[str, Any]:
    # The historical send_* functions: a sender is an agent replying; no sender is the bot or a campaign.
    return {"by": sender, "automated": sender is None}


def send_text_message(
    *,
    conversation: Conversation,
    text: str,
    sender: Any = None,
    idempotency_key: str | None = None,
    reply_to: Message | None = None,
    bulk: bool = False,
) -> Message:
    draft = Draft(kind="text", text=text, reply_to=reply_to, idempotency_key=idempotency_key, bulk=bulk)
    return send_reply(conversation=conversation, draft=draft, **_wrapper_by(sender))


def send_media_message(
    *,
    conversation: Conversation,
    media: Any,
    caption: str = "",
    sender: Any = None,
    idempotency_key: str | None = None,
    reply_to: Message | None = None,
    bulk: bool = False,
) -> Message:
    """Send an uploaded MediaFile (the channel adapter's upload_media) by its provider media id."""
    draft = Draft(
        kind="media", media=media, text=caption, reply_to=reply_to, idempotency_key=idempotency_key, bulk=bulk
    )
    return send_reply(conversation=conversation, draft=draft, **_wrapper_by(sender))


def send_template_message(
    *,
    conversation: Conversation,
    template: Any,
    language: str | None = None,
    parameters: Any = None,
    sender: Any = None,
    idempotency_key: str | None = None,
    bulk: bool = False,
) -> Message:
    draft = Draft(
        kind="template",
        template=template,
        language=language,
        parameters=parameters,
        idempotency_key=idempotency_key,
        bulk=bulk,
    )
    return send_reply(conversation=conversation, draft=draft, **_wrapper_by(sender))


def send_interactive_message(
    *,
    conversation: Conversation,
    interactive: dict[str, Any],
    sender: Any = None,
    idempotency_key: str | None = None,
    reply_to: Message | None = None,
    bulk: bool = False,
) -> Message:
    draft = Draft(
        kind="interactive",
        interactive=interactive,
        reply_to=reply_to,
        idempotency_key=idempotency_key,
        bulk=bulk,
    )
    return send_reply(conversation=conversation, draft=draft, **_wrapper_by(sender))


def send_reaction(
    *,
    conversation: Conversation,
    message: Message,
    emoji: str,
    sender: Any = None,
    idempotency_key: str | None = None,
) -> Message:
    """React to a message (an empty emoji removes our reaction)."""
    draft = Draft(kind="reaction", target=message, emoji=emoji, idempotency_key=idempotency_key)
    return send_reply(conversation=conversation, draft=draft, **_wrapper_by(sender))
