"""Customer satisfaction (CSAT): when a conversation is resolved and the tenant has the survey on, the
customer gets an interactive list of five ratings through the one reply path; their choice (and, if
asked, their next message as a comment) is stored on a CsatResponse.

Rules: one survey per resolution (the CsatResponse's unique (conversation, resolution) and the message's
idempotency key `csat:<conversation>:<resolved_at>`), never outside the 24-hour window, never to a
blocked or opted-out contact. An answer to a resolved conversation does not reopen it: it is the
customer closing the loop, not a new request (conversations.services.inbound skips the reopen for the
messages absorb_answers returns)."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import structlog
from django.db import connection, transaction
from django.utils import timezone
from django_tenants.utils import schema_context

from conversations.errors import MessageRejected, WorkflowError
from conversations.models import Conversation, CsatResponse, CsatSettings, Message
from conversations.services.drafts import Draft
from conversations.services.reply import send_reply
from crm.models import Contact

log = structlog.get_logger(__name__)

SCORES = ((1, "1 - Very poor"), (2, "2 - Poor"), (3, "3 - Okay"), (4, "4 - Good"), (5, "5 - Excellent"))
ANSWER_ID = re.compile(r"^csat:(\d+):([1-5])$")


def _resolution(conversation: Conversation) -> str:
    assert conversation.resolved_at is not None
    return f"{conversation.resolved_at.timestamp():.6f}"


def survey_interactive(conversation: Conversation, question: str) -> dict[str, Any]:
    rows = [{"id": f"csat:{conversation.pk}:{score}", "title": title} for score, title in SCORES]
    return {
        "type": "list",
        "body": {"text": question[:1024]},
        "action": {"button": "Rate us", "sections": [{"title": "Your rating", "rows": rows}]},
    }


def schedule_survey(conversation: Conversation) -> None:
    """Called by the resolve (in its transaction): asks on commit, in a transaction of its own, so a
    survey that cannot be sent never undoes the resolve."""
    if not CsatSettings.load().enabled:
        return
    pk, schema = conversation.pk, connection.schema_name  # type: ignore[attr-defined]

    def ask() -> None:
        with schema_context(schema):
            try:
                send_survey(conversation_id=pk)
            except Exception:  # the resolve stands; a lost survey is logged, never a 500 after commit
                log.exception("csat_survey_failed", conversation=pk)

    transaction.on_commit(ask)


def send_survey(*, conversation_id: int) -> CsatResponse | None:
    """Ask the customer to rate a resolved conversation; None when the rules say not to (off, not
    resolved, already asked for this resolution, outside the window, blocked or opted out)."""
    settings = CsatSettings.load()
    if not settings.enabled:
        return None
    conversation = (
        Conversation.objects.select_related("contact", "channel").filter(pk=conversation_id).first()
    )
    if conversation is None or conversation.status != Conversation.Status.RESOLVED:
        return None
    if conversation.resolved_at is None:
        return None
    resolution = _resolution(conversation)
    if CsatResponse.objects.filter(conversation=conversation, resolution=resolution).exists():
        return None
    if conversation.contact.marketing_consent == Contact.MarketingConsent.OPTED_OUT:
        return None
    try:
        with transaction.atomic():
            message = send_reply(
                conversation=conversation,
                draft=Draft(
                    kind="interactive",
                    interactive=survey_interactive(conversation, settings.question),
                    idempotency_key=f"csat:{conversation.pk}:{resolution}"[:100],
                ),
                automated=True,
            )
            # send_reply re-read the row under lock: a reopen meanwhile means no survey.
            if conversation.status != Conversation.Status.RESOLVED or _resolution(conversation) != resolution:
                raise WorkflowError("csat_stale", "The conversation changed before the survey went out.")
            response, _ = CsatResponse.objects.get_or_create(
                conversation=conversation,
                resolution=resolution,
                defaults={
                    "message": message,
                    "agent_id": conversation.assignee_id,
                    "team_id": conversation.team_id,
                },
            )
    except (MessageRejected, WorkflowError) as exc:
        log.info("csat_survey_skipped", conversation=conversation.pk, reason=exc.code)
        return None
    return response


def _answer_score(message: Message) -> int | None:
    if message.type != Message.Type.INTERACTIVE:
        return None
    body = (message.payload or {}).get("interactive") or {}
    if not isinstance(body, dict):
        return None
    reply = body.get(str(body.get("type") or "")) or {}
    match = ANSWER_ID.match(str(reply.get("id") or "") if isinstance(reply, dict) else "")
    if match is None or int(match.group(1)) != message.conversation_id:
        return None
    return int(match.group(2))


def _say(conversation: Conversation, text: str, key: str) -> None:
    if not text.strip():
        return
    try:
        with transaction.atomic():
            send_reply(
                conversation=conversation,
                draft=Draft(kind="text", text=text, idempotency_key=key),
                automated=True,
                locked=True,
            )
    except (MessageRejected, WorkflowError) as exc:
        log.info("csat_reply_skipped", conversation=conversation.pk, reason=exc.code)


def absorb_answers(messages: list[Message]) -> set[int]:
    """In the inbound round (contacts and conversations locked, messages stored, before the reopen): the
    ratings and comments among `messages`. Returns the pks that answered a survey of a resolved
    conversation: they do not reopen it and the bot does not answer them."""
    candidates = [
        m
        for m in messages
        if m.type == Message.Type.INTERACTIVE
        or (m.type == Message.Type.TEXT and m.conversation.status == Conversation.Status.RESOLVED)
    ]
    if not candidates:
        return set()
    handled: set[int] = set()
    settings: CsatSettings | None = None
    for message in candidates:
        conversation = message.conversation
        resolved = conversation.status == Conversation.Status.RESOLVED
        score = _answer_score(message)
        response = (
            CsatResponse.objects.filter(conversation=conversation).order_by("-created_at", "-id").first()
        )
        if response is None:
            continue
        settings = settings or CsatSettings.load()
        now = timezone.now()
        if score is not None:
            first = response.answered_at is None
            response.score = score
            response.answered_at = now
            if settings.ask_comment and not response.comment:
                response.comment_until = now + dt.timedelta(minutes=settings.comment_minutes)
            response.save(update_fields=["score", "answered_at", "comment_until"])
            if first:
                if settings.ask_comment:
                    _say(conversation, settings.comment_prompt, f"csat-ask:{response.pk}")
                else:
                    _say(conversation, settings.thanks_text, f"csat-thanks:{response.pk}")
        elif (
            message.type == Message.Type.TEXT
            and resolved
            and response.comment_until is not None
            and not response.comment
            and message.timestamp <= response.comment_until
            and message.text.strip()
        ):
            response.comment = message.text.strip()[:4096]
            response.save(update_fields=["comment"])
            _say(conversation, settings.thanks_text, f"csat-thanks:{response.pk}")
        else:
            continue
        if resolved:
            handled.add(message.pk)
    return handled


CSAT_FIELDS = ("enabled", "question", "ask_comment", "comment_prompt", "comment_minutes", "thanks_text")


@transaction.atomic
def update_csat_settings(**changes: Any) -> CsatSettings:
    """Change the survey's settings (the fields of CSAT_FIELDS; others refused, all or nothing)."""
    unknown = sorted(set(changes) - set(CSAT_FIELDS))
    if unknown:
        raise WorkflowError("invalid_csat_settings", f"Unknown setting: {', '.join(unknown)}.")
    settings = CsatSettings.objects.select_for_update().get_or_create(pk=1)[0]
    for name in ("enabled", "ask_comment"):
        if name in changes and not isinstance(changes[name], bool):
            raise WorkflowError("invalid_csat_settings", f"{name} must be true or false.")
    for name in ("question", "comment_prompt", "thanks_text"):
        if name in changes:
            value = changes[name]
            if not isinstance(value, str) or len(value.strip()) > 1024:
                raise WorkflowError("invalid_csat_settings", f"{name}: a text of at most 1024 characters.")
            changes[name] = value.strip()
    if "question" in changes and not changes["question"]:
        raise WorkflowError("invalid_csat_settings", "The question cannot be empty.")
    if "comment_minutes" in changes:
        minutes = changes["comment_minutes"]
        if isinstance(minutes, bool) or not isinstance(minutes, int) or not 1 <= minutes <= 1440:
            raise WorkflowError("invalid_csat_settings", "comment_minutes: a whole number from 1 to 1440.")
    for name, value in changes.items():
        setattr(settings, name, value)
    settings.save()
    return settings
