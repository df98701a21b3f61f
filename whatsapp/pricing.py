"""A status webhook's `pricing` object (per-message pricing, since July 2025):

    "pricing": {"billable": true, "pricing_model": "PMP", "category": "utility", "type": "regular"}

category: marketing, marketing_lite, utility, authentication, authentication-international, service,
referral_conversion; type: regular (charged), free_customer_service, free_entry_point. Read from the
status's stored raw item, so a status kept before its message was known (PendingStatus) keeps it too."""

from __future__ import annotations

from typing import Any

from conversations.services.pricing import Pricing


def _word(value: Any, limit: int) -> str:
    return value.strip().lower()[:limit] if isinstance(value, str) else ""


def pricing_of(raw: Any) -> Pricing | None:
    """The pricing of one status item, or None when it has none (failed statuses, old payloads)."""
    pricing = raw.get("pricing") if isinstance(raw, dict) else None
    if not isinstance(pricing, dict):
        return None
    category = _word(pricing.get("category"), 40)
    if not category:
        return None
    billable = pricing.get("billable")
    return Pricing(
        model=(pricing.get("pricing_model") or "").strip().upper()[:20]
        if isinstance(pricing.get("pricing_model"), str)
        else "",
        category=category,
        type=_word(pricing.get("type"), 40),
        billable=billable if isinstance(billable, bool) else None,
    )


def recipient_of(raw: Any) -> str:
    """The status's recipient wa_id (digits), for the market; "" for a BSUID-only recipient."""
    value = raw.get("recipient_id") if isinstance(raw, dict) else None
    return value if isinstance(value, str) and value.isdigit() and len(value) <= 19 else ""


def apply_pricing(*, message: Any, raw: Any) -> bool:
    """Store the pricing a status item carries on its (locked, outbound) message."""
    from conversations.models import Message
    from conversations.services.pricing import record_message_pricing

    pricing = pricing_of(raw)
    if pricing is None or message.direction != Message.Direction.OUTBOUND:
        return False
    return record_message_pricing(message=message, pricing=pricing, recipient=recipient_of(raw))
