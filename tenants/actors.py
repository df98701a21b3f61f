from __future__ import annotations

import dramatiq
from django.core.management import call_command

import config.dramatiq  # noqa: F401
from config.dramatiq import send_in_schema
from tenants.selectors import active_tenant_schemas


@dramatiq.actor(queue_name="default", max_retries=3)
def cleanup_expired_sessions() -> None:
    """Fan out: one message per tenant (each carries its schema), plus the public schema."""
    call_command("clearsessions")
    for schema in active_tenant_schemas():
        send_in_schema(cleanup_expired_sessions_for_tenant, schema)


@dramatiq.actor(queue_name="default", max_retries=3)
def cleanup_expired_sessions_for_tenant() -> None:
    call_command("clearsessions")
