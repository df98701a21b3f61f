"""Gauges computed when /metrics is scraped: backlogs people alert on, never labelled by tenant.

- `wacrm_webhook_events_pending` and `wacrm_webhook_events_oldest_pending_age_seconds`: stored webhook
  events not processed yet (one statement on the public table's partial index of pending events).
- `wacrm_queue_messages{queue}` and `wacrm_queue_oldest_message_age_seconds{queue}`: Dramatiq's queues
  (a few Redis commands per queue; the delay queues count as `<queue>.DQ`, with no age).
- `wacrm_conversations_open` and `wacrm_channels_needing_reauth`: summed over every tenant. Counting
  them per schema on each scrape would cost a statement per tenant, so each tenant's counts are kept in
  Redis and a scrape recounts at most TENANTS_PER_SCRAPE tenants (one statement, the next ones in
  turn): with T tenants a count is at most T / TENANTS_PER_SCRAPE scrapes old, and /metrics stays fast
  however many tenants there are. Maintaining them in every write path instead would put a counter in
  each service that opens, resolves or deletes a conversation or changes a number's status, and one
  missed path would drift the gauge forever; a recount corrects itself.

A source that fails (Redis or PostgreSQL down) leaves its gauges out of that scrape, logged, and the
rest is still exported: /metrics must answer when things are broken, that is when it is read.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import dramatiq
import structlog
from django.db.models import Count, Min
from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

log = structlog.get_logger("metrics")

TENANTS_PER_SCRAPE = 100
COUNTS_KEY = "wacrm:metrics:tenant-counts"  # hash: "<schema>:open" / "<schema>:reauth" -> count
CURSOR_KEY = "wacrm:metrics:tenant-cursor"  # where the next scrape's recount starts


class ScrapeTimeCollector(Collector):
    def collect(self) -> Iterator[GaugeMetricFamily]:
        for source in (_webhook_backlog, _queues, _tenant_totals):
            try:
                yield from list(source())
            except Exception as exc:  # a broken source must not break /metrics
                log.warning("metrics_source_failed", source=source.__name__, error=repr(exc))


COLLECTOR = ScrapeTimeCollector()


def _webhook_backlog() -> Iterator[GaugeMetricFamily]:
    from tenants.db import connection
    from tenants.models import WebhookEvent

    connection.set_schema_to_public()
    row = WebhookEvent.objects.filter(status=WebhookEvent.Status.PENDING).aggregate(
        count=Count("id"), oldest=Min("received_at")
    )
    yield GaugeMetricFamily(
        "wacrm_webhook_events_pending", "Stored webhook events not processed yet", value=row["count"]
    )
    age = (timezone.now() - row["oldest"]).total_seconds() if row["oldest"] else 0.0
    yield GaugeMetricFamily(
        "wacrm_webhook_events_oldest_pending_age_seconds",
        "Age of the oldest stored webhook event not processed yet (0 when none waits)",
        value=max(age, 0.0),
    )


def _queues() -> Iterator[GaugeMetricFamily]:
    from dramatiq.brokers.redis import RedisBroker
    from dramatiq.brokers.stub import StubBroker

    from tenants.jobs import broker

    sizes = GaugeMetricFamily("wacrm_queue_messages", "Messages waiting in a job queue", labels=["queue"])
    ages = GaugeMetricFamily(
        "wacrm_queue_oldest_message_age_seconds",
        "Age of the oldest message waiting in a job queue (0 when it is empty)",
        labels=["queue"],
    )
    now_ms = time.time() * 1000
    names = sorted(broker.get_declared_queues() | broker.get_declared_delay_queues())
    for name in names:
        oldest: bytes | str | None = None
        if isinstance(broker, RedisBroker):
            key = f"{broker.namespace}:{name}"
            client = broker.client
            size = int(client.llen(key))
            # Enqueued with RPUSH and taken from the head: the first id is the oldest message.
            head = client.lindex(key, 0) if size and not name.endswith(".DQ") else None
            oldest = client.hget(f"{key}.msgs", head) if head else None  # type: ignore[assignment]
        elif isinstance(broker, StubBroker):
            waiting = list(broker.queues[name].queue)
            size = len(waiting)
            oldest = waiting[0] if waiting and not name.endswith(".DQ") else None
        else:
            continue
        sizes.add_metric([name], size)
        age = 0.0
        if oldest:
            data = oldest.encode() if isinstance(oldest, str) else oldest
            age = max(now_ms - dramatiq.Message.decode(data).message_timestamp, 0.0) / 1000
        ages.add_metric([name], age)
    yield sizes
    yield ages


def _tenant_totals() -> Iterator[GaugeMetricFamily]:
    from django_tenants.utils import get_public_schema_name

    from conversations.models import Channel, Conversation
    from core.redis_client import redis_client
    from tenants.db import connection
    from tenants.models import Tenant

    connection.set_schema_to_public()
    schemas = list(
        Tenant.objects.exclude(schema_name=get_public_schema_name())
        .order_by("pk")
        .values_list("schema_name", flat=True)
    )
    if schemas:
        # A tenant whose schema is gone (dropped after its deletion's grace period) or not made yet
        # must not fail the statement for all the others.
        with connection.cursor() as cursor:
            cursor.execute("SELECT nspname FROM pg_namespace WHERE nspname = ANY(%s)", [schemas])
            existing = {row[0] for row in cursor.fetchall()}
        schemas = [schema for schema in schemas if schema in existing]
    client = redis_client()
    if schemas:
        start = int(client.get(CURSOR_KEY) or 0) % len(schemas)
        chosen = (schemas[start:] + schemas[:start])[:TENANTS_PER_SCRAPE]
        conversations = connection.ops.quote_name(Conversation._meta.db_table)
        channels = connection.ops.quote_name(Channel._meta.db_table)
        parts = []
        for schema in chosen:
            quoted = connection.ops.quote_name(schema)
            parts.append(
                f"SELECT %s, (SELECT count(*) FROM {quoted}.{conversations} WHERE status = %s), "
                f"(SELECT count(*) FROM {quoted}.{channels} WHERE status = %s)"
            )
        params: list[str] = []
        for schema in chosen:
            params += [schema, Conversation.Status.OPEN, Channel.Status.NEEDS_REAUTH]
        with connection.cursor() as cursor:
            cursor.execute(" UNION ALL ".join(parts), params)
            rows = cursor.fetchall()
        pipe = client.pipeline()
        for schema, open_count, reauth_count in rows:
            pipe.hset(COUNTS_KEY, mapping={f"{schema}:open": open_count, f"{schema}:reauth": reauth_count})
        pipe.set(CURSOR_KEY, (start + len(chosen)) % len(schemas))
        pipe.execute()
    raw: dict[bytes, bytes] = client.hgetall(COUNTS_KEY)  # type: ignore[assignment]
    counts = {key.decode(): int(value) for key, value in raw.items()}
    known = set(schemas)
    gone = [key for key in counts if key.rsplit(":", 1)[0] not in known]
    if gone:  # tenants deleted since they were counted
        client.hdel(COUNTS_KEY, *gone)
    totals = {"open": 0, "reauth": 0}
    for key, value in counts.items():
        schema, kind = key.rsplit(":", 1)
        if schema in known and kind in totals:
            totals[kind] += value
    yield GaugeMetricFamily(
        "wacrm_conversations_open", "Open conversations over all tenants", value=totals["open"]
    )
    yield GaugeMetricFamily(
        "wacrm_channels_needing_reauth",
        "WhatsApp numbers over all tenants that need re-authorisation (a new token) before they can send",
        value=totals["reauth"],
    )
