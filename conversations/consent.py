"""Opt-out and opt-in keywords: a customer who writes STOP (or the tenant's word for it) is opted out of
marketing and told so; START opts them back in.

The words and their matching live here; conversations.services.automation applies them to each inbound
round (called by conversations.services.store_inbound_messages), with the tenant's words
read once per batch (conversations.bot.load_settings is cached per batch), so a round without a keyword
costs no statement at all and one with a keyword costs one UPDATE plus the confirmation's reply.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from typing import TYPE_CHECKING

from crm.models import Contact

if TYPE_CHECKING:
    from conversations.models import BotSettings

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
