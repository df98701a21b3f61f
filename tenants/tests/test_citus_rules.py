"""The rules Citus schema-based sharding sets for tenant schemas (docs/scaling.md), checked on plain
PostgreSQL against a tenant schema the product created, so a migration or a clone change that would break
the move to Citus fails here first:

- the schema is created on its own, then its tables (Citus refuses a distributed schema and its tables
  in one CREATE SCHEMA statement);
- foreign keys stay inside the schema: none to another tenant or to public (Citus allows only the same
  distributed schema or reference tables), and none from any other schema into it;
- no views, functions, foreign tables or inheritance inside a tenant schema;
- sequences are bigint, except those of Django's own contrib apps (int, fine while every write goes
  through the coordinator; listed so a new one fails);
- no statement of the clone names another tenant schema (it copies from the template only);
- every table has a primary key (the replica identity a logical-replication schema move needs).
"""

from __future__ import annotations

from django.conf import settings
from django.db import connection

from tenants import cloning

TEMPLATE = settings.TENANT_BASE_SCHEMA
TENANT = "alpha"  # made by onboarding in the session fixture, as production makes tenants
# Django's contrib models use AutoField (int): changing them means swapping the user model. Citus
# accepts int identities on schema-sharded tables; only inserts on workers (query-from-any-node) need
# bigint, and this product writes through the coordinator only.
INT_SEQUENCES_ALLOWED = {
    "auth_group_id_seq",
    "auth_permission_id_seq",
    "auth_user_id_seq",
    "django_admin_log_id_seq",
    "django_content_type_id_seq",
}


def rows(query: str, params: list[object]) -> list[tuple[object, ...]]:
    with connection.cursor() as cursor:
        cursor.execute(query, params)
        return list(cursor.fetchall())


def leaving_foreign_keys(schema: str) -> list[tuple[object, ...]]:
    return rows(
        "SELECT c1.relname, co.conname, n2.nspname, c2.relname FROM pg_constraint co "
        "JOIN pg_class c1 ON c1.oid = co.conrelid JOIN pg_namespace n1 ON n1.oid = c1.relnamespace "
        "JOIN pg_class c2 ON c2.oid = co.confrelid JOIN pg_namespace n2 ON n2.oid = c2.relnamespace "
        "WHERE co.contype = 'f' AND n1.nspname = %s AND n2.nspname <> n1.nspname",
        [schema],
    )


def test_foreign_keys_of_a_tenant_stay_inside_its_schema(db):
    assert leaving_foreign_keys(TENANT) == []
    entering = rows(
        "SELECT n1.nspname, c1.relname, co.conname FROM pg_constraint co "
        "JOIN pg_class c1 ON c1.oid = co.conrelid JOIN pg_namespace n1 ON n1.oid = c1.relnamespace "
        "JOIN pg_class c2 ON c2.oid = co.confrelid JOIN pg_namespace n2 ON n2.oid = c2.relnamespace "
        "WHERE co.contype = 'f' AND n2.nspname = %s AND n1.nspname <> n2.nspname",
        [TENANT],
    )
    assert entering == []
    inside = rows(
        "SELECT count(*) FROM pg_constraint co JOIN pg_class c ON c.oid = co.conrelid "
        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE co.contype = 'f' AND n.nspname = %s",
        [TENANT],
    )
    assert inside[0][0] > 10  # the check looked at a real schema


def test_a_foreign_key_to_another_schema_is_caught(db):
    with connection.cursor() as cursor:  # rolled back with the test
        cursor.execute(
            "ALTER TABLE alpha.crm_tag ADD COLUMN tenant_id bigint "
            "CONSTRAINT crm_tag_tenant_fk REFERENCES public.tenants_tenant (id)"
        )
    assert leaving_foreign_keys(TENANT) == [("crm_tag", "crm_tag_tenant_fk", "public", "tenants_tenant")]


def test_no_public_table_references_any_tenant_schema(db):
    # Public tables stay on the coordinator (or become reference tables): a foreign key from them into a
    # distributed schema is refused by Citus.
    assert (
        rows(
            "SELECT c1.relname, co.conname, n2.nspname FROM pg_constraint co "
            "JOIN pg_class c1 ON c1.oid = co.conrelid JOIN pg_namespace n1 ON n1.oid = c1.relnamespace "
            "JOIN pg_class c2 ON c2.oid = co.confrelid JOIN pg_namespace n2 ON n2.oid = c2.relnamespace "
            "WHERE co.contype = 'f' AND n1.nspname = 'public' AND n2.nspname <> 'public'",
            [],
        )
        == []
    )


def test_a_tenant_schema_holds_only_tables_indexes_and_sequences(db):
    kinds = rows(
        "SELECT c.relkind, count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s GROUP BY c.relkind",
        [TENANT],
    )
    # r table, i index, S sequence; no v/m views, f foreign tables or p partitioned tables.
    assert {kind for kind, _ in kinds} == {"r", "i", "S"}
    assert (
        rows(
            "SELECT p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
            "WHERE n.nspname = %s",
            [TENANT],
        )
        == []
    )
    assert (
        rows(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid IN (i.inhrelid, i.inhparent) "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s",
            [TENANT],
        )
        == []
    )


def test_tenant_sequences_are_bigint_but_for_djangos_contrib_tables(db):
    narrow = rows(
        "SELECT c.relname FROM pg_sequence s JOIN pg_class c ON c.oid = s.seqrelid "
        "JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND s.seqtypid <> 'bigint'::regtype ORDER BY c.relname",
        [TENANT],
    )
    assert {name for (name,) in narrow} <= INT_SEQUENCES_ALLOWED
    primary_keys = rows(
        "SELECT c.relname, format_type(a.atttypid, a.atttypmod) FROM pg_constraint co "
        "JOIN pg_class c ON c.oid = co.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
        "JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = co.conkey[1] "
        "WHERE co.contype = 'p' AND n.nspname = %s AND a.attidentity <> ''",
        [TENANT],
    )
    assert primary_keys
    narrow_keys = {table for table, kind in primary_keys if kind != "bigint"}
    assert {f"{table}_id_seq" for table in narrow_keys} <= INT_SEQUENCES_ALLOWED


def test_the_clone_creates_the_schema_alone_then_its_tables_from_the_template_only(db):
    statements = [
        statement.as_string(connection.connection)
        for statement in cloning.clone_statements(template=TEMPLATE, schema="omicron")
    ]
    assert statements[0] == 'CREATE SCHEMA "omicron"'
    assert sum(1 for s in statements if s.upper().startswith("CREATE SCHEMA")) == 1
    assert any(s.startswith('CREATE TABLE "omicron".') for s in statements[1:])
    for statement in statements:
        # Only the new schema, the template (read) and public (search_path, trigger functions) appear.
        for other in ("alpha", "beta"):
            assert f'"{other}"' not in statement and f" {other}." not in statement
        assert "CREATE VIEW" not in statement.upper() and "CREATE FUNCTION" not in statement.upper()


def test_every_tenant_table_has_a_primary_key(db):
    # citus_schema_move copies a schema with logical replication by default: UPDATE and DELETE during the
    # move need a replica identity, which the primary key provides.
    assert (
        rows(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relkind = 'r' AND NOT EXISTS "
            "(SELECT 1 FROM pg_constraint co WHERE co.conrelid = c.oid AND co.contype = 'p')",
            [TENANT],
        )
        == []
    )
