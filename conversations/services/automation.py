"""What the workspace answers by itself in an inbound round, through the one reply path: the bot's
replies (conversations.bot decides what it says) and the confirmations of opt-out and opt-in keywords
(conversations.consent has the words)."""

from __future__ import annotations

from typing import Any

import structlog
from django.utils import timezone

from conversations import ai, bot, consent
from conversations.errors import MessageRejected
from conversations.models import Message
from conversations.services.drafts import Draft
from conversations.services.reply import send_reply
from conversations.services.workflow import hand_over_from_bot
from crm import outgoing_events
from crm.models import Contact

log = structlog.get_logger("bot")


def answer_as_bot(*, message: Message, first_inbound: bool | None = None) -> list[Any]:
    """Send the bot's replies. Idempotency keys derive from the inbound message, so a redelivered or
    retried inbound message never makes the bot say the same thing twice.

    Then, unless a reply answered the customer (bot.ANSWERING_KINDS), the AI agent gets the message when
    one is on and takes it (conversations.ai: it answers in a job of its own and hands over itself when
    it cannot); otherwise the bot has nothing more to say: the conversation goes to the agents' queue
    (hand_over_from_bot), so the inbox never shows "the bot is answering" while the customer waits for
    a person."""
    sent = []
    answered = False
    for kind, text in bot.replies_for(message=message, first_inbound=first_inbound):
        try:
            # The inbound round holds the contact's and conversation's locks with fresh rows.
            sent.append(
                send_reply(
                    conversation=message.conversation,
                    draft=Draft(kind="text", text=text, idempotency_key=f"bot:{message.pk}:{kind}"),
                    automated=True,
                    locked=True,
                )
            )
        except MessageRejected as exc:
            # The bot must never break storing the customer's message; agents still see it.
            log.warning("bot_reply_rejected", conversation=message.conversation_id, kind=kind, error=str(exc))
            continue
        answered = answered or kind in bot.ANSWERING_KINDS
        log.info("bot_replied", conversation=message.conversation_id, kind=kind)
    if not answered and not ai.take(message=message):
        hand_over_from_bot(conversation=message.conversation)
    return sent


def handle_consent_keywords(messages: list[Message]) -> set[int]:
    """Apply opt-out and opt-in keywords among freshly stored inbound messages (the caller holds their
    contacts' row locks) and confirm each change through the reply path. Returns the ids of the
    messages that were keywords: the bot does not also answer them."""
    # A quick-reply button counts too: Meta's marketing templates offer a "Stop promotions" button.
    kinds = (Message.Type.TEXT, Message.Type.BUTTON)
    texts = [m for m in messages if m.type in kinds and m.text and len(m.text) <= consent.WORD_LIMIT * 2]
    if not texts:
        return set()
    settings = bot.load_settings()
    stop, start = bot.cached("consent_words", lambda: consent.keyword_sets(settings))
    handled: set[int] = set()
    # The last keyword of a contact in the batch wins (STOP then START: opted in).
    latest: dict[int, tuple[str, Message]] = {}
    for message in texts:
        intent = consent.intent_of(message.text, stop=stop, start=start)
        if intent is None:
            continue
        handled.add(message.pk)
        latest[message.conversation.contact_id] = (intent, message)
    now = timezone.now()
    changed: list[Any] = []
    for contact_id, (intent, message) in latest.items():
        choice = Contact.MarketingConsent.OPTED_OUT if intent == "stop" else Contact.MarketingConsent.OPTED_IN
        contact = message.conversation.contact
        Contact.objects.filter(pk=contact_id).update(
            marketing_consent=choice, marketing_consent_at=now, updated_at=now
        )
        if contact.marketing_consent != choice:
            changed.append(contact)
        contact.marketing_consent, contact.marketing_consent_at = choice, now
        log.info("consent_keyword", contact=contact_id, intent=intent)
        reply = (settings.opt_out_reply if intent == "stop" else settings.opt_in_reply).strip()
        if reply:
            _confirm(message, reply, intent)
    outgoing_events.contacts_changed(changed)
    return handled


def _confirm(message: Message, text: str, intent: str) -> Any:
    try:
        return send_reply(
            conversation=message.conversation,
            draft=Draft(kind="text", text=text, idempotency_key=f"consent:{message.pk}:{intent}"),
            by=None,
            automated=True,
            locked=True,
        )
    except MessageRejected as exc:
        # The confirmation must never break storing the customer's message (e.g. no active number).
        log.warning("consent_confirmation_rejected", conversation=message.conversation_id, error=str(exc))
        return None
