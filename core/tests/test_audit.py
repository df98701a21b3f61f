"""core.audit: who, what, from where; per schema (platform events in public); append-only in the ORM and
in the database, in every schema including the template new tenants are cloned from."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import AnonymousUser
from django.db import DatabaseError, transaction
from django.test import RequestFactory
from django_tenants.utils import schema_context

from core import audit
from core.models import AppendOnlyError, AuditEvent
from tenants.db import connection


def _request(ip: str = "203.0.113.9", agent: str = "Browser/1.0", user=None):
    request = RequestFactory().get("/", REMOTE_ADDR=ip, HTTP_USER_AGENT=agent)
    request.user = user if user is not None else AnonymousUser()
    request.request_id = "req-1"
    return request


def test_an_event_records_the_actor_the_target_and_where_from(tenant_a, owner_a):
    with schema_context("alpha"):
        event = audit.record(
            "agent.role_changed",
            actor=owner_a,
            target=("agent", "7", "Ann"),
            details={"from": "agent", "to": "admin"},
            request=_request(),
        )
        stored = AuditEvent.objects.get(pk=event.pk)
    assert stored.actor_id == owner_a.pk
    assert stored.actor_label == "owner@alpha.test"
    assert (stored.ip, stored.user_agent, stored.request_id) == ("203.0.113.9", "Browser/1.0", "req-1")
    assert (stored.target_type, stored.target_id, stored.target_label) == ("agent", "7", "Ann")
    assert stored.details == {"from": "agent", "to": "admin"}


def test_the_actor_and_address_come_from_the_request_being_served(tenant_a, owner_a):
    with schema_context("alpha"), audit.request_context(_request("198.51.100.4", user=owner_a)):
        event = audit.record("settings.changed", details={"section": "hours"})
    assert (event.actor_id, event.actor_label, event.ip) == (owner_a.pk, "owner@alpha.test", "198.51.100.4")


def test_without_a_request_the_actor_is_the_system(tenant_a):
    with schema_context("alpha"):
        event = audit.record("settings.changed")
    assert (event.actor_id, event.actor_label, event.ip, event.user_agent) == (None, "system", None, "")


def test_an_unusable_address_is_stored_as_none_not_an_error(tenant_a):
    with schema_context("alpha"):
        event = audit.record("settings.changed", request=_request(ip="unknown"))
    assert event.ip is None


def test_an_integration_key_is_named_by_its_prefix(tenant_a):
    class Key:
        prefix = "ab12cd34"

    class KeyUser(AnonymousUser):
        api_key = Key()

        @property
        def is_authenticated(self):  # type: ignore[override]
            return True

    with schema_context("alpha"):
        event = audit.record("api_key.revoked", request=_request(user=KeyUser()))
    assert (event.actor_id, event.actor_label) == (None, "api-key:ab12cd34")


def test_details_never_keep_secrets(tenant_a):
    with schema_context("alpha"):
        event = audit.record(
            "api_key.issued",
            details={
                "name": "Zapier",
                "raw": "wacrm_abc_secret",
                "password": "hunter2",
                "nested": {"access_token": "EAAB", "hashed_key": "f00", "keep": ["x" * 600]},
                "key": "wacrm_abc_secret",
                "prefix": "abc",
            },
        )
    assert event.details["name"] == "Zapier" and event.details["prefix"] == "abc"
    for field in ("raw", "password", "key"):
        assert event.details[field] == audit.REDACTED
    assert event.details["nested"]["access_token"] == audit.REDACTED
    assert event.details["nested"]["hashed_key"] == audit.REDACTED
    assert len(event.details["nested"]["keep"][0]) == audit.MAX_TEXT
    stored = str(AuditEvent.objects.filter(pk=event.pk).values_list("details", flat=True))
    assert "hunter2" not in stored and "secret" not in stored and "EAAB" not in stored


def test_an_unknown_action_is_a_programming_error(tenant_a):
    with schema_context("alpha"), pytest.raises(ValueError, match="Unknown audit action"):
        audit.record("contact.sneezed")


def test_tenant_events_stay_in_the_tenants_schema(tenant_a, tenant_b):
    with schema_context("alpha"):
        event = audit.record("settings.changed", details={"marker": "alpha-only"})
    with schema_context("beta"):
        assert not AuditEvent.objects.filter(details__marker="alpha-only").exists()
    with schema_context("public"):
        assert not AuditEvent.objects.filter(details__marker="alpha-only").exists()
    with schema_context("alpha"):
        assert AuditEvent.objects.filter(pk=event.pk, details__marker="alpha-only").exists()


def test_a_platform_event_goes_to_public_from_any_schema(tenant_a):
    with schema_context("alpha"):
        audit.record("tenant.suspended", target=tenant_a, details={"marker": "platform"}, platform=True)
        assert not AuditEvent.objects.filter(details__marker="platform").exists()
        assert connection.schema_name == "alpha"  # the caller's schema is back
    with schema_context("public"):
        event = AuditEvent.objects.get(details__marker="platform")
    assert (event.target_type, event.target_id, event.target_label) == (
        "tenant",
        str(tenant_a.pk),
        str(tenant_a),
    )


def test_the_event_rolls_back_with_the_action_it_records(tenant_a):
    with schema_context("alpha"):
        with pytest.raises(RuntimeError), transaction.atomic():
            audit.record("settings.changed", details={"marker": "rolled-back"})
            raise RuntimeError("the action failed")
        assert not AuditEvent.objects.filter(details__marker="rolled-back").exists()


# --- append-only -----------------------------------------------------------------------------------


@pytest.fixture
def event(tenant_a):
    with schema_context("alpha"):
        yield audit.record("settings.changed", details={"marker": "original"})


def test_the_orm_refuses_to_change_or_delete_an_event(event):
    event.action = "contact.deleted"
    with pytest.raises(AppendOnlyError):
        event.save()
    with pytest.raises(AppendOnlyError):
        event.delete()
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.filter(pk=event.pk).update(action="contact.deleted")
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.filter(pk=event.pk).delete()
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.bulk_update([event], ["action"])
    assert AuditEvent.objects.get(pk=event.pk).action == "settings.changed"


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE core_auditevent SET action = 'contact.deleted' WHERE id = %s",
        "DELETE FROM core_auditevent WHERE id = %s",
    ],
)
def test_the_database_refuses_to_change_or_delete_an_event(event, statement):
    refused = pytest.raises(DatabaseError, match="append-only")
    with refused, transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(statement, [event.pk])
    row = AuditEvent.objects.filter(pk=event.pk).values_list("action", "details").get()
    assert row == ("settings.changed", {"marker": "original"})


def _triggers(schema: str) -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT t.tgname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relname = 'core_auditevent' AND NOT t.tgisinternal",
            [schema],
        )
        return [row[0] for row in cursor.fetchall()]


@pytest.mark.parametrize("schema", ["public", "tenant_template", "alpha", "beta"])
def test_every_schema_has_the_append_only_trigger(tenant_a, tenant_b, schema):
    # alpha and beta were cloned from the template (tenants.cloning), not migrated one by one.
    assert _triggers(schema) == ["core_auditevent_append_only"]


def test_a_tenant_onboarded_now_has_the_table_and_the_trigger(db):
    from conftest import PASSWORD
    from onboarding.services import onboard_tenant

    onboard_tenant(slug="gamma", name="Gamma", owner_email="owner@gamma.test", owner_password=PASSWORD)
    assert _triggers("gamma") == ["core_auditevent_append_only"]
    with schema_context("gamma"):
        event = audit.record("settings.changed")
        refused = pytest.raises(DatabaseError, match="append-only")
        with refused, transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("DELETE FROM core_auditevent WHERE id = %s", [event.pk])
