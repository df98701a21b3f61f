"""Opt-out and opt-in keywords: a customer who writes STOP (or the tenant's word for it) is opted out of
marketing and told so; START opts them back in.

Called by conversations.services.store_inbound_messages for each inbound round, with the tenant's words
read once per batch (conversations.bot.load_settings is cached per batch), so a round without a keyword
costs no statement at all and one with a keyword costs one UPDATE plus the confirmation's reply.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import structlog
from django.utils import timezone

from crm.models import Contact

if TYPE_CHECKING:
    from conversations.models import BotSettings, Message

log = structlog.get_logger("consent")

# Common words in English, Spanish, Portuguese, German, French, Arabic and Indonesian. Matching ignores
# case and accents, so ARRET also covers ARRÊT and Arrêt.
DEFAULT_STOP_WORDS = (
    "STOP",
    "UNSUBSCRIBE",
    "STOP ALL",
    "STOP PROMOTIONS",
    "CANCEL",
    "BAJA",
    "PARAR",
    "DETENER",
    "SAIR",
    "CANCELAR",
    "STOPP",
    "ABMELDEN",
    "ARRET",
    "DESINSCRIRE",
    "DESABONNER",
    "إيقاف",
    "الغاء",
    "BERHENTI",
)
DEFAULT_START_WORDS = (
    "START",
    "SUBSCRIBE",
    "ALTA",
    "INICIAR",
    "ASSINAR",
    "ANMELDEN",
    "DEMARRER",
    "ابدأ",
    "MULAI",
)
DEFAULT_OPT_OUT_REPLY = (
    "You will no longer receive marketing messages from us. Reply START to subscribe again."
)
DEFAULT_OPT_IN_REPLY = "You are subscribed to our messages again. Reply STOP to unsubscribe."
WORD_LIMIT = 60


def normalize(text: str) -> str:
    """Trimmed, case-folded, without accents and with inner runs of spaces made one: "  Arrêt " and
    "ARRET" are the same word. Arabic diacritics (harakat) are combining marks too, and go the same way."""
    decomposed = unicodedata.normalize("NFKD", text.strip().casefold())
    bare = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    # Arabic's hamza-carrying alefs read as the plain alef in a keyword.
    bare = bare.replace("\u0622", "\u0627").replace("\u0623", "\u0627").replace("\u0625", "\u0627")
    return " ".join(bare.split())


def parse_words(raw: str) -> list[str]:
    """One word or phrase per line (commas also separate), in the stored spelling, without repeats."""
    words: list[str] = []
    seen: set[str] = set()
    for line in raw.replace(",", "\n").splitlines():
        word = " ".join(line.split())
        key = normalize(word)
        if key and key not in seen:
            seen.add(key)
            words.append(word)
    return words


def keyword_sets(settings: BotSettings) -> tuple[frozenset[str], frozenset[str]]:
    return (
        frozenset(normalize(w) for w in parse_words(settings.stop_words)),
        frozenset(normalize(w) for w in parse_words(settings.start_words)),
    )


def intent_of(text: str, *, stop: Iterable[str], start: Iterable[str]) -> str | None:
    """ "stop", "start" or None for an inbound text: the whole message must be the keyword."""
    if not text or len(text) > WORD_LIMIT * 2:
        return None
    word = normalize(text)
    if word in stop:
        return "stop"
    if word in start:
        return "start"
    return None


def handle_keywords(messages: list[Message]) -> set[int]:
    """Apply opt-out and opt-in keywords among freshly stored inbound messages (the caller holds their
    contacts' row locks) and confirm each change through the reply path. Returns the ids of the
    messages that were keywords: the bot does not also answer them."""
    from conversations import bot
    from conversations.models import Message

    # A quick-reply button counts too: Meta's marketing templates offer a "Stop promotions" button.
    kinds = (Message.Type.TEXT, Message.Type.BUTTON)
    texts = [m for m in messages if m.type in kinds and m.text and len(m.text) <= WORD_LIMIT * 2]
    if not texts:
        return set()
    settings = bot.load_settings()
    stop, start = bot.cached("consent_words", lambda: keyword_sets(settings))
    handled: set[int] = set()
    # The last keyword of a contact in the batch wins (STOP then START: opted in).
    latest: dict[int, tuple[str, Message]] = {}
    for message in texts:
        intent = intent_of(message.text, stop=stop, start=start)
        if intent is None:
            continue
        handled.add(message.pk)
        latest[message.conversation.contact_id] = (intent, message)
    now = timezone.now()
    for contact_id, (intent, message) in latest.items():
        consent = (
            Contact.MarketingConsent.OPTED_OUT if intent == "stop" else Contact.MarketingConsent.OPTED_IN
        )
        contact = message.conversation.contact
        Contact.objects.filter(pk=contact_id).update(
            marketing_consent=consent, marketing_consent_at=now, updated_at=now
        )
        contact.marketing_consent, contact.marketing_consent_at = consent, now
        log.info("consent_keyword", contact=contact_id, intent=intent)
        reply = (settings.opt_out_reply if intent == "stop" else settings.opt_in_reply).strip()
        if reply:
            _confirm(message, reply, intent)
    return handled


def _confirm(message: Message, text: str, intent: str) -> Any:
    from conversations import services

    try:
        return services.send_reply(
            conversation=message.conversation,
            draft=services.Draft(kind="text", text=text, idempotency_key=f"consent:{message.pk}:{intent}"),
            by=None,
            automated=True,
            locked=True,
        )
    except services.MessageRejected as exc:
        # The confirmation must never break storing the customer's message (e.g. no active number).
        log.warning("consent_confirmation_rejected", conversation=message.conversation_id, error=str(exc))
        return None


def send_notice(contact: Contact) -> dict[str, str] | None:
    """Why the composer cannot send (everything, for a blocked contact) or what it cannot send
    (marketing templates, after an opt-out), shown before the agent types; None when nothing applies."""
    if contact.blocked:
        return {
            "code": "contact_blocked",
            "message": "This contact is blocked. Unblock them in the contact panel to write to them.",
        }
    if contact.marketing_consent == Contact.MarketingConsent.OPTED_OUT:
        return {
            "code": "opted_out",
            "message": "This contact opted out of marketing messages: marketing templates will not be "
            "sent. Replies and utility templates still can be.",
        }
    return None
