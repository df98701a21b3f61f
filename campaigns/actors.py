"""The campaign dispatcher (bulk queue: agent replies never wait behind it) and the scheduler's tick."""

from __future__ import annotations

import time

import dramatiq

from campaigns import services
from tenants.jobs import send_in_schema
from tenants.selectors import active_tenant_schemas

# One job queues chunks for this long, then hands over to a fresh job (other tenants' campaigns share
# the queue); a job killed half-way is replaced by the tick, and the idempotency keys make that safe.
BUDGET_SECONDS = 20.0


@dramatiq.actor(queue_name="bulk", max_retries=3, time_limit=120_000)
def dispatch_campaign(campaign_id: int) -> None:
    """Queue chunks until none is left, the campaign stops running, or it must wait (its window, the
    messaging limit): the scheduler's tick kicks it again every few seconds, so a waiting or killed
    dispatcher needs no chain of delayed jobs. A second dispatcher of the same campaign finds its row
    locked and ends at once."""
    deadline = time.monotonic() + BUDGET_SECONDS
    while services.dispatch_chunk(campaign_id=campaign_id).outcome == "sent_chunk":
        if time.monotonic() > deadline:
            dispatch_campaign.send(campaign_id)
            return


@dramatiq.actor(queue_name="default", max_retries=3)
def campaigns_tick() -> None:
    for schema in active_tenant_schemas():
        send_in_schema(campaigns_tick_for_tenant, schema)


@dramatiq.actor(queue_name="default", max_retries=3)
def campaigns_tick_for_tenant() -> None:
    for campaign_id in services.run_due_campaigns():
        dispatch_campaign.send(campaign_id)
