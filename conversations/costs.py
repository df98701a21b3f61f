"""Reads for what messages cost: the rate card, and per-period and per-conversation cost reports.

Costs are estimates: Meta reports each message's pricing (category, type, billable) in its status
webhooks; the owners' rate card says what one billable message of a category costs in a market. Only
billable messages of type "regular" cost money; free_customer_service and free_entry_point are free.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal

from django.db.models import Count, Q

from conversations.models import Message, MessageRate, RateCard
from conversations.services.pricing import PAID_TYPE, PRICED_CATEGORIES

DEFAULT_CURRENCY = "USD"


@dataclass(frozen=True)
class Rates:
    currency: str
    prices: dict[tuple[str, str], Decimal]

    @property
    def markets(self) -> list[str]:
        """The markets with prices, the default one first."""
        found = {market for market, _ in self.prices}
        others = sorted(found - {MessageRate.DEFAULT_MARKET})
        return [MessageRate.DEFAULT_MARKET, *others]

    def price(self, market: str, category: str) -> Decimal | None:
        found = self.prices.get((market, category))
        if found is None:
            found = self.prices.get((MessageRate.DEFAULT_MARKET, category))
        return found


def rate_card() -> Rates:
    card = RateCard.objects.first()
    return Rates(
        currency=card.currency if card else DEFAULT_CURRENCY,
        prices={(r.market, r.category): r.price for r in MessageRate.objects.all()},
    )


@dataclass
class CategoryRow:
    category: str
    type: str
    messages: int = 0
    billable: int = 0


@dataclass
class MarketRow:
    market: str
    category: str
    paid: int = 0
    price: Decimal | None = None

    @property
    def cost(self) -> Decimal | None:
        return None if self.price is None else self.price * self.paid


@dataclass
class CostReport:
    currency: str
    by_category: list[CategoryRow] = field(default_factory=list)
    by_market: list[MarketRow] = field(default_factory=list)
    messages: int = 0  # with pricing information
    paid: int = 0  # billable and "regular"
    free: int = 0
    unpriced: int = 0  # paid, but the rate card has no price for their market and category
    total: Decimal = Decimal("0")


def cost_report(
    *,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    conversation_id: int | None = None,
) -> CostReport:
    """Messages with pricing in [since, until) (or of one conversation), grouped in the database by
    market, category, type and billable (a few dozen rows whatever the volume), then priced."""
    messages = Message.objects.filter(direction=Message.Direction.OUTBOUND).exclude(pricing_category="")
    if since is not None:
        messages = messages.filter(timestamp__gte=since)
    if until is not None:
        messages = messages.filter(timestamp__lt=until)
    if conversation_id is not None:
        messages = messages.filter(conversation_id=conversation_id)
    rows = (
        messages.values("pricing_market", "pricing_category", "pricing_type")
        .annotate(n=Count("pk"), billed=Count("pk", filter=Q(billable=True)))
        .order_by()
    )
    rates = rate_card()
    report = CostReport(currency=rates.currency)
    categories: dict[tuple[str, str], CategoryRow] = {}
    markets: dict[tuple[str, str], MarketRow] = {}
    for row in rows:
        category, kind, market = row["pricing_category"], row["pricing_type"], row["pricing_market"]
        line = categories.setdefault((category, kind), CategoryRow(category, kind))
        line.messages += row["n"]
        line.billable += row["billed"]
        report.messages += row["n"]
        paid = row["billed"] if kind == PAID_TYPE else 0
        report.paid += paid
        report.free += row["n"] - paid
        if paid:
            key = (market or MessageRate.DEFAULT_MARKET, category)
            market_row = markets.setdefault(key, MarketRow(*key, price=rates.price(*key)))
            market_row.paid += paid
    for market_row in markets.values():
        if market_row.cost is None:
            report.unpriced += market_row.paid
        else:
            report.total += market_row.cost
    report.by_category = sorted(categories.values(), key=lambda r: (r.category, r.type))
    report.by_market = sorted(markets.values(), key=lambda r: (r.market, r.category))
    return report


__all__ = ["PRICED_CATEGORIES", "CostReport", "Rates", "cost_report", "rate_card"]
