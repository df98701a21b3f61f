"""Periodic inbox jobs, fanned out per tenant (each message carries its schema)."""

from __future__ import annotations

import datetime as dt

import dramatiq
from django.utils import timezone

from conversations import services
from conversations.models import InboxEvent
from conversations.services import routing, sla
from tenants.jobs import send_in_schema
from tenants.selectors import active_tenant_schemas

# Browsers catch up from the event log; one offline longer than this reloads its panes instead.
EVENT_RETENTION = dt.timedelta(days=2)


@dramatiq.actor(queue_name="default", max_retries=3)
def inbox_housekeeping() -> None:
    for schema in active_tenant_schemas():
        send_in_schema(inbox_housekeeping_for_tenant, schema)


@dramatiq.actor(queue_name="default", max_retries=3)
def inbox_housekeeping_for_tenant() -> None:
    services.wake_snoozed_conversations()
    InboxEvent.objects.filter(created_at__lt=timezone.now() - EVENT_RETENTION).delete()
    # Auto-assignment: idle agents go offline, then the queue fills whatever room there is.
    routing.mark_idle_agents_offline()
    routing.assign_queued_conversations()
    sla.sweep_sla_breaches()
