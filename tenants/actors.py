from __future__ import annotations

import dramatiq
import structlog
from django.core.management import call_command

from tenants.cloning import refill_spares
from tenants.jobs import send_in_schema
from tenants.models import Tenant
from tenants.selectors import active_tenant_schemas

log = structlog.get_logger("tenants.actors")


@dramatiq.actor(queue_name="default", max_retries=3)
def cleanup_expired_sessions() -> None:
    """Fan out: one message per tenant (each carries its schema), plus the public schema."""
    call_command("clearsessions")
    for schema in active_tenant_schemas():
        send_in_schema(cleanup_expired_sessions_for_tenant, schema)


@dramatiq.actor(queue_name="default", max_retries=3)
def cleanup_expired_sessions_for_tenant() -> None:
    call_command("clearsessions")


@dramatiq.actor(queue_name="default", max_retries=3)
def purge_deleted_tenants() -> None:
    """Drop the tenants whose deletion grace period has passed (tenants.lifecycle)."""
    from tenants.lifecycle import purge_due_tenants

    purge_due_tenants()


# The platform admin's Delete (tenants.lifecycle.request_deletion): the export may take as long as a
# backup. Not retried: a failure is in the audit log and the tenant stays suspended until Delete again.
@dramatiq.actor(queue_name="default", max_retries=0, time_limit=6 * 3600 * 1000)
def delete_requested_tenant(tenant_id: int, actor_id: int | None = None) -> None:
    from tenants.lifecycle import finish_requested_deletion

    finish_requested_deletion(tenant_id=tenant_id, actor_id=actor_id)


# Sent after each tenant creation and every 5 minutes (PERIODIC_JOBS): replaces claimed spares and those
# a migration made stale. Concurrent runs are harmless (the second returns at once).
@dramatiq.actor(queue_name="default", max_retries=3)
def refill_spare_schemas() -> None:
    report = refill_spares()
    if report["created"] or report["dropped"]:
        log.info("spare_schemas_refilled", **report)


@dramatiq.actor(queue_name="bulk", max_retries=0)
def backup_all_tenants() -> None:
    """Fan out: one backup job per active tenant, so one slow or failing tenant delays no other."""
    for slug in Tenant.objects.filter(is_active=True).values_list("slug", flat=True):
        backup_tenant.send(slug)


# Retried with backoff: a backup that failed (storage or database briefly away) is tried again, and
# the next day's run comes anyway. A long dump must not be cut by Dramatiq's default 10-minute limit.
@dramatiq.actor(queue_name="bulk", max_retries=3, time_limit=6 * 3600 * 1000)
def backup_tenant(slug: str) -> None:
    from tenants.backup_storage import prune_backups, store_backup

    tenant = Tenant.objects.filter(slug=slug, is_active=True).first()
    if tenant is None:
        return
    name = store_backup(tenant=tenant)
    pruned = prune_backups(slug=slug)
    log.info("tenant_backed_up", tenant=slug, archive=name, pruned=len(pruned))
