"""Deleting a tenant, restoring it, and dropping it for good: the platform admin's actions and the
`remove_tenant`, `restore_tenant` and `purge_tenants` commands (django-tenants owns `delete_tenant`).

Deleting is reversible for TENANT_DELETION_GRACE_DAYS (default 30):
1. the tenant is suspended at once: its hosts answer the "suspended" page (no sign-in, no API), and
   webhooks for its numbers are still stored (Meta gets its 200) but not processed: they wait in
   public's WebhookEvent as "unknown number" (whatsapp.services routes to active tenants only);
2. an export of it is written to the backups storage (reason "deletion"), kept after the purge;
3. when the grace period has passed, the scheduler's `purge_deleted_tenants` job drops its schema, its
   media objects and its public rows (domains, number routes). The platform operator can force the
   drop at once (`remove_tenant --force`), after the export.

The platform admin's Delete suspends the tenant at once and leaves the rest (the export, which takes as
long as the tenant is large, and the scheduling) to a job (`request_deletion`); if the export fails, the
tenant stays suspended, nothing is scheduled, and the audit log says why (`tenant.deletion_failed`).

Restoring within the grace period un-suspends it and puts the webhook events stored meanwhile for its
numbers back to pending, so the sweeper processes them: nothing a customer sent is lost. After the
purge, `import_tenant` brings the tenant back from its deletion export.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import structlog
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django_tenants.utils import get_public_schema_name, schema_context

from core import audit
from core.errors import ServiceError
from tenants.backup import media_storage, walk_tenant_files
from tenants.backup_storage import DELETION, store_backup
from tenants.models import NumberRoute, Tenant, WebhookEvent
from tenants.services import set_tenant_active

log = structlog.get_logger("tenants.lifecycle")


def _audit(action: str, tenant: Tenant, actor: Any, **details: Any) -> None:
    audit.record(action, actor=actor, target=tenant, details=details, platform=True)


def grace_period() -> dt.timedelta:
    return dt.timedelta(days=settings.TENANT_DELETION_GRACE_DAYS)


@dataclass(frozen=True)
class Deletion:
    tenant: Tenant
    export: str  # the archive's name in the backups storage
    purged: bool


def _refuse_if_scheduled(tenant: Tenant) -> None:
    if tenant.deletion_requested_at is not None:
        raise ServiceError(
            "deletion_scheduled",
            f"{tenant.slug} is already being deleted "
            f"(dropped after {tenant.purge_after:%Y-%m-%d %H:%M} UTC).",
            status=409,
        )


def delete_tenant(*, tenant: Tenant, force: bool = False, actor: Any = None) -> Deletion:
    """Suspend the tenant, export it, and schedule (or, forced, do) the drop of its schema.

    The export comes first: if it fails the tenant is left as it was and the error is raised, so no
    tenant is ever dropped without its archive."""
    if not force:
        _refuse_if_scheduled(tenant)
    was = (tenant.is_active, tenant.deletion_requested_at, tenant.purge_after)
    now = timezone.now()
    tenant.is_active = False
    tenant.deletion_requested_at = tenant.deletion_requested_at or now
    tenant.purge_after = now if force else now + grace_period()
    tenant.save(update_fields=["is_active", "deletion_requested_at", "purge_after"])
    try:
        export = store_backup(tenant=tenant, reason=DELETION)
    except BaseException:
        tenant.is_active, tenant.deletion_requested_at, tenant.purge_after = was
        tenant.save(update_fields=["is_active", "deletion_requested_at", "purge_after"])
        raise
    _audit("tenant.deleted", tenant, actor, export=export, forced=force, purge_after=str(tenant.purge_after))
    log.info("tenant_deletion_scheduled", tenant=tenant.slug, export=export, forced=force)
    if force:
        purge_tenant(tenant=tenant)
    return Deletion(tenant=tenant, export=export, purged=force)


def request_deletion(*, tenant: Tenant, actor: Any = None) -> None:
    """The platform admin's Delete: suspended now (its hosts answer the suspended page, its webhooks wait),
    exported and scheduled for the drop by a job (finish_requested_deletion): a large tenant's export
    takes longer than a request may."""
    _refuse_if_scheduled(tenant)
    from tenants.actors import delete_requested_tenant
    from tenants.jobs import send_in_schema

    set_tenant_active(tenant=tenant, active=False)
    actor_id = getattr(actor, "pk", None)
    tenant_id = tenant.pk
    transaction.on_commit(
        lambda: send_in_schema(delete_requested_tenant, get_public_schema_name(), tenant_id, actor_id)
    )
    log.info("tenant_deletion_requested", tenant=tenant.slug)


def finish_requested_deletion(*, tenant_id: int, actor_id: int | None = None) -> Deletion | None:
    """The job behind request_deletion. Nothing happens if the tenant was reactivated meanwhile (the
    operator changed their mind) or is being deleted already. A failed export leaves it suspended and
    not scheduled, with the reason in the platform audit log: Delete can be tried again."""
    tenant = Tenant.objects.filter(pk=tenant_id).first()
    if tenant is None or tenant.is_active or tenant.deletion_requested_at is not None:
        log.info("tenant_deletion_skipped", tenant_id=tenant_id)
        return None
    actor = get_user_model().objects.filter(pk=actor_id).first() if actor_id else None
    try:
        return delete_tenant(tenant=tenant, actor=actor)
    except Exception as exc:
        log.exception("tenant_deletion_failed", tenant=tenant.slug)
        reason = exc.message if isinstance(exc, ServiceError) else repr(exc)
        _audit("tenant.deletion_failed", tenant, actor, error=reason[:500])
        return None


def restore_tenant(*, tenant: Tenant, actor: Any = None) -> int:
    """Undo a deletion within the grace period. Returns how many stored webhook events were requeued."""
    if tenant.deletion_requested_at is None:
        raise ServiceError("not_being_deleted", f"{tenant.slug} is not being deleted.", status=409)
    since = tenant.deletion_requested_at
    with transaction.atomic():
        tenant.is_active = True
        tenant.deletion_requested_at = None
        tenant.purge_after = None
        tenant.save(update_fields=["is_active", "deletion_requested_at", "purge_after"])
        numbers = list(NumberRoute.objects.filter(tenant=tenant).values_list("phone_number_id", flat=True))
        requeued = 0
        if numbers:
            names_one = Q()
            for number in numbers:
                names_one |= Q(phone_number_ids__contains=[number])
            # The sweeper takes pending events (whatsapp.actors.sweep_webhook_events): processing them
            # is idempotent, so an event that also named another, live tenant's number is safe too.
            requeued = WebhookEvent.objects.filter(
                names_one, status=WebhookEvent.Status.UNROUTED, received_at__gte=since
            ).update(status=WebhookEvent.Status.PENDING, error="")
        _audit("tenant.restored", tenant, actor, requeued_events=requeued)
    log.info("tenant_restored", tenant=tenant.slug, requeued_events=requeued)
    return requeued


def purge_tenant(*, tenant: Tenant) -> None:
    """Drop the schema, the media objects and the public rows of a tenant being deleted."""
    if tenant.deletion_requested_at is None or tenant.is_active:
        raise ServiceError("not_being_deleted", f"{tenant.slug} is not being deleted.", status=409)
    slug, schema = tenant.slug, tenant.schema_name
    with schema_context(get_public_schema_name()), transaction.atomic():
        # Domains and number routes go with the row (CASCADE); stored webhook events keep a null tenant.
        tenant.delete(force_drop=True)
    storage = media_storage()
    for _folder, name in list(walk_tenant_files(storage, schema)):
        storage.delete(name)
    log.info("tenant_purged", tenant=slug)


def purge_due_tenants(*, now: dt.datetime | None = None) -> list[str]:
    """Every tenant whose grace period has passed, dropped. Returns their slugs."""
    now = now or timezone.now()
    purged = []
    due = Tenant.objects.filter(is_active=False, deletion_requested_at__isnull=False, purge_after__lte=now)
    for tenant in due:
        try:
            purge_tenant(tenant=tenant)
        except Exception:
            log.exception("tenant_purge_failed", tenant=tenant.slug)
            continue
        purged.append(tenant.slug)
    return purged
