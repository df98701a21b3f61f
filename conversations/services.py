"""Writes for conversations and messages. Each write that others should see calls conversations.events."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import ngettext

from conversations import events
from conversations.models import Conversation, Message
from conversations.selectors import Viewer, can_see, viewer_for
from crm import services as crm_services
from crm.models import Agent, Contact, Note, Tag, Team
from tenants.db import connection, insert_rows, update_rows

if TYPE_CHECKING:
    from whatsapp.models import MediaFile, MessageTemplate, WhatsAppChannel

# ---------------------------------------------------------------------------------------------------
# Messages: inbound storage, outbound queueing and sending, statuses (the WhatsApp channel's side).
# ---------------------------------------------------------------------------------------------------

# Meta's customer-service window: free-form messages only within 24 h of the contact's last message.
CUSTOMER_SERVICE_WINDOW = dt.timedelta(hours=24)
TEXT_LIMIT = 4096
MEDIA_KINDS = ("image", "video", "audio", "document", "sticker")


class MessageRejected(Exception):
    """A send the rules refuse. `code` is stable (the API answers 422 with it)."""

    def __init__(self, code: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details or {}


def window_closes_at(contact: Contact) -> dt.datetime | None:
    if contact.last_inbound_at is None:
        return None
    return contact.last_inbound_at + CUSTOMER_SERVICE_WINDOW


def is_window_open(contact: Contact, *, now: dt.datetime | None = None) -> bool:
    closes = window_closes_at(contact)
    return closes is not None and (now or timezone.now()) < closes


def _check_channel(conversation: Conversation) -> WhatsAppChannel:
    channel = conversation.channel
    if channel is None:
        raise MessageRejected("no_channel", "This conversation has no WhatsApp number to send from.")
    if not channel.is_active:
        raise MessageRejected(
            "channel_inactive",
            channel.unavailable_reason,
            {"channel": channel.pk, "status": channel.status},
        )
    return channel


def _check_window(conversation: Conversation) -> None:
    if not is_window_open(conversation.contact):
        raise MessageRejected(
            "outside_window",
            "The 24-hour customer-service window is closed: the contact has not written in the last 24 "
            "hours. Send an approved template instead.",
            {"last_inbound_at": conversation.contact.last_inbound_at},
        )


def enqueue_send(message: Message) -> None:
    """On commit, hand the message to the send actor of its queue (agent replies never wait on bulk)."""
    from whatsapp.actors import enqueue_delivery

    # The schema is captured now: in a worker the on-commit hook may run after a schema_context exited.
    message_id, bulk, schema = message.pk, message.bulk, connection.schema_name
    transaction.on_commit(lambda: enqueue_delivery(message_id=message_id, bulk=bulk, schema=schema))


# ---------------------------------------------------------------------------------------------------
# The one reply path. Whoever writes into a conversation (an agent in the inbox, an API client, the bot,
# a consent confirmation) hands a Draft to send_reply, which applies every rule in one transaction:
# who may reply, the 24-hour window, consent and blocks, storing, stopping the bot, first-response
# bookkeeping and auto-assignment, the realtime events, and queueing the send on commit.
# ---------------------------------------------------------------------------------------------------

DRAFT_KINDS = ("text", "media", "template", "interactive", "reaction", "note")


@dataclass(frozen=True)
class Draft:
    """What someone wants to write. `kind` picks the fields that matter: text (text, reply_to), media
    (media, text as caption, reply_to), template (template, language, parameters), interactive
    (interactive, reply_to), reaction (target, emoji), note (text; staff only, never sent)."""

    kind: str
    text: str = ""
    media: MediaFile | None = None
    template: MessageTemplate | str | None = None
    language: str | None = None
    parameters: Any = None
    interactive: dict[str, Any] | None = None
    target: Message | None = None
    emoji: str = ""
    reply_to: Message | None = None
    idempotency_key: str | None = None
    bulk: bool = False


@dataclass
class _Outbound:
    type: str
    payload: dict[str, Any]
    text: str
    preview: str
    free_form: bool
    template: MessageTemplate | None = None


def _lock_for_reply(conversation: Conversation) -> None:
    """Fresh contact and conversation rows under lock, in the inbound round's order (contacts, then
    conversations): the window, consent and block are read as they are now, and a concurrent inbound
    message or workflow change waits instead of being overwritten."""
    contact = Contact.objects.select_for_update().get(pk=conversation.contact_id)
    conversation.refresh_from_db(from_queryset=Conversation.objects.select_for_update())
    conversation.contact = contact


def _replier(conversation: Conversation, by: Any) -> Viewer:
    """The role check of a human reply: an agent of this workspace (or an integration key) who still
    sees the conversation as locked now (it may have been reassigned since the caller loaded it)."""
    viewer = by if isinstance(by, Viewer) else viewer_for(by)
    if not can_see(viewer, conversation):
        raise WorkflowError("not_found", "This conversation does not exist or is not yours to see.")
    return viewer


def _check_recipient(conversation: Conversation, *, template: MessageTemplate | None = None) -> None:
    """Blocks and consent, read from the locked contact."""
    contact = conversation.contact
    if contact.blocked:
        raise MessageRejected(
            "contact_blocked",
            "This contact is blocked: nothing can be sent to them. Unblock them in their contact details "
            "first.",
            {"contact": contact.pk},
        )
    if (
        template is not None
        and (template.category or "").upper() == "MARKETING"
        and contact.marketing_consent == Contact.MarketingConsent.OPTED_OUT
    ):
        raise MessageRejected(
            "opted_out",
            "This contact opted out of marketing messages: a marketing template cannot be sent to them. "
            "Utility and authentication templates, and replies within the 24-hour window, still can.",
            {"contact": contact.pk, "template": template.pk},
        )


def check_sendable(*, conversation: Conversation) -> WhatsAppChannel:
    """The number's and the contact's rules, before work that costs (a media upload to Meta); send_reply
    checks them again under lock. Returns the number to send from."""
    channel = _check_channel(conversation)
    _check_recipient(conversation)
    return channel


def _prepare(conversation: Conversation, draft: Draft) -> _Outbound:
    """Check a draft's own content (before any row is written) and build what Meta is sent."""
    if draft.kind == "text":
        text = (draft.text or "").strip()
        if not text:
            raise MessageRejected("empty_text", "The message text is empty.")
        if len(text) > TEXT_LIMIT:
            raise MessageRejected(
                "text_too_long",
                f"A WhatsApp text is at most {TEXT_LIMIT} characters; this one has {len(text)}.",
            )
        return _Outbound(
            Message.Type.TEXT, {"text": {"body": text, "preview_url": "http" in text}}, text, text, True
        )
    if draft.kind == "media":
        return _prepare_media(conversation, draft)
    if draft.kind == "template":
        return _prepare_template(conversation, draft)
    if draft.kind == "interactive":
        interactive = draft.interactive if isinstance(draft.interactive, dict) else {}
        body_text = _check_interactive(interactive)
        return _Outbound(Message.Type.INTERACTIVE, {"interactive": interactive}, body_text, body_text, True)
    if draft.kind == "reaction":
        target = draft.target
        if target is None or target.conversation_id != conversation.pk or not target.wamid:
            raise MessageRejected("invalid_reaction_target", "Only a delivered message of this conversation.")
        emoji = draft.emoji
        return _Outbound(
            Message.Type.REACTION,
            {"reaction": {"message_id": target.wamid, "emoji": emoji}},
            emoji,
            f"Reacted {emoji}" if emoji else "Removed a reaction",
            True,
        )
    raise MessageRejected("invalid_type", f"Cannot send a draft of kind '{draft.kind}'.")


def _prepare_media(conversation: Conversation, draft: Draft) -> _Outbound:
    """An uploaded MediaFile (whatsapp.services.upload_media), sent by its Meta media id."""
    media = draft.media
    if media is None or media.kind not in MEDIA_KINDS or not media.media_id or media.status != "ready":
        raise MessageRejected("invalid_media", "The media is not an uploaded file ready to send.")
    if conversation.channel_id != media.channel_id:
        raise MessageRejected("invalid_media", "The media was uploaded for another WhatsApp number.")
    body: dict[str, Any] = {"id": media.media_id}
    caption = (draft.text or "").strip()
    if caption:
        if media.kind in ("audio", "sticker"):
            raise MessageRejected("caption_not_allowed", f"A {media.kind} message cannot have a caption.")
        if len(caption) > 1024:
            raise MessageRejected("caption_too_long", "A caption is at most 1024 characters.")
        body["caption"] = caption
    if media.kind == "document" and media.filename:
        body["filename"] = media.filename
    label = {"image": "📷 Photo", "video": "🎥 Video", "audio": "🎵 Audio", "sticker": "Sticker"}.get(
        media.kind, f"📄 {media.filename or 'Document'}"
    )
    return _Outbound(
        media.kind,
        {media.kind: body, "media_file": media.pk},
        caption,
        f"{label}: {caption}" if caption else label,
        True,
    )


def _prepare_template(conversation: Conversation, draft: Draft) -> _Outbound:
    """Templates are allowed outside the 24-hour window; the parameters are checked before queueing."""
    from whatsapp.models import MessageTemplate

    channel = _check_channel(conversation)
    template = draft.template
    if template is None or isinstance(template, str):
        candidates = MessageTemplate.objects.filter(waba_id=channel.waba_id, name=template or "")
        if draft.language:
            candidates = candidates.filter(language=draft.language)
        found = candidates.order_by("language").first()
        if found is None:
            raise MessageRejected(
                "unknown_template",
                f"No template '{template}' ({draft.language or 'any language'}) for this number.",
            )
        template = found
    if template.waba_id != channel.waba_id:
        raise MessageRejected("unknown_template", "The template belongs to another WhatsApp account.")
    if not template.is_approved:
        raise MessageRejected(
            "template_not_approved", f"The template '{template.name}' is {template.status or 'not approved'}."
        )
    components, preview = _template_components(template, draft.parameters)
    body: dict[str, Any] = {"name": template.name, "language": {"code": template.language}}
    if components:
        body["components"] = components
    return _Outbound(
        Message.Type.TEMPLATE,
        {"template": body, "template_id": template.pk},
        preview,
        preview,
        False,
        template,
    )


def _existing_by_key(conversation: Conversation, key: str | None) -> Message | None:
    if not key:
        return None
    existing = Message.objects.filter(idempotency_key=key).first()
    if existing is not None and existing.conversation_id != conversation.pk:
        raise MessageRejected(
            "idempotency_key_reused", "That idempotency key was used for another conversation."
        )
    return existing


def _insert_outbound(
    *,
    conversation: Conversation,
    outbound: _Outbound,
    sender: Any,
    idempotency_key: str | None,
    reply_to: Message | None,
    bulk: bool,
) -> tuple[Message, bool]:
    """The queued row; (row, False) when the same idempotency key raced in from another request."""
    now = timezone.now()
    try:
        with transaction.atomic():
            message = Message.objects.create(
                conversation=conversation,
                direction=Message.Direction.OUTBOUND,
                type=outbound.type,
                text=outbound.text,
                payload=outbound.payload,
                preview=outbound.preview[:200],
                status=Message.Status.QUEUED,
                reply_to=reply_to,
                sender=sender if getattr(sender, "pk", None) else None,
                idempotency_key=idempotency_key or None,
                bulk=bulk,
                timestamp=now,
            )
    except IntegrityError:
        existing = (
            Message.objects.filter(idempotency_key=idempotency_key).first() if idempotency_key else None
        )
        if existing is None:
            raise
        return existing, False
    return message, True


@transaction.atomic
def send_reply(
    *,
    conversation: Conversation,
    draft: Draft,
    by: Any = None,
    automated: bool = False,
    locked: bool = False,
) -> Message:
    """Write `draft` into the conversation. `by`: the agent (a user) or a Viewer (an integration key);
    `automated`: the bot or the system (no role check, and it neither stops the bot nor counts as a
    response). `locked`: the caller already holds the contact's and conversation's row locks with
    fresh rows (the inbound round), so none are taken again.

    An agent's reply (not a reaction or a note) stops the bot, records the first response and who sent
    it, and assigns an unassigned conversation to them when the workspace's setting says so.
    Raises MessageRejected (a sending rule: window, consent, block, channel...) or WorkflowError."""
    if by is None and not automated:
        # A human reply without a human would skip the role check: refuse the call, not the customer.
        raise TypeError("send_reply needs `by` (an agent or a Viewer) unless it is automated.")
    if draft.kind not in DRAFT_KINDS:
        raise MessageRejected("invalid_type", f"Cannot send a draft of kind '{draft.kind}'.")
    existing = _existing_by_key(conversation, draft.idempotency_key)
    if existing is not None:
        return existing
    if not locked:
        _lock_for_reply(conversation)
    viewer = None if automated else _replier(conversation, by)
    user = viewer.user if viewer is not None else None
    if draft.reply_to is not None and draft.reply_to.conversation_id != conversation.pk:
        raise MessageRejected("invalid_reply_to", "The quoted message belongs to another conversation.")
    if draft.kind == "note":
        return add_private_note(conversation=conversation, text=draft.text, author=user, checked=True)
    outbound = _prepare(conversation, draft)
    _check_channel(conversation)
    _check_recipient(conversation, template=outbound.template)
    if outbound.free_form:
        _check_window(conversation)
    message, created = _insert_outbound(
        conversation=conversation,
        outbound=outbound,
        sender=user,
        idempotency_key=draft.idempotency_key,
        reply_to=draft.target if draft.kind == "reaction" else draft.reply_to,
        bulk=draft.bulk,
    )
    if not created:
        return message
    events.message_created(message)
    _after_outbound(
        conversation,
        message,
        replier=viewer if draft.kind != "reaction" else None,
    )
    enqueue_send(message)
    if draft.kind == "media" and draft.media is not None and draft.media.message_id is None:
        type(draft.media).objects.filter(pk=draft.media.pk, message__isnull=True).update(message=message)
    if draft.kind == "reaction" and draft.target is not None:
        set_reaction(target=draft.target, side="business", emoji=draft.emoji)
    return message


@transaction.atomic
def start_conversation(
    *, contact: Contact, channel: WhatsAppChannel, draft: Draft, by: Any
) -> tuple[Conversation, Message]:
    """Write to a contact on a number: into their open conversation there, or a new one (usually with
    a template, the window being closed). A conversation a person starts is theirs: the bot is off and,
    with the workspace's auto-assignment on, it is assigned to them. Refused sends leave nothing behind
    (not even the new conversation). WorkflowError not_found when the open conversation is one the
    caller may not see."""
    from conversations import bot

    if draft.idempotency_key:
        existing = Message.objects.filter(idempotency_key=draft.idempotency_key).first()
        if existing is not None:
            if existing.conversation.contact_id != contact.pk:
                raise MessageRejected(
                    "idempotency_key_reused", "That idempotency key was used for another conversation."
                )
            return existing.conversation, existing
    # The inbound round's lock order: the contact, then its conversation.
    contact = Contact.objects.select_for_update().get(pk=contact.pk)
    conversation = (
        Conversation.objects.select_for_update()
        .filter(contact=contact, channel=channel)
        .exclude(status=Conversation.Status.RESOLVED)
        .order_by("-id")
        .first()
    )
    if conversation is None:
        viewer = by if isinstance(by, Viewer) else viewer_for(by)
        user = viewer.user
        assignee = user if user is not None and bot.load_settings().assign_on_reply else None
        conversation = Conversation.objects.create(
            contact=contact, channel=channel, bot_active=False, assignee=assignee
        )
        events.conversation_updated(conversation, change="created")
    conversation.contact = contact
    conversation.channel = channel
    message = send_reply(conversation=conversation, draft=draft, by=by, locked=True)
    return conversation, message


def _after_outbound(conversation: Conversation, message: Message, *, replier: Viewer | None) -> None:
    """The conversation after a message went out: its activity time, and for a human reply the bot's
    handover, the first response and the auto-assignment. One UPDATE of the locked row, one event."""
    from conversations import bot

    fields = ["last_message_at"]
    conversation.last_message_at = message.timestamp
    change = "updated"
    previously = (conversation.assignee_id, conversation.team_id)
    lines: list[str] = []
    if replier is not None:
        user = replier.user
        name = _actor_name(replier)
        if conversation.first_response_at is None:
            conversation.first_response_at = message.timestamp
            conversation.first_response_by = user
            fields += ["first_response_at", "first_response_by"]
        if conversation.bot_active:
            conversation.bot_active = False
            fields.append("bot_active")
            change = "bot"
            lines.append(f"{name} replied: the bot stopped")
        if user is not None and conversation.assignee_id is None and bot.load_settings().assign_on_reply:
            conversation.assignee = user
            fields.append("assignee")
            change = "assigned"
            lines.append(f"{name} replied and was assigned this conversation")
    conversation.save(update_fields=[*fields, "updated_at"])
    Contact.objects.filter(pk=conversation.contact_id).update(last_outbound_at=message.timestamp)
    for line in lines:
        _record_system_event(conversation=conversation, text=line, by=replier.user if replier else None)
    events.conversation_updated(
        conversation, change=change, previously=previously if change == "assigned" else None
    )


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
    media: MediaFile,
    caption: str = "",
    sender: Any = None,
    idempotency_key: str | None = None,
    reply_to: Message | None = None,
    bulk: bool = False,
) -> Message:
    """Send an uploaded MediaFile (whatsapp.services.upload_media) by its Meta media id."""
    draft = Draft(
        kind="media", media=media, text=caption, reply_to=reply_to, idempotency_key=idempotency_key, bulk=bulk
    )
    return send_reply(conversation=conversation, draft=draft, **_wrapper_by(sender))


def _template_components(template: MessageTemplate, parameters: Any) -> tuple[list[dict[str, Any]], str]:
    """Check the parameters against the template's placeholders; build Meta's components and a preview."""
    if isinstance(parameters, list | tuple):
        parameters = {"body": list(parameters)}
    parameters = dict(parameters or {})
    named = template.parameter_format.upper() == "NAMED"
    components: list[dict[str, Any]] = []
    problems: dict[str, str] = {}

    def text_params(values: Any, placeholders: list[str], where: str) -> list[dict[str, Any]]:
        if named:
            values = values if isinstance(values, dict) else {}
            missing = [p for p in placeholders if p not in values]
            extra = [k for k in values if k not in placeholders]
            if missing or extra:
                problems[where] = f"expects {placeholders}; missing {missing}, unexpected {extra}"
            return [
                {"type": "text", "parameter_name": p, "text": str(values.get(p, ""))} for p in placeholders
            ]
        values = (
            list(values) if isinstance(values, list | tuple) else ([] if values in (None, "") else [values])
        )
        if len(values) != len(placeholders):
            expected = ngettext("%(n)d parameter", "%(n)d parameters", len(placeholders)) % {
                "n": len(placeholders)
            }
            problems[where] = f"takes {expected}; {len(values)} given"
        return [{"type": "text", "text": str(v)} for v in values]

    header_format = template.header_format()
    header_value = parameters.get("header")
    if header_format in ("IMAGE", "VIDEO", "DOCUMENT"):
        kind = header_format.lower()
        if not isinstance(header_value, dict) or not (header_value.get("id") or header_value.get("link")):
            problems["header"] = f"needs a {kind} ({{'id': media id}} or {{'link': url}})"
        else:
            media = {k: v for k, v in header_value.items() if k in ("id", "link", "filename")}
            components.append({"type": "header", "parameters": [{"type": kind, kind: media}]})
    elif header_format == "TEXT":
        placeholders = template.header_placeholders()
        if placeholders or header_value:
            params = text_params(header_value, placeholders, "header")
            if placeholders:
                components.append({"type": "header", "parameters": params})
    body_placeholders = template.body_placeholders()
    body_values = parameters.get("body", {} if named else [])
    body_params = text_params(body_values, body_placeholders, "body")
    if body_placeholders:
        components.append({"type": "body", "parameters": body_params})
    button_values = parameters.get("buttons") or {}
    if isinstance(button_values, list):
        button_values = dict(enumerate(button_values))
    button_values = {int(k): v for k, v in button_values.items()}
    buttons = (template.component("BUTTONS") or {}).get("buttons", [])
    for index, _placeholders in template.button_placeholders().items():
        if index not in button_values:
            problems[f"buttons.{index}"] = "needs a parameter"
            continue
        kind = str(buttons[index].get("type", "")).upper()
        param = (
            {"type": "coupon_code", "coupon_code": str(button_values[index])}
            if kind == "COPY_CODE"
            else {"type": "text", "text": str(button_values[index])}
        )
        components.append(
            {"type": "button", "sub_type": kind.lower(), "index": str(index), "parameters": [param]}
        )
    unexpected = set(button_values) - set(template.button_placeholders())
    if unexpected:
        problems["buttons"] = f"buttons {sorted(unexpected)} take no parameter"
    if problems:
        raise MessageRejected(
            "template_parameters",
            f"The parameters do not match the template '{template.name}': "
            + "; ".join(f"{k} {v}" for k, v in problems.items()),
            problems,
        )
    values: Any = body_values if named else list(body_values or [])
    preview = template.render_body(values) or template.name
    return components, preview


def send_template_message(
    *,
    conversation: Conversation,
    template: MessageTemplate | str,
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


def _check_interactive(interactive: dict[str, Any]) -> str:
    kind = interactive.get("type")
    body_text = str((interactive.get("body") or {}).get("text") or "")
    if not body_text:
        raise MessageRejected("invalid_interactive", "An interactive message needs body.text.")
    if len(body_text) > 1024:
        raise MessageRejected("invalid_interactive", "body.text is at most 1024 characters.")
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


def set_reaction(*, target: Message, side: str, emoji: str) -> None:
    reactions = dict(target.reactions or {})
    if emoji:
        reactions[side] = emoji
    else:
        reactions.pop(side, None)
    target.reactions = reactions
    target.save(update_fields=["reactions"])
    events.message_updated(target)


@transaction.atomic
def mark_as_read(*, message: Message, user: Any = None) -> Message:
    """Tell Meta the contact's message was read (blue ticks on their side) and clear the unread count."""
    if message.direction != Message.Direction.INBOUND or not message.wamid:
        raise MessageRejected("invalid_read_target", "Only received messages can be marked as read.")
    if message.read_at is None:
        message.read_at = timezone.now()
    _mark_read(message.conversation, message.pk)
    return message


def _mark_read(conversation: Conversation, message_id: int | None, *, typing: bool = False) -> None:
    """Clear the conversation's unread count and, given a message received from WhatsApp, mark it read and
    queue its read receipt (with `typing`, Meta's typing indicator too). Plain UPDATEs: marking read is on
    the inbox's hot path."""
    now = timezone.now()
    if message_id is not None:
        Message.objects.filter(pk=message_id, read_at__isnull=True).update(read_at=now)
        from whatsapp.actors import enqueue_read_receipt

        schema = connection.schema_name
        transaction.on_commit(
            lambda: enqueue_read_receipt(message_id=message_id, schema=schema, typing=typing)
        )
    if conversation.unread_count:
        Conversation.objects.filter(pk=conversation.pk).update(unread_count=0, updated_at=now)
        conversation.unread_count = 0
        conversation.updated_at = now
        events.conversation_updated(conversation, change="read")


# Meta shows "typing…" for up to 25 s per request: one request per conversation in this long is enough
# however many agents type and however often their pages ask.
TYPING_INTERVAL_SECONDS = 20


@transaction.atomic
def indicate_typing(*, conversation: Conversation, by: Any) -> bool:
    """A person is composing a reply: the customer sees "typing…" (Meta sends it only with a read of a
    message of theirs: their latest). Only for a message inside the 24-hour window, to which a reply can
    go; at most once per TYPING_INTERVAL_SECONDS per conversation. True when one was queued."""
    from django.core.cache import cache  # keys carry the tenant schema (django_tenants.cache.make_key)

    if conversation.channel_id is None:
        return False
    latest = (
        Message.objects.filter(
            conversation=conversation,
            direction=Message.Direction.INBOUND,
            wamid__isnull=False,
            timestamp__gte=timezone.now() - dt.timedelta(hours=24),
        )
        .order_by("-timestamp", "-id")
        .values_list("pk", flat=True)
        .first()
    )
    if latest is None:
        return False
    if not cache.add(f"wa:typing:{conversation.pk}", 1, timeout=TYPING_INTERVAL_SECONDS):
        return False
    _mark_read(conversation, latest, typing=True)
    return True


@transaction.atomic
def retry_message(*, message: Message, user: Any) -> Message:
    """A user's retry of a failed outbound message. One Meta accepted (it has a wamid) is never resent:
    a copy is queued instead."""
    # Locks in the inbound round's order: the contact, then the message, then the conversation.
    contact_id = Conversation.objects.filter(pk=message.conversation_id).values_list("contact_id", flat=True)
    contact = Contact.objects.select_for_update().get(pk__in=contact_id)
    message = Message.objects.select_for_update().get(pk=message.pk)
    if message.direction != Message.Direction.OUTBOUND or message.status != Message.Status.FAILED:
        raise MessageRejected("not_retryable", "Only a failed outgoing message can be retried.")
    conversation = Conversation.objects.select_for_update().get(pk=message.conversation_id)
    conversation.contact = contact
    message.conversation = conversation
    _check_channel(conversation)
    template = None
    if message.type == Message.Type.TEMPLATE:
        from whatsapp.models import MessageTemplate

        template_id = (message.payload or {}).get("template_id")
        template = MessageTemplate.objects.filter(pk=template_id).first() if template_id else None
    _check_recipient(conversation, template=template)
    if message.type != Message.Type.TEMPLATE:
        _check_window(conversation)
    if message.wamid:
        outbound = _Outbound(message.type, message.payload, message.text, message.preview, False)
        copy, _ = _insert_outbound(
            conversation=conversation,
            outbound=outbound,
            sender=user,
            idempotency_key=None,
            reply_to=message.reply_to,
            bulk=message.bulk,
        )
        events.message_created(copy)
        _after_outbound(conversation, copy, replier=None)
        enqueue_send(copy)
        return copy
    message.status = Message.Status.QUEUED
    message.error_code = None
    message.error_title = ""
    message.error_details = ""
    message.send_started_at = None
    message.next_attempt_at = None
    message.send_attempts = 0
    message.timestamp = timezone.now()
    message.save(
        update_fields=[
            "status",
            "error_code",
            "error_title",
            "error_details",
            "send_started_at",
            "next_attempt_at",
            "send_attempts",
            "timestamp",
        ]
    )
    events.message_updated(message)
    enqueue_send(message)
    return message


@dataclass
class InboundDraft:
    """A new inbound message of `contact` on `channel`, ready to store."""

    contact: Contact
    channel: WhatsAppChannel
    wamid: str
    type: str
    text: str
    payload: dict[str, Any]
    preview: str
    timestamp: dt.datetime
    is_forwarded: bool = False
    reply_to: Message | None = None
    error_code: int | None = None
    error_title: str = ""
    error_details: str = ""


CONVERSATION_INBOUND_FIELDS = [
    "status",
    "resolved_at",
    "snoozed_until",
    "unread_count",
    "last_message_at",
    "last_inbound_at",
    "updated_at",
]


Pair = tuple[int, int | None]  # (contact, number)


def _conversations_for_inbound(
    drafts: list[InboundDraft],
) -> tuple[dict[Pair, Conversation], list[Conversation]]:
    """Each (contact, number)'s latest conversation, locked (reopened by store_inbound_messages if
    resolved), or a new one; and the new ones. The caller holds the contacts' row locks, so no other
    worker creates a conversation for them meanwhile and the latest one cannot change under us."""
    contacts = {draft.contact.pk: draft.contact for draft in drafts}
    pairs: dict[Pair, WhatsAppChannel] = {
        (draft.contact.pk, draft.channel.pk): draft.channel for draft in drafts
    }
    table = Conversation._meta.db_table
    # Plain SQL: this runs in every inbound round, where the ORM's compiling was most of the cost.
    latest = Conversation.objects.raw(
        f"SELECT * FROM {table} WHERE id IN ("
        f"  SELECT DISTINCT ON (contact_id, channel_id) id FROM {table}"
        "   WHERE contact_id = ANY(%s::bigint[]) AND channel_id = ANY(%s::bigint[])"
        "   ORDER BY contact_id, channel_id, id DESC"
        ") ORDER BY id FOR UPDATE",
        [list(contacts), list({n for _, n in pairs if n is not None})],
    )
    found: dict[Pair, Conversation] = {}
    for conversation in latest:
        key = (conversation.contact_id, conversation.channel_id)
        if key in pairs:
            found[key] = conversation
    new = [(contacts[c], channel) for (c, n), channel in pairs.items() if (c, n) not in found]
    # A new conversation starts with the bot only when it has something to say, else it goes straight
    # to the agents' queue: the inbox shows bot_active as "the bot is answering". (Cached per batch.)
    from conversations import bot

    with_bot = bool(new) and bot.speaks_first()
    created = Conversation.objects.bulk_create(
        [Conversation(contact=contact, channel=channel, bot_active=with_bot) for contact, channel in new]
    )
    for conversation in created:
        found[(conversation.contact_id, conversation.channel_id)] = conversation
    for conversation in found.values():
        # The caller's contact carries this batch's changes (window, name); the bot reads it.
        conversation.contact = contacts[conversation.contact_id]
    return found, created


def store_inbound_messages(*, drafts: list[InboundDraft]) -> list[Message]:
    """New inbound messages, in order: conversations found or opened and reopened, counts and times
    moved, events published, and the bot answers where it is on. The caller holds the senders' contact
    row locks and has checked that the wamids are new (the unique wamid would refuse them anyway).

    The number of statements does not grow with the batch (one to find and lock the conversations,
    one INSERT for the messages, one UPDATE for the conversations, one for the events) unless the bot
    answers: a worker under load takes many messages per transaction, and per-message statements were
    most of its CPU."""
    if not drafts:
        return []
    conversations, created = _conversations_for_inbound(drafts)
    messages = [
        Message(
            conversation=conversations[(draft.contact.pk, draft.channel.pk)],
            direction=Message.Direction.INBOUND,
            type=draft.type,
            text=draft.text,
            payload=draft.payload,
            preview=draft.preview[:200],
            status=Message.Status.RECEIVED,
            wamid=draft.wamid,
            reply_to=draft.reply_to,
            is_forwarded=draft.is_forwarded,
            error_code=draft.error_code,
            error_title=draft.error_title[:300],
            error_details=draft.error_details,
            timestamp=draft.timestamp,
        )
        for draft in drafts
    ]
    insert_rows(Message, messages)
    now = timezone.now()
    changes: dict[int, str] = {}
    first_inbound = []
    for message in messages:
        conversation = message.conversation
        changes.setdefault(conversation.pk, "updated")
        first_inbound.append(conversation.last_inbound_at is None)
        if conversation.status in (Conversation.Status.RESOLVED, Conversation.Status.SNOOZED):
            changes[conversation.pk] = "reopened"
            conversation.status = Conversation.Status.OPEN
            conversation.resolved_at = None
            conversation.snoozed_until = None
        if message.type != Message.Type.REACTION:
            conversation.unread_count += 1
        if conversation.last_message_at is None or message.timestamp > conversation.last_message_at:
            conversation.last_message_at = message.timestamp
        if conversation.last_inbound_at is None or message.timestamp > conversation.last_inbound_at:
            conversation.last_inbound_at = message.timestamp
        conversation.updated_at = now
    touched = {message.conversation.pk: message.conversation for message in messages}
    update_rows(Conversation, list(touched.values()), CONVERSATION_INBOUND_FIELDS)
    events.publish_events(
        [
            *(events.conversation_event(conversation, change="created") for conversation in created),
            *(events.message_created_event(message) for message in messages),
            *(events.conversation_event(c, change=changes[pk]) for pk, c in touched.items()),
        ]
    )
    from conversations import bot, consent

    # STOP / START (and the tenant's words for them) change the contact's consent and are confirmed;
    # the bot does not also answer them.
    keywords = consent.handle_keywords(messages)
    for message, first in zip(messages, first_inbound, strict=True):
        if message.pk in keywords:
            continue
        if message.conversation.bot_active and message.type != Message.Type.REACTION:
            bot.answer(message=message, first_inbound=first)
    return messages


STATUS_TIME_FIELD = {"sent": "sent_at", "delivered": "delivered_at", "read": "read_at", "played": "read_at"}


def apply_message_status(
    *,
    message: Message,
    status: str,
    timestamp: dt.datetime,
    error_code: int | None = None,
    error_title: str = "",
    error_details: str = "",
) -> bool:
    """Merge a delivery status monotonically; returns whether anything changed. The caller locks the row."""
    rank = Message.STATUS_RANK
    changed: list[str] = []
    time_field = STATUS_TIME_FIELD.get(status)
    if time_field and getattr(message, time_field) is None:
        setattr(message, time_field, timestamp)
        changed.append(time_field)
    if status in rank and rank[status] > rank.get(message.status, 0):
        message.status = status
        changed.append("status")
        if status == Message.Status.FAILED:
            message.error_code = error_code
            message.error_title = error_title[:300]
            message.error_details = error_details
            changed += ["error_code", "error_title", "error_details"]
    if changed:
        message.save(update_fields=changed)
        events.message_updated(message)
    return bool(changed)


# (messages section ends)


# ---------------------------------------------------------------------------------------------------
# Conversation workflow: assignment, status, snooze, tags, unread, bot handover (the inbox's side).
# ---------------------------------------------------------------------------------------------------


class WorkflowError(Exception):
    """A workflow action that cannot be done; `code` is stable for API clients and tests, and
    `status_code` is what the pages and the API answer (404 not visible, 403 role, 409 conflict)."""

    STATUS = {"not_found": 404, "forbidden": 403, "already_assigned": 409}

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    @property
    def status_code(self) -> int:
        return self.STATUS.get(self.code, 400)


def _name(user: Any) -> str:
    if user is None:
        return "The bot"
    return str(user.get_full_name() or user.email)


def _actor_name(by: Any) -> str:
    """A person's name, or the integration key's (a Viewer without a user)."""
    if isinstance(by, Viewer):
        if by.user is None:
            return f"Integration {by.key_name}".strip()
        return _name(by.user)
    return _name(by)


def _user_of(by: Any) -> Any:
    return by.user if isinstance(by, Viewer) else by


def _record_system_event(*, conversation: Conversation, text: str, by: Any = None) -> Message:
    """A line in the thread saying what happened (assignment, status, bot handover): the audit trail
    agents read. It is never sent to WhatsApp."""
    return _store_internal_message(
        conversation=conversation, kind=Message.Type.SYSTEM, text=text, by=_user_of(by)
    )


def _store_internal_message(*, conversation: Conversation, kind: str, text: str, by: Any) -> Message:
    """A thread line that never goes to WhatsApp (system line, private note). Stored as sent so no
    sender ever picks it up."""
    message = Message.objects.create(
        conversation=conversation,
        direction=Message.Direction.OUTBOUND,
        type=kind,
        text=text,
        preview=text[:200],
        status=Message.Status.SENT,
        sender=by,
        timestamp=timezone.now(),
    )
    events.message_created(message)
    return message


def _check_can_act(conversation: Conversation, by: Any) -> Viewer:
    """Re-read the conversation under its row lock (into the caller's instance) and check that `by` (a
    user, or a Viewer such as an integration key's) still sees it. Workflow writes lock only the
    conversation, which the inbound round locks after the contacts: no lock-order cycle."""
    conversation.refresh_from_db(from_queryset=Conversation.objects.select_for_update())
    viewer = by if isinstance(by, Viewer) else viewer_for(by)
    if not can_see(viewer, conversation):
        raise WorkflowError("not_found", "This conversation does not exist or is not yours to see.")
    return viewer


# "The assignee as the caller's row was loaded": the default expectation of take/assign.
AS_LOADED: Any = object()
_AS_LOADED = AS_LOADED


def _taken_meanwhile(seen: int | None, now: int | None, viewer: Viewer) -> bool:
    """Someone else got the conversation between the caller's look at it and this lock."""
    return now != seen and now is not None and now != viewer.user_id


@transaction.atomic
def assign_conversation(
    *,
    conversation: Conversation,
    assignee: Any | None,
    team: Team | None,
    by: Any,
    seen_assignee_id: int | None = _AS_LOADED,
) -> Conversation:
    """Assign to an agent and/or a team (None clears). Agents may hand over only what is theirs or
    unassigned; supervisors and admins may assign anything. `seen_assignee_id`: the assignee the caller
    saw (default: as the caller's row was loaded); when an agent's unassigned conversation was taken
    meanwhile, 409 already_assigned."""
    seen = conversation.assignee_id if seen_assignee_id is _AS_LOADED else seen_assignee_id
    viewer = _check_can_act_or_taken(conversation, by, seen)
    if not viewer.can_supervise and conversation.assignee_id not in (None, viewer.user_id):
        if _taken_meanwhile(seen, conversation.assignee_id, viewer):
            raise _already_assigned(conversation)
        raise WorkflowError("forbidden", "Only a supervisor can reassign another agent's conversation.")
    if assignee is not None and not Agent.objects.filter(user_id=assignee.pk, user__is_active=True).exists():
        raise WorkflowError("invalid_assignee", "That person is not an active agent of this workspace.")
    previously = (conversation.assignee_id, conversation.team_id)
    if previously == (getattr(assignee, "pk", None), getattr(team, "pk", None)):
        return conversation
    conversation.assignee = assignee
    conversation.team = team
    conversation.save(update_fields=["assignee", "team", "updated_at"])
    if assignee is None and team is None:
        text = f"{_actor_name(viewer)} unassigned this conversation"
    else:
        target = " / ".join(str(x) for x in (assignee and _name(assignee), team and team.name) if x)
        text = f"{_actor_name(viewer)} assigned this conversation to {target}"
    _record_system_event(conversation=conversation, text=text, by=viewer)
    events.conversation_updated(conversation, change="assigned", previously=previously)
    return conversation


def _already_assigned(conversation: Conversation) -> WorkflowError:
    holder = conversation.assignee
    who = _name(holder) if holder is not None else "someone else"
    return WorkflowError("already_assigned", f"{who} has just taken this conversation.")


@transaction.atomic
def take_conversation(
    *, conversation: Conversation, by: Any, seen_assignee_id: int | None = _AS_LOADED
) -> Conversation:
    """The agent takes it: assigned to them and the bot stops answering (takeover).

    Two agents taking the same unassigned conversation at once: the row lock makes the second wait,
    and it then finds the conversation taken and answers 409 already_assigned, changing nothing.
    `seen_assignee_id` is the assignee the caller saw (default: as the caller's row was loaded); a
    supervisor may take over another agent's conversation only when that is what they saw."""
    seen = conversation.assignee_id if seen_assignee_id is _AS_LOADED else seen_assignee_id
    viewer = _check_can_act_or_taken(conversation, by, seen)
    if viewer.user is None:
        raise WorkflowError("forbidden", "An integration key is no person: assign to an agent instead.")
    if conversation.assignee_id == viewer.user_id and not conversation.bot_active:
        return conversation
    if _taken_meanwhile(seen, conversation.assignee_id, viewer):
        raise _already_assigned(conversation)
    if conversation.assignee_id not in (None, viewer.user_id) and not viewer.can_supervise:
        raise WorkflowError("forbidden", "This conversation is already assigned to someone else.")
    previously = (conversation.assignee_id, conversation.team_id)
    conversation.assignee = viewer.user
    was_bot = conversation.bot_active
    conversation.bot_active = False
    conversation.save(update_fields=["assignee", "bot_active", "updated_at"])
    text = f"{_actor_name(viewer)} took this conversation"
    if was_bot:
        text += " over from the bot"
    _record_system_event(conversation=conversation, text=text, by=viewer)
    events.conversation_updated(conversation, change="assigned", previously=previously)
    return conversation


def _check_can_act_or_taken(conversation: Conversation, by: Any, seen: int | None) -> Viewer:
    """Like _check_can_act, but an agent who lost sight of the conversation because someone took it
    meanwhile learns that (409), rather than that it does not exist: they saw it a moment ago."""
    try:
        return _check_can_act(conversation, by)
    except WorkflowError:
        viewer = by if isinstance(by, Viewer) else viewer_for(by)
        if _taken_meanwhile(seen, conversation.assignee_id, viewer):
            raise _already_assigned(conversation) from None
        raise


@transaction.atomic
def set_conversation_status(*, conversation: Conversation, status: str, by: Any) -> Conversation:
    if status not in Conversation.Status.values or status == Conversation.Status.SNOOZED:
        raise WorkflowError(
            "invalid_status", "Status must be open, pending or resolved (snooze needs a time)."
        )
    viewer = _check_can_act(conversation, by)
    if conversation.status == status:
        return conversation
    conversation.status = status
    conversation.snoozed_until = None
    conversation.resolved_at = timezone.now() if status == Conversation.Status.RESOLVED else None
    conversation.save(update_fields=["status", "snoozed_until", "resolved_at", "updated_at"])
    label = Conversation.Status(status).label.lower()
    _record_system_event(
        conversation=conversation, text=f"{_actor_name(viewer)} marked this {label}", by=viewer
    )
    events.conversation_updated(conversation, change="status")
    return conversation


@transaction.atomic
def snooze_conversation(*, conversation: Conversation, until: dt.datetime, by: Any) -> Conversation:
    """Hidden from the open list until `until` (or the contact's next message), then open again."""
    if until <= timezone.now():
        raise WorkflowError("invalid_snooze", "Snooze until a time in the future.")
    viewer = _check_can_act(conversation, by)
    conversation.status = Conversation.Status.SNOOZED
    conversation.snoozed_until = until
    conversation.save(update_fields=["status", "snoozed_until", "updated_at"])
    _record_system_event(
        conversation=conversation,
        text=f"{_actor_name(viewer)} snoozed this until {timezone.localtime(until):%Y-%m-%d %H:%M %Z}",
        by=viewer,
    )
    events.conversation_updated(conversation, change="status")
    return conversation


def wake_snoozed_conversations(*, now: dt.datetime | None = None) -> int:
    """Reopen snoozed conversations whose time has come (the scheduler calls this every minute)."""
    due = list(
        Conversation.objects.filter(
            status=Conversation.Status.SNOOZED, snoozed_until__lte=now or timezone.now()
        ).values_list("pk", flat=True)[:1000]
    )
    for pk in due:
        with transaction.atomic():
            conversation = Conversation.objects.select_for_update().get(pk=pk)
            if conversation.status != Conversation.Status.SNOOZED:
                continue
            conversation.status = Conversation.Status.OPEN
            conversation.snoozed_until = None
            conversation.save(update_fields=["status", "snoozed_until", "updated_at"])
            _record_system_event(conversation=conversation, text="Snooze ended: open again")
            events.conversation_updated(conversation, change="status")
    return len(due)


@transaction.atomic
def set_conversation_tags(*, conversation: Conversation, tags: list[Tag], by: Any) -> Conversation:
    _check_can_act(conversation, by)
    conversation.tags.set(tags)
    conversation.save(update_fields=["updated_at"])
    events.conversation_updated(conversation, change="tagged")
    return conversation


@transaction.atomic
def mark_conversation_unread(*, conversation: Conversation, by: Any) -> Conversation:
    _check_can_act(conversation, by)
    if conversation.unread_count:
        return conversation
    # A conditional increment: the count is the inbound round's, never written back from a stale read.
    Conversation.objects.filter(pk=conversation.pk, unread_count=0).update(
        unread_count=F("unread_count") + 1, updated_at=timezone.now()
    )
    conversation.refresh_from_db(fields=["unread_count", "updated_at"])
    events.conversation_updated(conversation, change="unread")
    return conversation


@transaction.atomic
def mark_conversation_read(*, conversation: Conversation, by: Any) -> Conversation:
    """A person has the thread in front of them (the page asks explicitly once the thread is visible;
    opening its URL does not, so a link preview or a prefetch gives no customer blue ticks): the unread
    count clears for everyone (the count is the team's, not one agent's: whoever reads the customer has
    read them) and Meta is told."""
    if conversation.unread_count == 0:
        return conversation
    latest = None
    if conversation.channel_id is not None:
        # Blue ticks on the customer's phone: Meta marks everything up to this message as read.
        latest = (
            Message.objects.filter(
                conversation=conversation, direction=Message.Direction.INBOUND, wamid__isnull=False
            )
            .order_by("-timestamp", "-id")
            .values_list("pk", flat=True)
            .first()
        )
    _mark_read(conversation, latest)
    return conversation


@transaction.atomic
def set_bot_active(*, conversation: Conversation, active: bool, by: Any) -> Conversation:
    """Hand the conversation to the bot (active) or take it back for humans."""
    viewer = _check_can_act(conversation, by)
    if conversation.bot_active == active:
        return conversation
    conversation.bot_active = active
    conversation.save(update_fields=["bot_active", "updated_at"])
    name = _actor_name(viewer)
    text = f"{name} handed this conversation to the bot" if active else f"{name} took over from the bot"
    _record_system_event(conversation=conversation, text=text, by=viewer)
    events.conversation_updated(conversation, change="bot")
    return conversation


def hand_over_from_bot(*, conversation: Conversation) -> None:
    """The bot has nothing more to say to the customer (conversations.bot.answer): the conversation goes
    to the agents' queue, and the inbox hears of it as of any bot handover. The caller (the inbound
    round) holds the conversation's row lock."""
    if not conversation.bot_active:
        return
    conversation.bot_active = False
    conversation.save(update_fields=["bot_active", "updated_at"])
    events.conversation_updated(conversation, change="bot")


UNCHANGED: Any = object()


@transaction.atomic
def update_conversation(
    *,
    conversation: Conversation,
    by: Any,
    assignee_id: int | None = UNCHANGED,
    team_id: int | None = UNCHANGED,
    status: str = UNCHANGED,
    snoozed_until: dt.datetime | None = UNCHANGED,
    bot_active: bool = UNCHANGED,
    tag_names: list[str] = UNCHANGED,
) -> Conversation:
    """Several workflow changes at once (the API's PATCH), all or nothing: each goes through its own
    service above (the inbox's rules, system lines and events), in one transaction, so a refused one
    undoes the others and publishes nothing. UNCHANGED leaves a field alone."""
    from django.contrib.auth import get_user_model

    # Locked once up front; a conversation someone took since the caller loaded it is a 409, whatever
    # the other fields say (they were meant for the conversation as it was).
    seen = conversation.assignee_id
    by = _check_can_act_or_taken(conversation, by, seen)
    assigning = assignee_id is not UNCHANGED or team_id is not UNCHANGED
    if assigning and not by.can_supervise and _taken_meanwhile(seen, conversation.assignee_id, by):
        raise _already_assigned(conversation)
    if (
        status is not UNCHANGED
        and status == Conversation.Status.SNOOZED
        and snoozed_until in (UNCHANGED, None)
    ):
        raise WorkflowError("invalid_snooze", "Snoozing needs snoozed_until, a time in the future.")
    if snoozed_until is not UNCHANGED and snoozed_until is not None:
        if status not in (UNCHANGED, Conversation.Status.SNOOZED):
            raise WorkflowError("invalid_snooze", "snoozed_until goes with status snoozed (or no status).")
        status = Conversation.Status.SNOOZED
    if snoozed_until is None and status is UNCHANGED:
        raise WorkflowError("invalid_snooze", "To end a snooze, set the status (open, pending or resolved).")
    tags: list[Tag] | None = None
    if tag_names is not UNCHANGED:
        wanted = {name.strip().casefold(): name.strip() for name in tag_names if name.strip()}
        found = {t.name.casefold(): t for t in Tag.objects.filter(name__in=list(wanted.values()))}
        if len(found) < len(wanted):
            # Case-insensitive second look for the rest: "VIP" names the tag "vip".
            for tag in Tag.objects.exclude(pk__in=[t.pk for t in found.values()]):
                if tag.name.casefold() in wanted:
                    found.setdefault(tag.name.casefold(), tag)
        unknown = sorted(name for key, name in wanted.items() if key not in found)
        if unknown:
            raise WorkflowError("unknown_tag", f"No such tag: {', '.join(unknown)}. Create tags first.")
        tags = list(found.values())
    if status is not UNCHANGED:
        if status == Conversation.Status.SNOOZED:
            assert snoozed_until is not None and snoozed_until is not UNCHANGED  # checked above
            snooze_conversation(conversation=conversation, until=snoozed_until, by=by)
        else:
            set_conversation_status(conversation=conversation, status=status, by=by)
    if bot_active is not UNCHANGED:
        set_bot_active(conversation=conversation, active=bot_active, by=by)
    if tags is not None:
        set_conversation_tags(conversation=conversation, tags=tags, by=by)
    # The assignment last: an agent who hands the conversation to someone else may no longer see it,
    # and the other changes are checked against what they see.
    if assigning:
        assignee = conversation.assignee if assignee_id is UNCHANGED else None
        if assignee_id not in (UNCHANGED, None):
            assignee = get_user_model().objects.filter(pk=assignee_id).first()
            if assignee is None:
                raise WorkflowError(
                    "invalid_assignee", "That person is not an active agent of this workspace."
                )
        team = conversation.team if team_id is UNCHANGED else None
        if team_id not in (UNCHANGED, None):
            team = Team.objects.filter(pk=team_id).first()
            if team is None:
                raise WorkflowError("invalid_team", "No such team.")
        assign_conversation(
            conversation=conversation, assignee=assignee, team=team, by=by, seen_assignee_id=seen
        )
    return conversation


@transaction.atomic
def add_private_note(*, conversation: Conversation, text: str, author: Any, checked: bool = False) -> Message:
    """A note only staff see: stored in the thread, never sent to WhatsApp. `checked`: the reply path
    has already locked the row and checked the author."""
    if not checked:
        _check_can_act(conversation, author)
    text = (text or "").strip()
    if not text:
        raise WorkflowError("empty_note", "Write something in the note.")
    if len(text) > 4096:
        raise WorkflowError("note_too_long", "A note can be at most 4096 characters.")
    return _store_internal_message(
        conversation=conversation, kind=Message.Type.NOTE, text=text, by=_user_of(author)
    )


# ---------------------------------------------------------------------------------------------------
# The contact side panel: the CRM's services write, and the inbox hears about it.
# ---------------------------------------------------------------------------------------------------

# A contact rarely has more than a few live conversations; the bound keeps one edit one small batch.
CONTACT_EVENT_LIMIT = 50


def _contact_changed(conversation: Conversation) -> None:
    """List rows and thread heads show the contact's name, panels its details: tell those who see
    its active conversations and the one the change came from (resolved ones show it when next drawn)."""
    related = (
        Conversation.objects.filter(contact_id=conversation.contact_id)
        .filter(~Q(status=Conversation.Status.RESOLVED) | Q(pk=conversation.pk))
        .only("pk", "status", "assignee_id", "team_id", "unread_count")
        .order_by(F("last_message_at").desc(nulls_last=True), "-id")[:CONTACT_EVENT_LIMIT]
    )
    for other in related:
        events.conversation_updated(other, change="contact")


def _locked_contact(conversation: Conversation) -> Contact:
    # The panel edits one field at a time: a fresh, locked row keeps two agents' edits of different
    # fields from overwriting each other (update_contact saves the whole row).
    return Contact.objects.select_for_update().get(pk=conversation.contact_id)


@transaction.atomic
def edit_contact(*, conversation: Conversation, by: Any, **changes: Any) -> Contact:
    """Changes details or attributes of the conversation's contact (crm.services.update_contact)."""
    # The contact's lock before the conversation's: the inbound round's order.
    locked = _locked_contact(conversation)
    _check_can_act(conversation, by)
    contact = crm_services.update_contact(contact=locked, **changes)
    _contact_changed(conversation)
    return contact


@transaction.atomic
def tag_contact(*, conversation: Conversation, name: str, by: Any) -> Tag:
    locked = _locked_contact(conversation)
    _check_can_act(conversation, by)
    tag = crm_services.add_contact_tag(contact=locked, name=name)
    _contact_changed(conversation)
    return tag


@transaction.atomic
def untag_contact(*, conversation: Conversation, tag: Tag, by: Any) -> None:
    locked = _locked_contact(conversation)
    _check_can_act(conversation, by)
    crm_services.remove_contact_tag(contact=locked, tag=tag)
    _contact_changed(conversation)


@transaction.atomic
def note_contact(*, conversation: Conversation, body: str, by: Any) -> Note:
    # The note's row refers to the contact (a key-share lock on it): take the contact first, as the
    # inbound round does, before the conversation.
    locked = _locked_contact(conversation)
    _check_can_act(conversation, by)
    note = crm_services.add_note(contact=locked, body=body, author=by)
    _contact_changed(conversation)
    return note


# (workflow section ends)
