"""A tenant schema made by tenants.cloning is the template's twin: same tables, columns, constraint and
index names and definitions, identity sequences of its own, and the template's migration records."""

from __future__ import annotations

from django.conf import settings
from django.db import connection
from django_tenants.utils import schema_context

from tenants.models import Tenant


def catalog(schema: str) -> dict[str, set[tuple[str, ...]]]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT table_name, column_name, data_type, is_nullable, coalesce(column_default, ''), "
            "is_identity FROM information_schema.columns WHERE table_schema = %s",
            [schema],
        )
        columns = {tuple(str(v) for v in row) for row in cursor.fetchall()}
        cursor.execute(
            "SELECT cl.relname, co.conname, pg_get_constraintdef(co.oid) FROM pg_constraint co "
            "JOIN pg_class cl ON cl.oid = co.conrelid JOIN pg_namespace n ON n.oid = cl.relnamespace "
            "WHERE n.nspname = %s",
            [schema],
        )
        constraints = {
            (table, name, definition.replace(f"{schema}.", ""))
            for table, name, definition in cursor.fetchall()
        }
        cursor.execute("SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = %s", [schema])
        indexes = {(name, definition.replace(f" {schema}.", " ")) for name, definition in cursor.fetchall()}
    return {"columns": columns, "constraints": constraints, "indexes": indexes}


def test_a_cloned_schema_matches_the_template_exactly(db):
    template = catalog(settings.TENANT_BASE_SCHEMA)
    clone = catalog("alpha")
    assert template["columns"] == clone["columns"]
    assert template["constraints"] == clone["constraints"]
    assert template["indexes"] == clone["indexes"]
    assert len(template["indexes"]) > 10


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
