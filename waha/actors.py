"""The WAHA channel's jobs (config/worker.py imports this module in every worker). The scheduler's session
sweeps fan out one message per tenant with WAHA numbers, so one slow WAHA server delays no other tenant."""

from __future__ import annotations

import dramatiq

from tenants.jobs import send_in_schema
from waha import delivery, events, sessions

# Declared in waha.events (inbound processing and its sweeper) and waha.delivery (sends, read receipts,
# media downloads, the requeue sweeper); imported here so every worker knows them.
__all__ = ["delivery", "events"]


@dramatiq.actor(queue_name="default", max_retries=0)
def poll_sessions() -> None:
    """Every minute (PERIODIC_JOBS): check each tenant's sessions and run the restarts that are due."""
    for schema in sessions.waha_tenant_schemas():
        send_in_schema(poll_tenant_sessions, schema)


@dramatiq.actor(queue_name="default", max_retries=0, time_limit=5 * 60 * 1000)
def poll_tenant_sessions() -> None:
    sessions.poll_tenant_sessions()


@dramatiq.actor(queue_name="default", max_retries=0)
def expire_idle_sessions() -> None:
    """Hourly (PERIODIC_JOBS): stop the sessions idle longer than WAHA_SESSION_IDLE_EXPIRY days."""
    for schema in sessions.waha_tenant_schemas():
        send_in_schema(expire_idle_sessions_for_tenant, schema)


@dramatiq.actor(queue_name="default", max_retries=0, time_limit=5 * 60 * 1000)
def expire_idle_sessions_for_tenant() -> None:
    sessions.expire_idle_in_tenant()
