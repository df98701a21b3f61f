"""Migrating every tenant in time linear in the tenants, not in tenants times the catalog.

Django's migrate introspects the catalog of the schema it migrates (the recorder's table check, the plan,
content types and permissions after it): with thousands of schemas each of those scans a catalog of
hundreds of thousands of relations, so a no-op over 1,000 tenants took minutes. Here the recorded state
of every tenant (its `django_migrations` rows) is read in one statement per batch of schemas and compared
with the template's, which has just been migrated: a tenant whose records equal the template's is up to
date and is skipped without touching Django. Only the others are migrated, in parallel processes, each
tenant on its own: one that fails is reported and the rest go on. Running it again retries exactly the
tenants still behind, since the ones migrated now match the template.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import time
import traceback
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from django.conf import settings
from django.core.management import call_command
from django.db import connections
from django.db.migrations.recorder import MigrationRecorder
from django_tenants.utils import get_public_schema_name
from psycopg import sql

from tenants.db import connection
from tenants.selectors import tenant_schemas

# Schemas read per statement: each one locks a table (AccessShareLock) until the statement ends, and the
# lock table is shared by the whole server (max_locks_per_transaction times max_connections).
BATCH_SIZE = 200
# A digest of the recorded migrations; two schemas with the same digest have the same set.
_STATE = (
    "SELECT {schema}::text, count(*), "
    "md5(coalesce(string_agg(app || '.' || name, ',' ORDER BY app, name), '')) FROM {table}"
)

MigrateOne = Callable[[str, int], None]


class Writer(Protocol):
    def write(self, text: str) -> Any: ...


@dataclass
class Report:
    total: int = 0
    up_to_date: list[str] = field(default_factory=list)
    migrated: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    def summary(self) -> str:
        return (
            f"{self.total} tenants: {len(self.up_to_date)} up to date (skipped), "
            f"{len(self.migrated)} migrated, {len(self.failed)} failed in {self.seconds:.1f} s"
        )


def all_tenant_schemas() -> list[str]:
    """Every tenant schema, suspended and deleting ones too (a restore must find its schema current)."""
    return sorted(schema for schema in tenant_schemas() if schema != get_public_schema_name())


def migration_states(schemas: Sequence[str], *, batch_size: int = BATCH_SIZE) -> dict[str, tuple[int, str]]:
    """Schema → (number of recorded migrations, digest of them), one UNION ALL statement per batch.

    A schema that does not exist or has no django_migrations table is left out (it is behind)."""
    if not schemas:
        return {}
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relname = 'django_migrations' AND c.relkind IN ('r', 'p') AND n.nspname = ANY(%s)",
            [list(schemas)],
        )
        present = {row[0] for row in cursor.fetchall()}
        readable = [schema for schema in schemas if schema in present]
        states: dict[str, tuple[int, str]] = {}
        for start in range(0, len(readable), batch_size):
            batch = readable[start : start + batch_size]
            statement = sql.SQL(" UNION ALL ").join(
                sql.SQL(_STATE).format(
                    schema=sql.Literal(schema),
                    table=sql.Identifier(schema, "django_migrations"),
                )
                for schema in batch
            )
            cursor.execute(statement.as_string(cursor.connection))
            for schema, count, digest in cursor.fetchall():
                states[schema] = (int(count), digest)
    return states


def behind(schemas: Sequence[str], *, template: str, batch_size: int = BATCH_SIZE) -> list[str]:
    """The schemas whose recorded migrations differ from the template's (or cannot be read)."""
    states = migration_states([template, *schemas], batch_size=batch_size)
    reference = states.get(template)
    if reference is None:
        raise RuntimeError(f'the template schema "{template}" has no django_migrations table')
    return [schema for schema in schemas if states.get(schema) != reference]


def has_migrations_table(recorder: Any) -> bool:
    """MigrationRecorder.has_table by name in the connection's schema: an index lookup, where Django lists
    every visible table (a scan of the whole catalog, with all tenants' relations, each time)."""
    if recorder._has_table:
        return True
    schema = getattr(recorder.connection, "schema_name", None) or get_public_schema_name()
    name = sql.Identifier(schema, recorder.Migration._meta.db_table)
    with recorder.connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [name.as_string(cursor.connection)])
        recorder._has_table = bool(cursor.fetchone()[0])
    return recorder._has_table


@contextlib.contextmanager
def recorder_checks_by_name() -> Iterator[None]:
    """Within: Django's migration recorder checks its table with has_migrations_table."""
    original = MigrationRecorder.has_table
    setattr(MigrationRecorder, "has_table", has_migrations_table)  # noqa: B010  (mypy: no assigning methods)
    try:
        yield
    finally:
        setattr(MigrationRecorder, "has_table", original)  # noqa: B010


def migrate_schema(schema: str, verbosity: int) -> None:
    """django-tenants' migration of one tenant schema (all of Django's migrate, in that schema), with the
    recorder's table check made per schema (has_migrations_table)."""
    with recorder_checks_by_name():
        call_command(
            "migrate_schemas",
            tenant=True,
            schema_name=schema,
            interactive=False,
            verbosity=verbosity,
            executor="standard",
        )


def _run_one(migrate: MigrateOne, schema: str, verbosity: int) -> tuple[str, str]:
    """Migrate one schema; the error as text ('' when it worked). The connection is left clean."""
    try:
        migrate(schema, verbosity)
        return schema, ""
    except Exception as exc:  # any failure of one tenant is reported, the rest go on
        detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        return schema, detail or type(exc).__name__
    finally:
        connections.close_all()


# Set in the parent before forking; read by the pool's workers (a function is not always picklable).
_worker: dict[str, Any] = {}


def _pool_task(schema: str) -> tuple[str, str]:
    return _run_one(_worker["migrate"], schema, _worker["verbosity"])


def _results(
    schemas: list[str], *, jobs: int, migrate: MigrateOne, verbosity: int
) -> Iterable[tuple[str, str]]:
    if jobs <= 1 or len(schemas) <= 1:
        for schema in schemas:
            yield _run_one(migrate, schema, verbosity)
        return
    # Forked workers inherit the loaded apps and settings; no connection may be shared across the fork.
    connections.close_all()
    _worker.update(migrate=migrate, verbosity=verbosity)
    context = multiprocessing.get_context("fork")
    with context.Pool(processes=min(jobs, len(schemas))) as pool:
        yield from pool.imap_unordered(_pool_task, schemas)


def migrate_tenants(
    schemas: Sequence[str] | None = None,
    *,
    template: str | None = None,
    jobs: int = 1,
    verbosity: int = 1,
    stdout: Writer | None = None,
    stderr: Writer | None = None,
    migrate: MigrateOne = migrate_schema,
    batch_size: int = BATCH_SIZE,
) -> Report:
    """Migrate the tenants (all by default) whose recorded migrations differ from the template's.

    The template must be migrated first (migrate_platform does). Progress goes to `stdout`, each
    failure with its error to `stderr`; the report lists all of them."""
    started = time.perf_counter()
    template = template or settings.TENANT_BASE_SCHEMA
    schemas = list(all_tenant_schemas() if schemas is None else schemas)
    todo = behind(schemas, template=template, batch_size=batch_size)
    pending = set(todo)
    report = Report(total=len(schemas), up_to_date=[s for s in schemas if s not in pending])
    connection.set_schema_to_public()
    if stdout is not None and verbosity >= 1:
        stdout.write(
            f"{len(report.up_to_date)} of {len(schemas)} tenants up to date; migrating {len(todo)} "
            f"in up to {jobs} process(es)\n"
        )
    every = max(1, len(todo) // 20)
    for done, (schema, error) in enumerate(
        _results(todo, jobs=jobs, migrate=migrate, verbosity=verbosity), 1
    ):
        if error:
            report.failed[schema] = error
            if stderr is not None:
                stderr.write(f"FAILED {schema}: {error}\n")
        else:
            report.migrated.append(schema)
        if stdout is not None and verbosity >= 1 and (done % every == 0 or done == len(todo)):
            stdout.write(f"{done}/{len(todo)} done, {len(report.failed)} failed\n")
    connection.set_schema_to_public()
    report.migrated.sort()
    report.seconds = time.perf_counter() - started
    return report
