"""Webhook deliveries, on their own queue so that a slow receiver never delays agent replies or inbound."""

from __future__ import annotations

import dramatiq

import tenants.jobs  # noqa: F401 - the broker with the tenant middleware
from integrations import services


# Retries are scheduled by the service (its own backoff, recorded in the delivery log), not by Dramatiq.
@dramatiq.actor(queue_name="webhooks", max_retries=0, time_limit=60_000)
def deliver_webhook(delivery_id: int, attempt: int) -> None:
    services.attempt_delivery(delivery_id=delivery_id, attempt=attempt)
