"""What messages cost, for owners: Settings → Message costs (/settings/billing/: the rate card, price per
pricing category per market in one currency) and the cost report (/reports/costs/: a period's messages
by pricing category and type, billable counts and estimated cost by market; /reports/costs/c/<pk>/: one
conversation's). Owners only: it is the workspace's spending; everyone else gets the 403 page."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods

from conversations import costs, selectors
from conversations.models import MessageRate
from conversations.services.pricing import PRICED_CATEGORIES, RateCardError, save_rate_card
from crm.views import member_required

MAX_MARKETS = 250  # every country has a calling code: more rows than that is not a rate card
CATEGORY_LABELS = {
    "marketing": "Marketing",
    "marketing_lite": "Marketing (lite)",
    "utility": "Utility",
    "authentication": "Authentication",
    "authentication-international": "Authentication (international)",
    "service": "Service",
    "referral_conversion": "Referral conversion",
}


def _rows(card: costs.Rates) -> list[dict[str, Any]]:
    return [
        {
            "market": market,
            "prices": [(category, card.prices.get((market, category), "")) for category in PRICED_CATEGORIES],
        }
        for market in card.markets
    ]


def _posted_rows(request: HttpRequest) -> tuple[list[dict[str, Any]], dict[tuple[str, str], str]]:
    rows: list[dict[str, Any]] = []
    rates: dict[tuple[str, str], str] = {}
    count = min(
        int(request.POST.get("rows", "0") or 0) if request.POST.get("rows", "").isdigit() else 0, MAX_MARKETS
    )
    for index in range(count + 1):
        market = (
            MessageRate.DEFAULT_MARKET if index == 0 else request.POST.get(f"market-{index}", "").strip()[:10]
        )
        prices = [(c, request.POST.get(f"price-{index}-{c}", "").strip()[:30]) for c in PRICED_CATEGORIES]
        if not market and not any(price for _, price in prices):
            continue
        rows.append({"market": market, "prices": prices})
        for category, price in prices:
            if price:
                rates[(market or "?", category)] = price
    return rows, rates


@require_http_methods(["GET", "POST"])
@member_required("owner")
def billing_settings(request: HttpRequest) -> HttpResponseBase:
    card = costs.rate_card()
    error = ""
    status = 200
    rows = _rows(card)
    currency = card.currency
    if request.method == "POST":
        rows, rates = _posted_rows(request)
        currency = request.POST.get("currency", "")[:10]
        try:
            save_rate_card(currency=currency, rates=dict(rates))
        except RateCardError as exc:
            error, status = exc.message, 400
        else:
            return redirect(reverse("inbox:settings-billing") + "?saved=1")
    context = {
        "nav": "settings",
        "currency": currency,
        "rows": rows,
        "next_row": len(rows),
        "categories": [(c, CATEGORY_LABELS.get(c, c)) for c in PRICED_CATEGORIES],
        "error": error,
        "saved": request.GET.get("saved") == "1" and not error,
        "default_market": MessageRate.DEFAULT_MARKET,
    }
    return render(request, "reports/billing_settings.html", context, status=status)


def _date(raw: str | None, default: dt.date) -> dt.date:
    try:
        return dt.date.fromisoformat(raw) if raw else default
    except ValueError:
        return default


def _labelled(report: costs.CostReport) -> dict[str, Any]:
    return {
        "report": report,
        "labels": CATEGORY_LABELS,
        "default_market": MessageRate.DEFAULT_MARKET,
    }


@require_GET
@member_required("owner")
def cost_report(request: HttpRequest) -> HttpResponse:
    tz = selectors.tenant_time_zone()
    today = dt.datetime.now(tz=tz).date()
    end = _date(request.GET.get("end"), today)
    start = _date(request.GET.get("start"), end.replace(day=1))
    if start > end:
        start, end = end, start
    start = max(start, end - dt.timedelta(days=366))
    report = costs.cost_report(
        since=dt.datetime.combine(start, dt.time.min, tzinfo=tz),
        until=dt.datetime.combine(end + dt.timedelta(days=1), dt.time.min, tzinfo=tz),
    )
    context = {"nav": "reports", "start": start, "end": end, "conversation": None, **_labelled(report)}
    return render(request, "reports/costs.html", context)


@require_GET
@member_required("owner")
def conversation_costs(request: HttpRequest, pk: int) -> HttpResponse:
    conversation = selectors.get_visible_conversation(selectors.viewer_for(request.user), pk)
    report = costs.cost_report(conversation_id=conversation.pk)
    context = {"nav": "reports", "conversation": conversation, **_labelled(report)}
    return render(request, "reports/costs.html", context)
