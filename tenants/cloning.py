"""Fast tenant schemas: copy the migrated template schema's tables, constraints, indexes and rows.

django-tenants' clone_schema (a large PL/pgSQL function) takes ~200 ms per schema here; reading the
template's catalog once per process and replaying it as one batch of DDL takes a fraction of that.
Constraint and index names are kept exactly, so later migrations that refer to them by name work.
The template's django_migrations rows are copied with the data, so the new schema is fully migrated.

What a clone still costs is mostly disk: PostgreSQL (before 17) fsyncs every new B-tree index file when
its build ends, and a tenant schema has ~270 of them (indexes and TOAST indexes), so a clone takes one
fsync per index whatever the DDL looks like. Creating a tenant therefore claims a *spare*: a schema
cloned earlier by a background job (`refill_spares`, the `tenants.actors.refill_spare_schemas` actor)
and renamed to the tenant's slug in the creating transaction, a few catalog rows. A spare is claimed only
if its recorded migrations are the template's (a spare cloned before a migration is dropped by the next
refill); with none ready, creation clones as before. Spare names (`tenant_spare_<hex>`) contain an
underscore, which no tenant slug can.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from psycopg import sql

from tenants.db import connection


@dataclass(frozen=True)
class Blueprint:
    version: tuple[int, int]
    tables: tuple[str, ...]
    constraints: tuple[tuple[str, str, str, str], ...]  # table, name, type, definition
    indexes: tuple[str, ...]  # CREATE INDEX statements naming the template schema
    data_tables: tuple[str, ...]
    identity_columns: tuple[tuple[str, str, str], ...]  # table, column, its sequence's name
    # CREATE TRIGGER statements, tables unqualified (e.g. the audit log's append-only trigger)
    triggers: tuple[str, ...] = ()


_cache: dict[str, Blueprint] = {}


def _version(cursor: object, template: str) -> tuple[int, int]:
    cursor.execute(  # type: ignore[attr-defined]
        sql.SQL("SELECT count(*), coalesce(max(id), 0) FROM {}.django_migrations").format(
            sql.Identifier(template)
        )
    )
    count, last = cursor.fetchone()  # type: ignore[attr-defined]
    return int(count), int(last)


def blueprint(template: str) -> Blueprint:
    with transaction.atomic(), connection.cursor() as cursor:
        version = _version(cursor, template)
        cached = _cache.get(template)
        if cached and cached.version == version:
            return cached
        cursor.execute(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relkind IN ('r', 'p') ORDER BY c.relname",
            [template],
        )
        tables = tuple(row[0] for row in cursor.fetchall())
        # Definitions rendered with only the template on the search path come out unqualified, so
        # replayed inside the new schema they point at the new schema's tables.
        cursor.execute("SELECT set_config('search_path', %s, true)", [template])
        cursor.execute(
            "SELECT cl.relname, co.conname, co.contype, pg_get_constraintdef(co.oid) "
            "FROM pg_constraint co JOIN pg_class cl ON cl.oid = co.conrelid "
            "JOIN pg_namespace n ON n.oid = cl.relnamespace "
            "WHERE n.nspname = %s AND co.contype IN ('p', 'u', 'c', 'x', 'f') "
            "ORDER BY CASE co.contype WHEN 'f' THEN 1 ELSE 0 END, cl.relname, co.conname",
            [template],
        )
        constraints = tuple((r[0], r[1], r[2], r[3]) for r in cursor.fetchall())
        # CREATE TABLE ... LIKE copies no triggers; rendered here with the template on the search path,
        # their table names come out unqualified and functions elsewhere (public) qualified.
        cursor.execute(
            "SELECT pg_get_triggerdef(t.oid, true) FROM pg_trigger t JOIN pg_class cl ON cl.oid = t.tgrelid "
            "JOIN pg_namespace n ON n.oid = cl.relnamespace "
            "WHERE n.nspname = %s AND NOT t.tgisinternal ORDER BY cl.relname, t.tgname",
            [template],
        )
        triggers = tuple(row[0] for row in cursor.fetchall())
        cursor.execute(
            "SELECT pg_get_indexdef(i.indexrelid) FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid "
            "JOIN pg_namespace n ON n.oid = ic.relnamespace "
            "WHERE n.nspname = %s "
            "AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid) "
            "ORDER BY ic.relname",
            [template],
        )
        indexes = tuple(row[0] for row in cursor.fetchall())
        # pg_attribute, not information_schema.columns: that view's joins grow with the whole catalog.
        cursor.execute(
            "SELECT cl.relname, a.attname, s.relname FROM pg_attribute a "
            "JOIN pg_class cl ON cl.oid = a.attrelid "
            "JOIN pg_namespace n ON n.oid = cl.relnamespace "
            "JOIN pg_depend d ON d.refclassid = 'pg_class'::regclass AND d.refobjid = cl.oid "
            "AND d.refobjsubid = a.attnum AND d.classid = 'pg_class'::regclass AND d.deptype = 'i' "
            "JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S' "
            "WHERE n.nspname = %s AND a.attidentity <> '' AND a.attnum > 0 AND NOT a.attisdropped "
            "ORDER BY cl.relname, a.attname",
            [template],
        )
        identity_columns = tuple((r[0], r[1], r[2]) for r in cursor.fetchall())
        cursor.execute("SELECT set_config('search_path', 'public', true)")
        data_tables = []
        for table in tables:
            cursor.execute(
                sql.SQL("SELECT EXISTS (SELECT 1 FROM {}.{})").format(
                    sql.Identifier(template), sql.Identifier(table)
                )
            )
            if cursor.fetchone()[0]:
                data_tables.append(table)
    result = Blueprint(version, tables, constraints, indexes, tuple(data_tables), identity_columns, triggers)
    _cache[template] = result
    return result


def clone_template_schema(*, template: str, schema: str) -> None:
    """Create `schema` as a copy of `template` (structure and rows). Runs in the caller's transaction."""
    statements = clone_statements(template=template, schema=schema)
    with connection.cursor() as cursor:
        cursor.execute(sql.SQL(";\n").join(statements).as_string(cursor.connection))


def clone_statements(*, template: str, schema: str) -> list[sql.Composable]:
    """The statements that copy `template` into a new `schema`, in order, each one command: the schema
    on its own (Citus refuses a distributed schema created together with its tables), then its tables."""
    plan = blueprint(template)
    new, old = sql.Identifier(schema), sql.Identifier(template)
    statements: list[sql.Composable] = [sql.SQL("CREATE SCHEMA {}").format(new)]
    for table in plan.tables:
        statements.append(
            sql.SQL(
                "CREATE TABLE {}.{} (LIKE {}.{} INCLUDING DEFAULTS INCLUDING IDENTITY INCLUDING GENERATED "
                "INCLUDING STORAGE INCLUDING COMMENTS)"
            ).format(new, sql.Identifier(table), old, sql.Identifier(table))
        )
    for table in plan.data_tables:
        statements.append(
            sql.SQL("INSERT INTO {}.{} OVERRIDING SYSTEM VALUE SELECT * FROM {}.{}").format(
                new, sql.Identifier(table), old, sql.Identifier(table)
            )
        )
    for table, column, sequence in plan.identity_columns:
        qualified = sql.Literal(f'"{schema}"."{table}"')
        if sequence != f"{table}_{column}_seq":
            # A table renamed by a migration keeps its old sequence name; LIKE would name the copy's
            # sequence after the new table name. Rename it so the clone stays the template's twin.
            statements.append(
                sql.SQL(
                    "DO $clone$ BEGIN EXECUTE format('ALTER SEQUENCE %s RENAME TO %I', "
                    "pg_get_serial_sequence({}, {}), {}); END $clone$"
                ).format(qualified, sql.Literal(column), sql.Literal(sequence))
            )
        if table in plan.data_tables:
            statements.append(
                sql.SQL("SELECT setval(pg_get_serial_sequence({}, {}), (SELECT max({}) FROM {}.{}))").format(
                    qualified,
                    sql.Literal(column),
                    sql.Identifier(column),
                    new,
                    sql.Identifier(table),
                )
            )
    statements.append(sql.SQL("SET LOCAL search_path = {}, public").format(new))
    for table, name, _kind, definition in plan.constraints:
        statements.append(
            sql.SQL("ALTER TABLE {}.{} ADD CONSTRAINT {} {}").format(
                new, sql.Identifier(table), sql.Identifier(name), sql.SQL(definition)
            )
        )
    # pg_get_indexdef always qualifies the table; schema names here are plain identifiers (no quoting).
    for definition in plan.indexes:
        statements.append(sql.SQL(definition.replace(f" ON {template}.", f" ON {schema}.", 1)))
    # After the rows are copied: an append-only trigger must not see the copy as writes it refuses.
    statements.extend(sql.SQL(definition) for definition in plan.triggers)
    statements.append(sql.SQL("SET LOCAL search_path = public"))
    return statements


SPARE_PREFIX = "tenant_spare_"
# pg_advisory_xact_lock(key1, key2) namespace for spares: key2 is hashtext(spare name), 0 for the refill.
_LOCK_CLASS = 200_020
_MIGRATIONS_DIGEST = (
    "SELECT md5(coalesce(string_agg(app || '.' || name, ',' ORDER BY app, name), '')) FROM {}"
)


def spare_schemas() -> list[str]:
    """The spare schemas that exist (committed), oldest name first."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT nspname FROM pg_namespace WHERE starts_with(nspname, %s) ORDER BY nspname", [SPARE_PREFIX]
        )
        return [row[0] for row in cursor.fetchall()]


def _lock(cursor: object, name: str) -> bool:
    """Try to take `name`'s transaction-scoped advisory lock (released at commit or rollback)."""
    cursor.execute(  # type: ignore[attr-defined]
        "SELECT pg_try_advisory_xact_lock(%s, hashtext(%s))", [_LOCK_CLASS, name]
    )
    return bool(cursor.fetchone()[0])  # type: ignore[attr-defined]


def _exists(cursor: object, schema: str) -> bool:
    cursor.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", [schema])  # type: ignore[attr-defined]
    return cursor.fetchone() is not None  # type: ignore[attr-defined]


def _is_current(cursor: object, *, template: str, spare: str) -> bool:
    """Whether `spare` still exists and records exactly the template's migrations."""
    if not _exists(cursor, spare):
        return False  # claimed (renamed) or dropped by a transaction that committed since we listed it
    digest = sql.SQL(_MIGRATIONS_DIGEST)
    cursor.execute(  # type: ignore[attr-defined]
        sql.SQL("SELECT ({}) = ({})").format(
            digest.format(sql.Identifier(template, "django_migrations")),
            digest.format(sql.Identifier(spare, "django_migrations")),
        )
    )
    return bool(cursor.fetchone()[0])  # type: ignore[attr-defined]


def claim_spare(*, template: str, schema: str) -> bool:
    """Rename a current spare schema to `schema` in the caller's transaction; False if none is ready.

    Each spare is taken under its advisory lock, so two concurrent creations never claim the same one;
    the rename is undone with the caller's transaction if that rolls back."""
    with connection.cursor() as cursor:
        for spare in spare_schemas():
            if not _lock(cursor, spare) or not _is_current(cursor, template=template, spare=spare):
                continue
            cursor.execute(
                sql.SQL("ALTER SCHEMA {} RENAME TO {}").format(sql.Identifier(spare), sql.Identifier(schema))
            )
            return True
    return False


def refill_spares(*, template: str | None = None, target: int | None = None) -> dict[str, int]:
    """Drop stale spares and clone new ones until `target` (TENANT_SPARE_SCHEMAS) current spares exist.

    Each spare is created or dropped in its own transaction, so creations can claim it at once. A second
    refill running at the same time returns without doing anything."""
    template = template or settings.TENANT_BASE_SCHEMA
    target = settings.TENANT_SPARE_SCHEMAS if target is None else target
    report = {"created": 0, "dropped": 0, "ready": 0}
    while True:
        with transaction.atomic(), connection.cursor() as cursor:
            if not _lock(cursor, ""):
                return report  # another refill is running
            ready = 0
            for spare in spare_schemas():
                if _is_current(cursor, template=template, spare=spare):
                    ready += 1  # not locked: a creation may claim it while this refill clones
                elif _lock(cursor, spare) and _exists(cursor, spare):  # stale, not just claimed
                    cursor.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(spare)))
                    report["dropped"] += 1
            report["ready"] = ready
            if ready >= target:
                return report
            clone_template_schema(template=template, schema=f"{SPARE_PREFIX}{secrets.token_hex(6)}")
            report["created"] += 1
            report["ready"] += 1
