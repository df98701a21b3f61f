"""What each message costs: Meta's per-message `pricing` in status webhooks is stored on the message
(also when the status arrives before the message is known), priced by the owners' rate card per market,
and shown to owners only, per period and per conversation."""

from __future__ import annotations

import copy
import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from django.test import TestCase
from django.utils import timezone
from django_tenants.utils import schema_context

from conftest import login, make_agent
from conversations.costs import cost_report
from conversations.models import Conversation, Message, MessageRate, RateCard
from conversations.services import send_text_message
from conversations.services.pricing import RateCardError, market_of, save_rate_card
from crm.models import Contact
from whatsapp.models import PendingStatus
from whatsapp.pricing import pricing_of
from whatsapp.testing import CUSTOMER, deliver, fixture, run_jobs

STATUS = fixture("status_sent")
OUT = STATUS["entry"][0]["changes"][0]["value"]["statuses"][0]["id"]


def status_body(
    *,
    wamid: str = OUT,
    status: str = "sent",
    recipient: str = CUSTOMER,
    pricing: dict[str, Any] | None = None,
    timestamp: int | None = None,
) -> dict[str, Any]:
    """Meta's status webhook (the documented fixture) with this status and pricing."""
    body = copy.deepcopy(STATUS)
    item = body["entry"][0]["changes"][0]["value"]["statuses"][0]
    item.update({"id": wamid, "status": status, "recipient_id": recipient})
    if timestamp:
        item["timestamp"] = str(timestamp)
    if pricing is None:
        item.pop("pricing", None)
    else:
        item["pricing"] = pricing
    return body


UTILITY = {"billable": True, "pricing_model": "PMP", "category": "utility", "type": "regular"}
FREE_SERVICE = {
    "billable": False,
    "pricing_model": "PMP",
    "category": "service",
    "type": "free_customer_service",
}


def outbound(conversation: Conversation, **fields: Any) -> Message:
    defaults = {
        "direction": "out",
        "text": "hello",
        "status": "sent",
        "wamid": OUT,
        "timestamp": timezone.now(),
    }
    return Message.objects.create(conversation=conversation, **{**defaults, **fields})


# -- storing what Meta reports --------------------------------------------------------------------------


def test_the_documented_status_payload_stores_model_category_type_billable_and_market(
    public_client: Any, conversation_a: Conversation, tenant_a: Any
) -> None:
    with schema_context(tenant_a.schema_name):
        outbound(conversation_a)
    deliver(public_client, status_body(status="delivered", pricing=UTILITY))
    with schema_context(tenant_a.schema_name):
        message = Message.objects.get(wamid=OUT)
        assert (message.pricing_model, message.pricing_category, message.pricing_type, message.billable) == (
            "PMP",
            "utility",
            "regular",
            True,
        )
        assert message.pricing_market == "US"  # +1 650: the recipient's country
        assert message.status == "delivered"


def test_a_status_before_its_message_keeps_its_pricing_until_the_message_appears(
    public_client: Any, conversation_a: Conversation, tenant_a: Any
) -> None:
    from whatsapp.delivery import record_message_sent

    deliver(public_client, status_body(status="delivered", recipient="4915112345678", pricing=UTILITY))
    with schema_context(tenant_a.schema_name):
        assert PendingStatus.objects.get().payload["pricing"]["category"] == "utility"
        message = outbound(conversation_a, status="queued", wamid=None)
        record_message_sent(message_id=message.pk, wamid=OUT)
        message.refresh_from_db()
        assert message.status == "delivered"
        assert (message.pricing_category, message.pricing_type, message.billable) == (
            "utility",
            "regular",
            True,
        )
        assert message.pricing_market == "DE"
        assert PendingStatus.objects.count() == 0


def test_later_statuses_correct_the_pricing_and_a_failed_one_without_pricing_keeps_it(
    public_client: Any, conversation_a: Conversation, tenant_a: Any
) -> None:
    with schema_context(tenant_a.schema_name):
        outbound(conversation_a)
    deliver(public_client, status_body(status="sent", pricing=UTILITY))
    deliver(
        public_client, status_body(status="delivered", pricing={**UTILITY, "type": "free_customer_service"})
    )
    deliver(public_client, status_body(status="read", pricing=None))
    with schema_context(tenant_a.schema_name):
        message = Message.objects.get(wamid=OUT)
        assert (message.pricing_category, message.pricing_type, message.status) == (
            "utility",
            "free_customer_service",
            "read",
        )


@pytest.mark.parametrize(
    "pricing",
    [
        {"category": ["marketing"], "type": {"x": 1}, "billable": "yes", "pricing_model": 7},
        {"category": "m" * 5000, "type": "t" * 5000, "billable": True, "pricing_model": "P" * 500},
        "not an object",
        {"category": "marketing\x00", "type": None},
    ],
)
def test_hostile_pricing_values_are_read_defensively_never_a_failed_event(
    public_client: Any, conversation_a: Conversation, tenant_a: Any, pricing: Any
) -> None:
    with schema_context(tenant_a.schema_name):
        outbound(conversation_a)
    deliver(public_client, status_body(status="delivered", pricing=pricing))
    with schema_context(tenant_a.schema_name):
        message = Message.objects.get(wamid=OUT)
        assert message.status == "delivered"
        assert len(message.pricing_category) <= 40 and len(message.pricing_type) <= 40
        assert "\x00" not in message.pricing_category
        assert message.billable in (True, None)


def test_pricing_of_reads_meta_shapes() -> None:
    assert pricing_of({"pricing": UTILITY}).category == "utility"  # type: ignore[union-attr]
    assert pricing_of({"pricing": {"billable": True}}) is None
    assert pricing_of({}) is None
    free = pricing_of({"pricing": {**FREE_SERVICE, "category": "SERVICE"}})
    assert free is not None and (free.category, free.type, free.billable) == (
        "service",
        "free_customer_service",
        False,
    )


def test_markets_come_from_the_phone_number() -> None:
    assert market_of("+4915112345678") == "DE"
    assert market_of("919876543210") == "IN"
    assert market_of("") == ""
    assert market_of("+999") == ""


def test_the_sandbox_prices_a_free_form_reply_as_free_customer_service(
    conversation_a: Conversation, tenant_a: Any, sandbox: Any, public_client: Any
) -> None:
    with schema_context(tenant_a.schema_name), TestCase.captureOnCommitCallbacks(execute=True):
        message = send_text_message(conversation=conversation_a, text="Hi")
    with schema_context(tenant_a.schema_name):
        run_jobs()
    for body in sandbox.wait_for_outbox(3):
        deliver(public_client, body)
    with schema_context(tenant_a.schema_name):
        message.refresh_from_db()
        assert (message.status, message.pricing_category, message.pricing_type, message.billable) == (
            "read",
            "service",
            "free_customer_service",
            False,
        )


# -- the rate card and the costs ---------------------------------------------------------------------------


def _priced(
    conversation: Conversation, n: int, *, market: str, category: str, kind: str, billable: bool
) -> None:
    for _ in range(n):
        Message.objects.create(
            conversation=conversation,
            direction="out",
            text="x",
            status="delivered",
            timestamp=timezone.now(),
            pricing_model="PMP",
            pricing_category=category,
            pricing_type=kind,
            billable=billable,
            pricing_market=market,
        )


def test_only_billable_regular_messages_cost_money_priced_by_market_with_a_default(
    conversation_a: Conversation, tenant_a: Any
) -> None:
    with schema_context(tenant_a.schema_name):
        save_rate_card(
            currency="eur",
            rates={
                ("*", "marketing"): "0.05",
                ("*", "utility"): "0.01",
                ("de", "marketing"): "0.1365",
            },
        )
        _priced(conversation_a, 3, market="DE", category="marketing", kind="regular", billable=True)
        _priced(conversation_a, 2, market="US", category="marketing", kind="regular", billable=True)
        _priced(
            conversation_a, 4, market="US", category="utility", kind="free_customer_service", billable=False
        )
        _priced(conversation_a, 1, market="US", category="marketing", kind="free_entry_point", billable=False)
        _priced(conversation_a, 2, market="US", category="authentication", kind="regular", billable=True)
        report = cost_report()
        assert report.currency == "EUR"
        assert (report.messages, report.paid, report.free, report.unpriced) == (12, 7, 5, 2)
        # 3 x 0.1365 (DE's own price) + 2 x 0.05 (the default price for US)
        assert report.total == Decimal("0.5095")
        rows = {(r.market, r.category): (r.paid, r.price) for r in report.by_market}
        assert rows[("DE", "marketing")] == (3, Decimal("0.1365"))
        assert rows[("US", "marketing")] == (2, Decimal("0.05"))
        assert rows[("US", "authentication")] == (2, None)
        kinds = {(r.category, r.type): (r.messages, r.billable) for r in report.by_category}
        assert kinds[("utility", "free_customer_service")] == (4, 0)
        assert kinds[("marketing", "regular")] == (5, 5)


def test_a_bad_rate_card_is_refused_with_a_stable_code_and_nothing_is_stored(tenant_a: Any) -> None:
    with schema_context(tenant_a.schema_name):
        save_rate_card(currency="USD", rates={("*", "marketing"): "0.02"})
        for currency, rates, code in [
            ("US", {}, "invalid_currency"),
            ("USD", {("XX", "marketing"): "1"}, "invalid_market"),
            ("USD", {("DE", "marketing"): "abc"}, "invalid_price"),
            ("USD", {("DE", "marketing"): "-1"}, "invalid_price"),
            ("USD", {("DE", "marketing"): "NaN"}, "invalid_price"),
            ("USD", {("DE", "marketing"): "0.0000001"}, "invalid_price"),
            ("USD", {("DE", "free_lunch"): "1"}, "invalid_category"),
        ]:
            with pytest.raises(RateCardError) as raised:
                save_rate_card(currency=currency, rates=rates)
            assert raised.value.code == code
        assert [(r.market, r.category, r.price) for r in MessageRate.objects.all()] == [
            ("*", "marketing", Decimal("0.02"))
        ]


# -- pages: owners only ---------------------------------------------------------------------------------


def test_an_owner_sets_the_rate_card_in_settings(client_a: Any, tenant_a: Any, owner_a: Any) -> None:
    login(client_a, tenant_a, owner_a)
    page = client_a.get("/settings/billing/")
    assert page.status_code == 200
    response = client_a.post(
        "/settings/billing/",
        {
            "currency": "EUR",
            "rows": "1",
            "price-0-marketing": "0.06",
            "market-1": "de",
            "price-1-marketing": "0.1365",
            "price-1-utility": "0.0456",
        },
    )
    assert response.status_code == 302
    with schema_context(tenant_a.schema_name):
        assert RateCard.objects.get().currency == "EUR"
        assert {(r.market, r.category): r.price for r in MessageRate.objects.all()} == {
            ("*", "marketing"): Decimal("0.06"),
            ("DE", "marketing"): Decimal("0.1365"),
            ("DE", "utility"): Decimal("0.0456"),
        }
    page = client_a.get("/settings/billing/?saved=1")
    assert b"The rate card was saved." in page.content
    assert b'value="DE"' in page.content


def test_a_bad_rate_card_form_is_a_400_with_the_reason_escaped_and_nothing_stored(
    client_a: Any, tenant_a: Any, owner_a: Any
) -> None:
    login(client_a, tenant_a, owner_a)
    response = client_a.post(
        "/settings/billing/",
        {"currency": "EUR", "rows": "1", "market-1": "<b>", "price-1-marketing": "1"},
    )
    assert response.status_code == 400
    assert b"&lt;b&gt;" in response.content and b"<b>" not in response.content
    with schema_context(tenant_a.schema_name):
        assert not MessageRate.objects.exists() and not RateCard.objects.exists()
    response = client_a.post(
        "/settings/billing/", {"currency": "EUR", "rows": "x", "price-0-marketing": "1e9"}
    )
    assert response.status_code == 400


@pytest.mark.parametrize("role", ["admin", "supervisor", "agent"])
def test_only_owners_see_costs_and_the_rate_card(client_a: Any, tenant_a: Any, role: str) -> None:
    with schema_context(tenant_a.schema_name):
        contact = Contact.objects.create(phone="+4915112345678")
        conversation = Conversation.objects.create(contact=contact)
    login(client_a, tenant_a, make_agent(tenant_a, email=f"{role}@alpha.test", role=role).user)
    for url in ("/settings/billing/", "/reports/costs/", f"/reports/costs/c/{conversation.pk}/"):
        assert client_a.get(url).status_code == 403
    assert client_a.post("/settings/billing/", {"currency": "EUR"}).status_code == 403
    with schema_context(tenant_a.schema_name):
        assert not RateCard.objects.exists()


def test_the_cost_report_per_period_and_per_conversation(
    client_a: Any, tenant_a: Any, owner_a: Any, conversation_a: Conversation
) -> None:
    with schema_context(tenant_a.schema_name):
        save_rate_card(currency="USD", rates={("*", "marketing"): "0.025"})
        _priced(conversation_a, 4, market="US", category="marketing", kind="regular", billable=True)
        other = Conversation.objects.create(
            contact=Contact.objects.create(name="<script>x</script>", phone="+4930123456")
        )
        _priced(other, 2, market="DE", category="marketing", kind="regular", billable=True)
        old = Message.objects.filter(conversation=other).first()
        assert old is not None
        Message.objects.filter(pk=old.pk).update(timestamp=timezone.now() - dt.timedelta(days=400))
    login(client_a, tenant_a, owner_a)
    page = client_a.get("/reports/costs/")
    assert page.status_code == 200
    assert page.context["report"].paid == 5  # the message of 400 days ago is outside the period
    assert page.context["report"].total == Decimal("0.125")
    one = client_a.get(f"/reports/costs/c/{conversation_a.pk}/")
    assert one.status_code == 200
    assert (one.context["report"].paid, one.context["report"].total) == (4, Decimal("0.1"))
    hostile = client_a.get(f"/reports/costs/c/{other.pk}/")
    assert (
        b"&lt;script&gt;x&lt;/script&gt;" in hostile.content and b"<script>x</script>" not in hostile.content
    )
    assert client_a.get("/reports/costs/c/999999/").status_code == 404
    assert client_a.get("/reports/costs/?start=junk&end=2020-13-45").status_code == 200


def test_another_tenants_conversation_costs_are_a_404(
    client_b: Any, tenant_b: Any, owner_b: Any, conversation_a: Conversation
) -> None:
    login(client_b, tenant_b, owner_b)
    assert client_b.get(f"/reports/costs/c/{conversation_a.pk}/").status_code == 404


def test_the_api_exposes_pricing_read_only(tenant_a: Any, conversation_a: Conversation) -> None:
    from conversations.api import MessageSerializer

    with schema_context(tenant_a.schema_name):
        message = outbound(
            conversation_a, pricing_category="marketing", pricing_type="regular", billable=True
        )
        data = MessageSerializer(message).data
        assert (data["pricing_category"], data["pricing_type"], data["billable"], data["origin"]) == (
            "marketing",
            "regular",
            True,
            "",
        )
        fields = MessageSerializer().fields
        assert all(
            fields[name].read_only for name in ("pricing_category", "pricing_type", "billable", "origin")
        )


def test_the_contact_panel_links_owners_only_to_the_conversations_costs(
    client_a: Any, tenant_a: Any, owner_a: Any, conversation_a: Conversation
) -> None:
    link = f"/reports/costs/c/{conversation_a.pk}/".encode()
    panel = login(client_a, tenant_a, owner_a).get(f"/inbox/c/{conversation_a.pk}/contact/")
    assert panel.status_code == 200 and link in panel.content
    admin = make_agent(tenant_a, email="admin@alpha.test", role="admin").user
    panel = login(client_a, tenant_a, admin).get(f"/inbox/c/{conversation_a.pk}/contact/")
    assert panel.status_code == 200 and link not in panel.content


def test_the_sandbox_prices_a_template_by_its_category(channel_a: Any, sandbox: Any) -> None:
    from whatsapp.testing import PNID_A, WABA_A

    sandbox.set_templates(WABA_A, [{"name": "promo", "language": "en", "category": "MARKETING"}])
    priced = sandbox._pricing(PNID_A, {"type": "template", "template": {"name": "promo"}})
    assert priced == {"billable": True, "pricing_model": "PMP", "category": "marketing", "type": "regular"}
    assert sandbox._pricing(PNID_A, {"type": "text"})["type"] == "free_customer_service"


def test_the_reports_page_shows_messages_by_pricing_category_to_supervisors_without_costs(
    client_a: Any, tenant_a: Any, conversation_a: Conversation
) -> None:
    with schema_context(tenant_a.schema_name):
        _priced(conversation_a, 3, market="US", category="marketing", kind="regular", billable=True)
        _priced(
            conversation_a, 2, market="US", category="service", kind="free_customer_service", billable=False
        )
    supervisor = make_agent(tenant_a, email="sup@alpha.test", role="supervisor").user
    page = login(client_a, tenant_a, supervisor).get("/reports/")
    assert page.status_code == 200
    rows = {(r.category, r.type): r.messages for r in page.context["pricing"].by_category}
    assert rows == {("marketing", "regular"): 3, ("service", "free_customer_service"): 2}
    assert b"/reports/costs/" not in page.content  # the money is the owners'
