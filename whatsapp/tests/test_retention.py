from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django.utils.module_loading import import_string
from django_tenants.utils import schema_context

from tenants.models import Tenant, WebhookEvent
from whatsapp.actors import cleanup_pending_statuses_for_tenant, cleanup_whatsapp_records
from whatsapp.models import PendingStatus
from whatsapp.retention import delete_processed_webhook_events, delete_stale_pending_statuses
from whatsapp.tests.conftest import run_jobs


def days_ago(days: float) -> dt.datetime:
    return timezone.now() - dt.timedelta(days=days)


def pending_status(schema: str, wamid: str, *, age_days: float) -> PendingStatus:
    with schema_context(schema):
        row = PendingStatus.objects.create(wamid=wamid, status="delivered", timestamp=days_ago(age_days))
        PendingStatus.objects.filter(pk=row.pk).update(created_at=days_ago(age_days))
        return row


def pending_wamids(schema: str) -> set[str]:
    with schema_context(schema):
        return set(PendingStatus.objects.values_list("wamid", flat=True))


def webhook_event(status: str, *, age_days: float, processed_days_ago: float | None = None) -> WebhookEvent:
    event = WebhookEvent.objects.create(body=b"{}", status=status)
    processed_at = days_ago(processed_days_ago) if processed_days_ago is not None else None
    WebhookEvent.objects.filter(pk=event.pk).update(received_at=days_ago(age_days), processed_at=processed_at)
    return event


def run_scheduled_cleanup() -> list[str]:
    """The scheduler enqueues the job; the worker runs it and the per-tenant jobs it fans out."""
    cleanup_whatsapp_records.send()
    return run_jobs()


def test_the_scheduler_runs_the_cleanup_every_hour():
    path, every = settings.PERIODIC_JOBS["whatsapp_cleanup"]
    assert import_string(path) is cleanup_whatsapp_records
    assert every == 3600


def test_the_scheduled_cleanup_drops_pending_statuses_older_than_seven_days_in_every_tenant(
    tenant_a, tenant_b
):
    for schema in ("alpha", "beta"):
        pending_status(schema, f"wamid.{schema}.old", age_days=7.5)
        pending_status(schema, f"wamid.{schema}.recent", age_days=6.5)

    ran = run_scheduled_cleanup()

    assert ran.count("cleanup_whatsapp_records") == 1
    assert ran.count("cleanup_pending_statuses_for_tenant") >= 2  # one per tenant
    assert pending_wamids("alpha") == {"wamid.alpha.recent"}
    assert pending_wamids("beta") == {"wamid.beta.recent"}


def test_a_tenant_cleanup_touches_only_its_own_schema(tenant_a, tenant_b):
    pending_status("alpha", "wamid.alpha.old", age_days=30)
    pending_status("beta", "wamid.beta.old", age_days=30)

    with schema_context("alpha"):
        cleanup_pending_statuses_for_tenant.fn()

    assert pending_wamids("alpha") == set()
    assert pending_wamids("beta") == {"wamid.beta.old"}


def test_the_pending_status_retention_follows_its_setting(tenant_a, settings):
    settings.WHATSAPP_PENDING_STATUS_RETENTION_DAYS = 1
    pending_status("alpha", "wamid.two-days", age_days=2)
    pending_status("alpha", "wamid.hours", age_days=0.5)

    run_scheduled_cleanup()

    assert pending_wamids("alpha") == {"wamid.hours"}


def test_a_suspended_tenant_is_cleaned_too(tenant_b):
    Tenant.objects.filter(pk=tenant_b.pk).update(is_active=False)
    pending_status("beta", "wamid.beta.old", age_days=8)

    run_scheduled_cleanup()

    assert pending_wamids("beta") == set()


def test_the_cleanup_drops_processed_webhook_events_past_retention_and_keeps_what_the_admin_shows(db):
    processed_old = webhook_event("processed", age_days=31, processed_days_ago=31)
    processed_recent = webhook_event("processed", age_days=29, processed_days_ago=29)
    replayed_lately = webhook_event("processed", age_days=40, processed_days_ago=2)
    unrouted_old = webhook_event("unrouted", age_days=60, processed_days_ago=60)
    failed_old = webhook_event("failed", age_days=60)
    pending_old = webhook_event("pending", age_days=60)

    run_scheduled_cleanup()

    left = set(WebhookEvent.objects.values_list("pk", flat=True))
    assert processed_old.pk not in left
    assert {processed_recent.pk, replayed_lately.pk, unrouted_old.pk, failed_old.pk, pending_old.pk} <= left


def test_the_webhook_event_retention_follows_its_setting(db, settings):
    settings.WHATSAPP_WEBHOOK_EVENT_RETENTION_DAYS = 3
    four_days = webhook_event("processed", age_days=4, processed_days_ago=4)
    two_days = webhook_event("processed", age_days=2, processed_days_ago=2)

    run_scheduled_cleanup()

    left = set(WebhookEvent.objects.values_list("pk", flat=True))
    assert four_days.pk not in left and two_days.pk in left


def test_old_rows_are_deleted_in_batches_without_being_loaded(db, tenant_a):
    events = [webhook_event("processed", age_days=40, processed_days_ago=40) for _ in range(5)]
    for index in range(3):
        pending_status("alpha", f"wamid.old.{index}", age_days=8)

    with CaptureQueriesContext(connection) as queries:
        assert delete_processed_webhook_events(older_than=days_ago(30), batch=2) == 5
        with schema_context("alpha"):
            assert delete_stale_pending_statuses(older_than=days_ago(7), batch=2) == 3

    statements = [q["sql"] for q in queries.captured_queries if not q["sql"].startswith("SET search_path")]
    # Batches of two: 2 + 2 + 1 events, 2 + 1 statuses; no row is SELECTed into Python first.
    assert len(statements) == 5 and all(sql.startswith("DELETE") for sql in statements)
    assert not WebhookEvent.objects.filter(pk__in=[e.pk for e in events]).exists()
    assert pending_wamids("alpha") == set()
