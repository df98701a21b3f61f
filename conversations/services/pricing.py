"""What messages cost: the pricing a channel reports per message, and the owners' rate card."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

import phonenumbers
from django.db import transaction

from conversations.models import Message, MessageRate, RateCard
from core.errors import ServiceError
from crm.models import Contact

# Meta's pricing categories that a rate card prices (service messages are free since November 2024, and
# referral conversions are free: they are counted, never priced).
PRICED_CATEGORIES = (
    "marketing",
    "marketing_lite",
    "utility",
    "authentication",
    "authentication-international",
)
# Only these cost money: free_customer_service and free_entry_point messages are free whatever their
# category (a utility template inside the customer-service window, anything after an ad's entry point).
PAID_TYPE = "regular"
MAX_PRICE = Decimal("1000")


class RateCardError(ServiceError):
    pass


@dataclass(frozen=True)
class Pricing:
    """One status webhook's `pricing` object (Meta's per-message pricing)."""

    model: str
    category: str
    type: str
    billable: bool | None


def market_of(phone: str) -> str:
    """The market of a phone number: its country (ISO 3166 alpha-2), or "" when it has none."""
    if not phone:
        return ""
    try:
        parsed = phonenumbers.parse(phone if phone.startswith("+") else "+" + phone, None)
    except phonenumbers.NumberParseException:
        return ""
    region = phonenumbers.region_code_for_number(parsed)
    return region if region and region != "001" else ""


def record_message_pricing(*, message: Message, pricing: Pricing, recipient: str = "") -> bool:
    """Store what Meta says a message costs (each status repeats it; a later status may correct it).
    The market comes from the recipient's wa_id, else the contact's phone. The caller locks the row.
    Returns whether anything changed."""
    changed = merge_message_pricing(message=message, pricing=pricing, recipient=recipient)
    if changed:
        message.save(update_fields=changed)
    return bool(changed)


def merge_message_pricing(
    *, message: Message, pricing: Pricing, recipient: str = "", phone: str | None = None
) -> list[str]:
    """Set the pricing on `message` without saving it; returns the changed fields. `phone` is the
    contact's phone when the caller already has it (a bulk round), else it is read when needed."""
    changes = {
        "pricing_model": pricing.model[:20],
        "pricing_category": pricing.category[:40],
        "pricing_type": pricing.type[:40],
        "billable": pricing.billable,
    }
    changed = [name for name, value in changes.items() if getattr(message, name) != value]
    for name in changed:
        setattr(message, name, changes[name])
    if not message.pricing_market:
        if recipient:
            phone = recipient
        elif phone is None:
            phone = (
                Contact.objects.filter(conversations__id=message.conversation_id)
                .values_list("phone", flat=True)
                .first()
                or ""
            )
        market = market_of(phone)
        if market:
            message.pricing_market = market
            changed.append("pricing_market")
    return changed


def _clean_market(raw: str) -> str:
    market = raw.strip().upper()
    if market == MessageRate.DEFAULT_MARKET:
        return market
    if len(market) != 2 or not market.isalpha() or market not in phonenumbers.SUPPORTED_REGIONS:
        raise RateCardError("invalid_market", f"'{raw[:20]}' is not a country code (ISO 3166, e.g. DE).")
    return market


@transaction.atomic
def save_rate_card(*, currency: str, rates: dict[tuple[str, str], str | Decimal | None]) -> RateCard:
    """Replace the rate card: `rates` maps (market, category) to a price (empty or None: no price).
    Everything is checked before anything is written."""
    code = currency.strip().upper()
    if len(code) != 3 or not code.isalpha():
        raise RateCardError("invalid_currency", "The currency is a three-letter code (ISO 4217, e.g. EUR).")
    rows: dict[tuple[str, str], Decimal] = {}
    for (raw_market, category), raw_price in rates.items():
        if category not in PRICED_CATEGORIES:
            raise RateCardError("invalid_category", f"'{category[:40]}' is not a pricing category.")
        market = _clean_market(raw_market)
        if raw_price is None or str(raw_price).strip() == "":
            continue
        try:
            price = Decimal(str(raw_price).strip())
        except InvalidOperation:
            raise RateCardError(
                "invalid_price", f"The price for {market} {category} is not a number.", field="rates"
            ) from None
        if (
            not price.is_finite()
            or price < 0
            or price >= MAX_PRICE
            or price != price.quantize(Decimal("1e-6"))
        ):
            raise RateCardError(
                "invalid_price",
                f"The price for {market} {category} must be between 0 and {MAX_PRICE}, with at most six "
                "decimals.",
                field="rates",
            )
        rows[(market, category)] = price
    card = RateCard.objects.select_for_update().first() or RateCard()
    card.currency = code
    card.save()
    MessageRate.objects.all().delete()
    MessageRate.objects.bulk_create(
        [MessageRate(market=m, category=c, price=p) for (m, c), p in sorted(rows.items())]
    )
    return card
