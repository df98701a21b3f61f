"""A tenant schema made by tenants.cloning is the template's twin: same tables, columns, constraint and
index names and definitions, identity sequences of its own, and the template's migration records. A
spare clone (made ahead by refill_spares) is claimed by renaming it, only while it is current."""

from __future__ import annotations

from typing import Any

import pytest
from django.conf import settings
from django.db import connection
from django_tenants.utils import schema_context

from onboarding.services import onboard_tenant
from tenants import cloning
from tenants.models import Tenant
from tenants.pgtools import connect

TEMPLATE = settings.TENANT_BASE_SCHEMA


def catalog(schema: str) -> dict[str, set[tuple[str, ...]]]:
    """Everything about `schema` that must match the template, with the schema's name taken out."""

    def strip(value: object) -> str:
        return str(value).replace(f'"{schema}".', "").replace(f"{schema}.", "")

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname, c.relkind, c.reltoastrelid <> 0 FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s",
            [schema],
        )
        relations = {tuple(str(v) for v in row) for row in cursor.fetchall()}
        cursor.execute(
            "SELECT table_name, column_name, data_type, is_nullable, coalesce(column_default, ''), "
            "is_identity FROM information_schema.columns WHERE table_schema = %s",
            [schema],
        )
        columns = {tuple(strip(v) for v in row) for row in cursor.fetchall()}
        cursor.execute(
            "SELECT cl.relname, co.conname, co.contype, co.convalidated, pg_get_constraintdef(co.oid) "
            "FROM pg_constraint co JOIN pg_class cl ON cl.oid = co.conrelid "
            "JOIN pg_namespace n ON n.oid = cl.relnamespace WHERE n.nspname = %s",
            [schema],
        )
        constraints = {tuple(strip(v) for v in row) for row in cursor.fetchall()}
        cursor.execute("SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = %s", [schema])
        indexes = {(name, definition.replace(f" {schema}.", " ")) for name, definition in cursor.fetchall()}
        # Each sequence is owned by (an identity column of) a table of the same schema.
        cursor.execute(
            "SELECT s.relname, t.relname, a.attname, tn.nspname = sn.nspname FROM pg_class s "
            "JOIN pg_namespace sn ON sn.oid = s.relnamespace "
            "JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = s.oid "
            "AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i') "
            "JOIN pg_class t ON t.oid = d.refobjid JOIN pg_namespace tn ON tn.oid = t.relnamespace "
            "JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = d.refobjsubid "
            "WHERE s.relkind = 'S' AND sn.nspname = %s",
            [schema],
        )
        sequences = {tuple(str(v) for v in row) for row in cursor.fetchall()}
        cursor.execute(
            "SELECT cl.relname, t.tgname, pg_get_triggerdef(t.oid) FROM pg_trigger t "
            "JOIN pg_class cl ON cl.oid = t.tgrelid JOIN pg_namespace n ON n.oid = cl.relnamespace "
            "WHERE n.nspname = %s AND NOT t.tgisinternal",
            [schema],
        )
        triggers = {tuple(strip(v) for v in row) for row in cursor.fetchall()}
    return {
        "relations": relations,
        "columns": columns,
        "constraints": constraints,
        "indexes": indexes,
        "sequences": sequences,
        "triggers": triggers,
    }


def assert_twin(schema: str) -> None:
    template, clone = catalog(TEMPLATE), catalog(schema)
    for part in template:
        assert template[part] == clone[part], part
    assert len(template["indexes"]) > 10
    assert template["sequences"] and all(row[3] == "True" for row in clone["sequences"])


def test_a_cloned_schema_matches_the_template_exactly(db):
    assert_twin("alpha")


def test_a_cloned_schema_has_its_own_sequences_and_the_templates_migrations(db):
    # Saving a tenant clones the template (Tenant.create_schema); onboarding adds only the domain and owner.
    Tenant(schema_name="theta", slug="theta", name="Theta").save(verbosity=0)
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM tenant_template.django_migrations")
        template_migrations = cursor.fetchone()[0]
        cursor.execute("SELECT count(*) FROM theta.django_migrations")
        assert cursor.fetchone()[0] == template_migrations
        cursor.execute("SELECT pg_get_serial_sequence('theta.crm_contact', 'id')")
        assert cursor.fetchone()[0].startswith("theta.")
    with schema_context("theta"):
        from crm.models import Contact

        first = Contact.objects.create(phone="+15550001111")
        assert first.pk == 1


def onboard(slug: str) -> Any:
    return onboard_tenant(
        slug=slug, name=slug.title(), owner_email=f"owner@{slug}.test", owner_password="Sturdy-Pass-42"
    ).tenant


def test_a_claimed_spare_becomes_the_tenant_schema_and_is_the_templates_twin(db):
    assert cloning.refill_spares(target=1) == {"created": 1, "dropped": 0, "ready": 1}
    (spare,) = cloning.spare_schemas()
    assert spare.startswith(cloning.SPARE_PREFIX)
    assert cloning.refill_spares(target=1) == {"created": 0, "dropped": 0, "ready": 1}

    tenant = onboard("iota")

    assert cloning.spare_schemas() == []  # renamed, not copied
    assert_twin("iota")
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_get_serial_sequence('iota.crm_contact', 'id')")
        assert cursor.fetchone()[0] == "iota.crm_contact_id_seq"
    with schema_context(tenant.schema_name):
        from django.contrib.auth import get_user_model

        from crm.models import Contact

        assert get_user_model().objects.get().email == "owner@iota.test"
        assert Contact.objects.create(phone="+15550002222").pk == 1


def test_a_spare_cloned_before_a_migration_is_never_claimed_and_the_refill_replaces_it(db):
    cloning.refill_spares(target=1)
    (stale,) = cloning.spare_schemas()
    with connection.cursor() as cursor:  # the template was migrated after the spare was cloned
        cursor.execute(f"DELETE FROM {stale}.django_migrations WHERE app = 'crm' AND name = '0001_initial'")

    onboard("kappa")  # cloned from the template instead

    assert cloning.spare_schemas() == [stale]
    assert_twin("kappa")
    report = cloning.refill_spares(target=1)
    assert report == {"created": 1, "dropped": 1, "ready": 1}
    assert stale not in cloning.spare_schemas()


def test_a_spare_another_transaction_is_claiming_is_skipped(db):
    spare = f"{cloning.SPARE_PREFIX}000000000001"
    cloning.clone_template_schema(template=TEMPLATE, schema=spare)
    with connect(autocommit=False) as other:  # holds the spare's claim lock, as a concurrent creation would
        held = "SELECT pg_try_advisory_xact_lock(%s, hashtext(%s))"
        assert other.execute(held, [cloning._LOCK_CLASS, spare]).fetchone() == (True,)
        assert cloning.claim_spare(template=TEMPLATE, schema="lambda") is False
        # A refill running elsewhere: this one does nothing rather than clone twice.
        assert other.execute(held, [cloning._LOCK_CLASS, ""]).fetchone() == (True,)
        assert cloning.refill_spares(target=3) == {"created": 0, "dropped": 0, "ready": 0}
    assert cloning.claim_spare(template=TEMPLATE, schema="lambda") is True
    assert cloning.spare_schemas() == []


def test_no_spare_name_can_be_a_tenant_slug(db):
    from onboarding.services import OnboardingError, validate_slug

    with pytest.raises(OnboardingError) as exc:
        validate_slug(f"{cloning.SPARE_PREFIX}abc")
    assert exc.value.code == "invalid_slug"


def test_creating_a_tenant_asks_for_a_new_spare_after_commit(
    db, settings, django_capture_on_commit_callbacks
):
    from tenants.actors import refill_spare_schemas

    settings.TENANT_SPARE_SCHEMAS = 2
    with django_capture_on_commit_callbacks() as callbacks:
        onboard("mu")
    assert refill_spare_schemas.send in callbacks


def test_the_scheduler_and_the_actor_keep_spares_ready(db, settings):
    from tenants.actors import refill_spare_schemas

    assert settings.PERIODIC_JOBS["tenants_refill_spares"][0] == "tenants.actors.refill_spare_schemas"
    settings.TENANT_SPARE_SCHEMAS = 1
    refill_spare_schemas()
    assert len(cloning.spare_schemas()) == 1


def test_a_spare_claimed_elsewhere_after_it_was_listed_is_skipped_not_dropped(db, monkeypatch):
    gone = f"{cloning.SPARE_PREFIX}0000000000ff"  # listed, then renamed by a creation that committed
    monkeypatch.setattr(cloning, "spare_schemas", lambda: [gone])
    assert cloning.claim_spare(template=TEMPLATE, schema="nu") is False
    assert cloning.refill_spares(target=0) == {"created": 0, "dropped": 0, "ready": 0}
