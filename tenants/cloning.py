"""Fast tenant schemas: copy the migrated template schema's tables, constraints, indexes and rows.

django-tenants' clone_schema (a large PL/pgSQL function) takes ~200 ms per schema here; reading the
template's catalog once per process and replaying it as one batch of DDL takes a fraction of that.
Constraint and index names are kept exactly, so later migrations that refer to them by name work.
The template's django_migrations rows are copied with the data, so the new schema is fully migrated.
"""

from __future__ import annotations

from dataclasses import dataclass

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
    identity_columns: tuple[tuple[str, str], ...]
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
        cursor.execute(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE table_schema = %s AND is_identity = 'YES'",
            [template],
        )
        identity_columns = tuple((r[0], r[1]) for r in cursor.fetchall())
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
    for table, column in plan.identity_columns:
        if table in plan.data_tables:
            statements.append(
                sql.SQL("SELECT setval(pg_get_serial_sequence({}, {}), (SELECT max({}) FROM {}.{}))").format(
                    sql.Literal(f'"{schema}"."{table}"'),
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
    with connection.cursor() as cursor:
        cursor.execute(sql.SQL(";\n").join(statements).as_string(cursor.connection))
