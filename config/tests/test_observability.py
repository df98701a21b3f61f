"""Metrics people alert on (issue 14 item 10): the scrape-time gauges and the WebSocket gauge, and the
shipped Prometheus rules and Grafana dashboard, whose every metric must exist in a running app's
/metrics (scraped here), with no tenant label anywhere."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from typing import Any

import dramatiq
import pytest
import yaml
from asgiref.sync import sync_to_async
from django.utils import timezone
from django_tenants.utils import schema_context
from prometheus_client.parser import text_string_to_metric_families

from config import scrape_metrics
from conversations.tests import test_consumers as socket_helpers
from conversations.tests.test_consumers import _agent, _connect, _cookie_for, _hello
from core.redis_client import redis_client

# The committed-rows fixture of the socket tests, shared.
committed = socket_helpers.committed

ROOT = Path(__file__).resolve().parents[2]
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboard.json"

# PromQL words that are not metric names.
KEYWORDS = {
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "and",
    "or",
    "unless",
    "offset",
    "inf",
    "nan",
}


@pytest.fixture(autouse=True)
def _fresh_counts() -> None:
    redis_client().delete(scrape_metrics.COUNTS_KEY, scrape_metrics.CURSOR_KEY)


def _exposition(client: Any) -> str:
    response = client.get("/metrics")
    assert response.status_code == 200
    return response.content.decode()


def _names(text: str) -> set[str]:
    """Every series name the exposition offers, including those of families with no sample yet."""
    names: set[str] = set()
    for family in text_string_to_metric_families(text):
        names.add(family.name)
        names.update(sample.name for sample in family.samples)
        if family.type == "counter":
            names.add(f"{family.name}_total")
        if family.type == "histogram":
            names.update(f"{family.name}_{suffix}" for suffix in ("bucket", "sum", "count"))
    return names


def _value(text: str, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    raise AssertionError(f"no sample {name} {labels}")


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads (a tokenizer, not a parser: no PromQL parser is
    packaged for Python here). Also checks that brackets balance."""
    stack: list[str] = []
    pairs = {")": "(", "]": "[", "}": "{"}
    for char in re.sub(r'"(?:\\.|[^"\\])*"', '""', expr):
        if char in "([{":
            stack.append(char)
        elif char in pairs:
            assert stack and stack.pop() == pairs[char], f"unbalanced {char!r} in {expr!r}"
    assert not stack, f"unclosed {stack} in {expr!r}"
    text = re.sub(r'"(?:\\.|[^"\\])*"', '""', expr)
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # ranges
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    tokens = re.findall(r"(?<![\w.:])([a-zA-Z_:][\w:]*)(?![\w:])(?!\s*\()", text)
    return {token for token in tokens if token.lower() not in KEYWORDS}


def _alert_rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(ALERTS.read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def _dashboard_exprs() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


def test_the_tokenizer_finds_metric_names_and_refuses_unbalanced_brackets():
    assert metric_names(
        'sum by (le) (rate(a_bucket{x="}"}[5m])) / clamp_min(sum(rate(b_total[5m])), 1e-9) > 0.5'
    ) == {"a_bucket", "b_total"}
    with pytest.raises(AssertionError):
        metric_names("sum(rate(a_total[5m])")


def test_the_alert_rules_parse_with_the_expected_groups_and_each_rule_is_complete():
    document = yaml.safe_load(ALERTS.read_text())

    assert [group["name"] for group in document["groups"]] == [
        "wacrm-webhook",
        "wacrm-queues",
        "wacrm-sending",
        "wacrm-channels",
    ]
    rules = _alert_rules()
    assert len({rule["alert"] for rule in rules}) == len(rules)
    for rule in rules:
        assert rule["expr"].strip() and rule["labels"]["severity"] in {"page", "warn"}
        assert rule["annotations"]["summary"]
    alerts = {rule["alert"] for rule in rules}
    assert {
        "WebhookRefusingEvents",
        "WebhookEventsWaiting",
        "JobQueueOld",
        "SendFailuresNeedAction",
        "ChannelNeedsReauthorisation",
    } <= alerts


def test_every_metric_the_rules_and_the_dashboard_read_is_on_a_running_apps_metrics(public_client):
    names = _names(_exposition(public_client))

    used = {name for rule in _alert_rules() for name in metric_names(rule["expr"])}
    used |= {name for expr in _dashboard_exprs() for name in metric_names(expr)}

    assert used  # the tokenizer found them
    assert sorted(used - names) == []
    assert all(name.startswith("wacrm_") for name in used)


def test_the_dashboard_loads_with_unique_panels_each_with_a_query():
    dashboard = json.loads(DASHBOARD.read_text())

    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids)) and dashboard["uid"]
    assert all(panel["targets"] and panel["title"] for panel in dashboard["panels"])


def test_no_metric_carries_a_tenant_label(public_client, tenant_a):
    text = _exposition(public_client)

    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            assert not {"tenant", "schema", "schema_name", "slug"} & set(sample.labels), sample


def test_the_backlogs_are_measured_at_scrape_time(public_client):
    from tenants.jobs import broker
    from tenants.models import WebhookEvent

    broker.flush_all()
    event = WebhookEvent.objects.create(body=b"{}", phone_number_ids=["1"])
    WebhookEvent.objects.filter(pk=event.pk).update(received_at=timezone.now() - dt.timedelta(minutes=5))
    WebhookEvent.objects.create(body=b"{}", phone_number_ids=["1"], status=WebhookEvent.Status.PROCESSED)
    broker.enqueue(dramatiq.Message(queue_name="default", actor_name="probe", args=(), kwargs={}, options={}))

    text = _exposition(public_client)

    pending = WebhookEvent.objects.filter(status=WebhookEvent.Status.PENDING).count()
    assert _value(text, "wacrm_webhook_events_pending") == pending >= 1
    assert _value(text, "wacrm_webhook_events_oldest_pending_age_seconds") >= 300
    queued = {name: len(queue.queue) for name, queue in broker.queues.items() if not name.endswith(".DQ")}
    busy = [name for name, size in queued.items() if size]
    assert busy
    for name in busy:
        assert _value(text, "wacrm_queue_messages", queue=name) == queued[name]
        assert _value(text, "wacrm_queue_oldest_message_age_seconds", queue=name) >= 0
    broker.flush_all()


def test_open_conversations_and_numbers_needing_reauthorisation_are_summed_over_tenants(
    public_client, tenant_a, tenant_b, monkeypatch
):
    from conversations.models import Channel, Conversation
    from crm.models import Contact

    def make(tenant: Any, phone: str, *, status: str, channel_status: str | None = None) -> None:
        with schema_context(tenant.schema_name):
            contact = Contact.objects.create(phone=phone)
            Conversation.objects.create(contact=contact, status=status)
            if channel_status:
                Channel.objects.create(phone_number_id=f"9{phone[-6:]}", waba_id="1", status=channel_status)

    def counts(tenant: Any) -> tuple[int, int]:
        with schema_context(tenant.schema_name):
            return (
                Conversation.objects.filter(status="open").count(),
                Channel.objects.filter(status="needs_reauth").count(),
            )

    make(tenant_a, "+15550100001", status="open", channel_status="needs_reauth")
    make(tenant_a, "+15550100002", status="resolved")
    make(tenant_b, "+15550100003", status="open", channel_status="active")
    (open_a, reauth_a), (open_b, reauth_b) = counts(tenant_a), counts(tenant_b)

    text = _exposition(public_client)

    assert _value(text, "wacrm_conversations_open") == open_a + open_b
    assert _value(text, "wacrm_channels_needing_reauth") == reauth_a + reauth_b >= 1


def test_a_scrape_recounts_a_bounded_number_of_tenants_in_turn(
    public_client, tenant_a, tenant_b, monkeypatch
):
    from conversations.models import Conversation
    from crm.models import Contact
    from tenants.models import Tenant

    monkeypatch.setattr(scrape_metrics, "TENANTS_PER_SCRAPE", 1)
    tenants = Tenant.objects.exclude(schema_name="public").count()
    totals = []
    for _ in range(tenants):
        totals.append(_value(_exposition(public_client), "wacrm_conversations_open"))
    with schema_context(tenant_b.schema_name):
        Conversation.objects.create(contact=Contact.objects.create(phone="+15550100009"), status="open")

    # Counted per tenant in turn: after one full round the new conversation shows.
    after = [_value(_exposition(public_client), "wacrm_conversations_open") for _ in range(tenants)]
    assert after[-1] == totals[-1] + 1
    assert len(redis_client().hgetall(scrape_metrics.COUNTS_KEY)) == 2 * tenants


def test_a_source_that_fails_leaves_the_rest_of_metrics_up(public_client, monkeypatch):
    def broken() -> Any:
        raise ConnectionError("redis is down")

    monkeypatch.setattr(scrape_metrics, "_tenant_totals", broken)
    text = _exposition(public_client)

    names = _names(text)
    assert "wacrm_conversations_open" not in names
    assert "wacrm_webhook_events_pending" in names and "wacrm_whatsapp_webhook_requests_total" in names


async def test_the_websocket_gauge_counts_open_sockets(committed):
    from prometheus_client import REGISTRY

    def sockets() -> float:
        return REGISTRY.get_sample_value("wacrm_websocket_connections") or 0.0

    user = await sync_to_async(_agent)(committed, "gauge.ann@alpha.test")
    cookie = await sync_to_async(_cookie_for)(user)
    before = sockets()

    refused, connected = await _connect(None)
    assert not connected
    await refused.disconnect()
    assert sockets() == before  # never accepted, never counted

    socket, connected = await _connect(cookie)
    assert connected
    await _hello(socket)
    assert sockets() == before + 1

    await socket.disconnect()
    assert sockets() == before


def test_a_tenant_whose_schema_is_gone_does_not_hide_the_others(public_client, tenant_a):
    from tenants.models import Tenant

    # A tenant row whose schema was dropped (bulk_create makes no schema).
    Tenant.objects.bulk_create([Tenant(schema_name="dropped_tenant", slug="dropped", name="Dropped")])

    text = _exposition(public_client)

    assert "wacrm_conversations_open" in _names(text)
    assert _value(text, "wacrm_conversations_open") >= 0
