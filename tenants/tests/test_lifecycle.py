"""Deleting a tenant: suspended and exported at once, dropped after the grace period (or forced),
restorable until then; no one-click delete in the platform admin; the backup schedule."""

from __future__ import annotations

import datetime as dt
import io
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage, storages
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import timezone
from django_tenants.utils import schema_exists

from conftest import PASSWORD
from core.errors import ServiceError
from tenants import lifecycle
from tenants.backup_storage import DELETION, SCHEDULED, backups_of, prune_backups
from tenants.models import NumberRoute, Tenant, WebhookEvent
from tenants.tests.backup_fixtures import seed


def _event(phone_number_id: str, status: str = WebhookEvent.Status.UNROUTED) -> WebhookEvent:
    body = {"object": "whatsapp_business_account", "entry": []}
    return WebhookEvent.objects.create(
        body=json.dumps(body).encode(), phone_number_ids=[phone_number_id], status=status, error="Unknown"
    )


def test_deleting_suspends_exports_and_schedules_the_drop(make_tenant: Any, settings: Any) -> None:
    settings.TENANT_DELETION_GRACE_DAYS = 30
    tenant = make_tenant()
    made = seed(tenant)
    result = lifecycle.delete_tenant(tenant=tenant)

    tenant.refresh_from_db()
    assert not tenant.is_active and not result.purged
    assert tenant.purge_after - tenant.deletion_requested_at == dt.timedelta(days=30)
    assert schema_exists(tenant.schema_name)  # nothing dropped yet
    assert backups_of(tenant.slug, reason=DELETION) == [result.export]
    # Suspended: its host answers the suspended page, so no one signs in.
    response = Client(HTTP_HOST=f"{tenant.slug}.localhost").get("/login/")
    assert response.status_code == 403
    # Webhooks for its numbers are stored but routed nowhere until it is restored.
    from whatsapp.services import RouteCache

    assert RouteCache().route(made["phone_number_id"]) is None
    assert RouteCache().account("waba1") == [] or all(
        t.pk != tenant.pk for t in RouteCache().account("waba1")
    )

    with pytest.raises(ServiceError) as caught:
        lifecycle.delete_tenant(tenant=tenant)
    assert caught.value.code == "deletion_scheduled"


def test_a_failed_export_leaves_the_tenant_as_it_was(make_tenant: Any, monkeypatch: Any) -> None:
    tenant = make_tenant()

    def broken(**_: Any) -> str:
        raise ServiceError("pg_command_failed", "pg_dump failed: disk full", status=500)

    monkeypatch.setattr(lifecycle, "store_backup", broken)
    with pytest.raises(ServiceError):
        lifecycle.delete_tenant(tenant=tenant, force=True)
    tenant.refresh_from_db()
    assert tenant.is_active and tenant.deletion_requested_at is None and tenant.purge_after is None
    assert schema_exists(tenant.schema_name)


def test_restoring_reactivates_and_requeues_the_webhooks_stored_meanwhile(make_tenant: Any) -> None:
    tenant = make_tenant()
    made = seed(tenant)
    before = _event(made["phone_number_id"])  # stored before the deletion: not this restore's business
    WebhookEvent.objects.filter(pk=before.pk).update(received_at=timezone.now() - dt.timedelta(days=1))
    lifecycle.delete_tenant(tenant=tenant)
    waiting = _event(made["phone_number_id"])
    elsewhere = _event("111111111111")

    out = io.StringIO()
    call_command("restore_tenant", "--tenant", tenant.slug, stdout=out)
    assert "1 stored webhook event" in out.getvalue()

    tenant.refresh_from_db()
    assert tenant.is_active and tenant.deletion_requested_at is None and tenant.purge_after is None
    assert WebhookEvent.objects.get(pk=waiting.pk).status == WebhookEvent.Status.PENDING
    assert WebhookEvent.objects.get(pk=elsewhere.pk).status == WebhookEvent.Status.UNROUTED
    assert WebhookEvent.objects.get(pk=before.pk).status == WebhookEvent.Status.UNROUTED
    from whatsapp.services import RouteCache

    assert RouteCache().route(made["phone_number_id"]) == tenant
    WebhookEvent.objects.filter(pk__in=[before.pk, waiting.pk, elsewhere.pk]).delete()

    with pytest.raises(CommandError, match="not_being_deleted"):
        call_command("restore_tenant", "--tenant", tenant.slug, stdout=io.StringIO())


def test_the_drop_happens_only_when_the_grace_period_has_passed(make_tenant: Any) -> None:
    doomed, spared = make_tenant(), make_tenant()
    made = seed(doomed)
    knowledge_file = f"knowledge/{doomed.schema_name}/prices.txt"
    default_storage.save(knowledge_file, ContentFile(b"Delivery costs 4 EUR."))
    deletion = lifecycle.delete_tenant(tenant=doomed)
    lifecycle.delete_tenant(tenant=spared)
    doomed.refresh_from_db()
    spared.refresh_from_db()

    assert lifecycle.purge_due_tenants(now=doomed.purge_after - dt.timedelta(seconds=1)) == []
    assert schema_exists(doomed.schema_name)

    Tenant.objects.filter(pk=spared.pk).update(purge_after=spared.purge_after + dt.timedelta(days=1))
    assert lifecycle.purge_due_tenants(now=doomed.purge_after + dt.timedelta(seconds=1)) == [doomed.slug]
    assert not schema_exists(doomed.schema_name)
    assert not Tenant.objects.filter(pk=doomed.pk).exists()
    assert not NumberRoute.objects.filter(phone_number_id=made["phone_number_id"]).exists()
    assert not default_storage.exists(made["media_path"])
    assert not default_storage.exists(knowledge_file)
    # Its deletion export outlives it: the way back after the purge is import_tenant.
    assert storages["backups"].exists(deletion.export)
    assert schema_exists(spared.schema_name) and Tenant.objects.filter(pk=spared.pk).exists()


def test_the_operator_can_force_the_drop_at_once_after_the_export(make_tenant: Any) -> None:
    tenant = make_tenant()
    out = io.StringIO()
    call_command("remove_tenant", "--tenant", tenant.slug, "--force", stdout=out)
    assert "Deleted" in out.getvalue()
    assert not schema_exists(tenant.schema_name)
    assert not Tenant.objects.filter(slug=tenant.slug).exists()
    assert len(backups_of(tenant.slug, reason=DELETION)) == 1


def test_the_delete_command_without_force_only_schedules(make_tenant: Any) -> None:
    tenant = make_tenant()
    out = io.StringIO()
    call_command("remove_tenant", "--tenant", tenant.slug, stdout=out)
    assert "restore_tenant --tenant" in out.getvalue()
    assert schema_exists(tenant.schema_name)
    with pytest.raises(CommandError, match="No tenant"):
        call_command("remove_tenant", "--tenant", "nosuchtenant", stdout=io.StringIO())


def test_purging_a_tenant_not_being_deleted_is_refused(make_tenant: Any) -> None:
    tenant = make_tenant()
    with pytest.raises(ServiceError) as caught:
        lifecycle.purge_tenant(tenant=tenant)
    assert caught.value.code == "not_being_deleted"
    assert schema_exists(tenant.schema_name)


def test_tenants_no_longer_drop_their_schema_when_their_row_is_deleted() -> None:
    assert Tenant.auto_drop_schema is False


@pytest.fixture
def operator(make_tenant: Any, django_db_blocker: Any) -> Any:
    # Left in place (the test database goes at the end): deleting a user cascades to tenant-only tables.
    email = f"ops{uuid.uuid4().hex[:8]}@platform.test"
    with django_db_blocker.unblock():
        admin = get_user_model().objects.create_superuser(email, email, PASSWORD)
        client = Client(HTTP_HOST="localhost")
        client.force_login(admin)
        yield client


def test_the_platform_admin_offers_no_one_click_delete(operator: Any, make_tenant: Any) -> None:
    tenant = make_tenant()
    page = operator.get("/admin/tenants/tenant/").content.decode()
    assert 'value="delete_selected"' not in page
    assert 'value="delete_tenants"' in page and 'value="restore_tenants"' in page
    assert operator.get(f"/admin/tenants/tenant/{tenant.pk}/delete/").status_code in (302, 403)
    operator.post(
        "/admin/tenants/tenant/",
        {"action": "delete_selected", "_selected_action": [tenant.pk], "post": "yes"},
    )
    assert schema_exists(tenant.schema_name) and Tenant.objects.filter(pk=tenant.pk).exists()


def _run_deletion_jobs() -> int:
    """The queued background deletions, run as the worker would (other queued jobs are dropped)."""
    import dramatiq

    from tenants.actors import delete_requested_tenant
    from tenants.jobs import broker

    ran = 0
    for queue in broker.queues.values():
        while not queue.empty():
            message = dramatiq.Message.decode(queue.get_nowait())
            queue.task_done()  # or a later broker.join() waits for it forever
            if message.actor_name == delete_requested_tenant.actor_name:
                delete_requested_tenant.fn(*message.args, **message.kwargs)
                ran += 1
    return ran


def test_the_admin_actions_delete_and_restore(operator: Any, make_tenant: Any) -> None:
    tenant = make_tenant()
    response = operator.post(
        "/admin/tenants/tenant/", {"action": "delete_tenants", "_selected_action": [tenant.pk]}, follow=True
    )
    assert "suspended. Its export is being written in the background" in response.content.decode()
    tenant.refresh_from_db()
    # Suspended at once; exported and scheduled by the job (a large tenant's export outlasts a request).
    assert not tenant.is_active and tenant.deletion_requested_at is None and tenant.purge_after is None
    assert Client(HTTP_HOST=f"{tenant.slug}.localhost").get("/login/").status_code == 403
    assert _run_deletion_jobs() == 1
    tenant.refresh_from_db()
    assert not tenant.is_active and tenant.purge_after is not None
    assert len(backups_of(tenant.slug, reason=DELETION)) == 1

    # Reactivate is not the way back (it would leave the drop scheduled).
    operator.post("/admin/tenants/tenant/", {"action": "reactivate", "_selected_action": [tenant.pk]})
    tenant.refresh_from_db()
    assert not tenant.is_active

    response = operator.post(
        "/admin/tenants/tenant/", {"action": "restore_tenants", "_selected_action": [tenant.pk]}, follow=True
    )
    assert "restored" in response.content.decode()
    tenant.refresh_from_db()
    assert tenant.is_active and tenant.purge_after is None


def test_a_background_deletion_that_fails_leaves_the_tenant_suspended_and_says_why(
    operator: Any, make_tenant: Any, monkeypatch: Any
) -> None:
    from core.models import AuditEvent

    tenant = make_tenant()

    def broken(**_: Any) -> str:
        raise ServiceError("pg_command_failed", "pg_dump failed: disk full", status=500)

    monkeypatch.setattr(lifecycle, "store_backup", broken)
    operator.post("/admin/tenants/tenant/", {"action": "delete_tenants", "_selected_action": [tenant.pk]})
    assert _run_deletion_jobs() == 1
    tenant.refresh_from_db()
    assert not tenant.is_active and tenant.deletion_requested_at is None and tenant.purge_after is None
    assert schema_exists(tenant.schema_name)
    failed = AuditEvent.objects.get(
        target_type="tenant", target_id=str(tenant.pk), action="tenant.deletion_failed"
    )
    assert failed.details["error"] == "pg_dump failed: disk full" and "ops" in failed.actor_label


def test_a_tenant_reactivated_before_its_background_deletion_ran_is_not_deleted(
    operator: Any, make_tenant: Any
) -> None:
    tenant = make_tenant()
    operator.post("/admin/tenants/tenant/", {"action": "delete_tenants", "_selected_action": [tenant.pk]})
    operator.post("/admin/tenants/tenant/", {"action": "reactivate", "_selected_action": [tenant.pk]})
    assert _run_deletion_jobs() == 1
    tenant.refresh_from_db()
    assert tenant.is_active and tenant.deletion_requested_at is None
    assert backups_of(tenant.slug, reason=DELETION) == []


def test_deletions_and_restores_are_in_the_platform_audit_log(make_tenant: Any) -> None:
    from core.models import AuditEvent

    tenant = make_tenant()
    lifecycle.delete_tenant(tenant=tenant, actor="ops@platform.test")
    lifecycle.restore_tenant(tenant=tenant, actor="ops@platform.test")
    actions = list(
        AuditEvent.objects.filter(target_type="tenant", target_id=str(tenant.pk))
        .order_by("id")
        .values_list("action", flat=True)
    )
    assert actions[-2:] == ["tenant.deleted", "tenant.restored"]


def test_the_scheduler_runs_the_backup_and_the_purge() -> None:
    jobs = settings.PERIODIC_JOBS
    assert jobs["tenants_purge_deleted"][0] == "tenants.actors.purge_deleted_tenants"
    assert jobs["tenants_backup"] == ("tenants.actors.backup_all_tenants", settings.BACKUP_SCHEDULE_SECONDS)


def test_the_daily_backup_keeps_the_newest_copies(make_tenant: Any, settings: Any, storages_in: Path) -> None:
    from tenants.actors import backup_tenant

    settings.BACKUP_KEEP = 2
    tenant = make_tenant()
    for _ in range(3):
        backup_tenant.fn(tenant.slug)
    kept = backups_of(tenant.slug, reason=SCHEDULED)
    assert len(kept) == 2
    assert (storages_in / "backups" / kept[-1]).stat().st_size > 0
    # A deletion's export is never pruned by the schedule.
    lifecycle.delete_tenant(tenant=tenant)
    assert prune_backups(slug=tenant.slug, keep=1) == kept[:1]
    assert len(backups_of(tenant.slug, reason=DELETION)) == 1
    # Suspended tenants are not backed up by the schedule.
    backup_tenant.fn(tenant.slug)
    assert len(backups_of(tenant.slug, reason=SCHEDULED)) == 1


def test_a_db_for_this_module(db: None) -> None:
    """pytest-django sets the test database up only for sessions with a test asking for `db`."""
    assert Tenant.objects.filter(slug="alpha").exists()
