"""CRM jobs. Actors take ids, load rows and call services."""

from __future__ import annotations

import dramatiq

import tenants.jobs  # noqa: F401  (actors bind to the broker)
from crm import services
from crm.models import ContactImport


@dramatiq.actor(queue_name="bulk", max_retries=0, time_limit=60 * 60 * 1000)
def import_contacts(contact_import_id: int) -> None:
    job = ContactImport.objects.filter(pk=contact_import_id).first()
    if job is None or job.status == ContactImport.Status.DONE:
        return
    try:
        services.run_contact_import(contact_import=job)
    except Exception as exc:
        ContactImport.objects.filter(pk=job.pk).update(
            status=ContactImport.Status.FAILED, error=repr(exc)[:1000]
        )
        raise


@dramatiq.actor(queue_name="default", max_retries=5)
def send_notification_emails(notification_ids: list[int]) -> None:
    from crm.services import notifications

    notifications.send_notification_emails(notification_ids=notification_ids)


@dramatiq.actor(queue_name="default", max_retries=3)
def send_assignment_digests() -> None:
    """Periodic: fanned out to every active tenant (each message carries its schema)."""
    from tenants.jobs import send_in_schema
    from tenants.selectors import active_tenant_schemas

    for schema in active_tenant_schemas():
        send_in_schema(send_assignment_digests_for_tenant, schema)


@dramatiq.actor(queue_name="default", max_retries=3)
def send_assignment_digests_for_tenant() -> None:
    from crm.services import notifications

    notifications.send_assignment_digests()
