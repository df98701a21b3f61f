"""migrate_platform: tenants whose recorded migrations equal the template's are skipped without Django,
the rest are migrated each on its own (in parallel processes), failures are reported and retried."""

from __future__ import annotations

import io
from typing import Any

import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.db.migrations.recorder import MigrationRecorder
from django.test.utils import CaptureQueriesContext

from tenants.migrating import behind, has_migrations_table, migrate_schema, migrate_tenants, migration_states

TEMPLATE = settings.TENANT_BASE_SCHEMA


def execute(statement: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(statement)


def unapply_sessions(schema: str, *, keep_table: bool = False) -> None:
    """Put `schema` one migration behind the template: sessions.0001_initial no longer recorded (and its
    table gone, so migrating re-creates it; kept, migrating fails with "already exists")."""
    execute(f"DELETE FROM \"{schema}\".django_migrations WHERE app = 'sessions'")
    if not keep_table:
        execute(f'DROP TABLE "{schema}".django_session')


def has_sessions_table(schema: str) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [f'"{schema}".django_session'])
        return bool(cursor.fetchone()[0])


class Recorder:
    """A migrate function that records the schemas it is given, then runs the real migration."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def __call__(self, schema: str, verbosity: int) -> None:
        self.calls.append(schema)
        migrate_schema(schema, verbosity)


def test_up_to_date_tenants_are_skipped_without_any_per_tenant_work(make_tenant: Any) -> None:
    schemas = [make_tenant("mp").schema_name for _ in range(3)]
    recorder = Recorder()
    with CaptureQueriesContext(connection) as queries:
        report = migrate_tenants(schemas, migrate=recorder)
    assert recorder.calls == []
    assert report.up_to_date == schemas
    assert report.migrated == [] and report.failed == {}
    # The catalog check and one statement for all states; nothing per tenant.
    reads = [q["sql"] for q in queries.captured_queries if "django_migrations" in q["sql"]]
    assert len(reads) == 2
    assert all(schema in reads[1] for schema in [TEMPLATE, *schemas])


def test_every_schemas_state_is_read_in_one_statement_per_batch(make_tenant: Any) -> None:
    schemas = [make_tenant("mp").schema_name for _ in range(4)]
    with CaptureQueriesContext(connection) as queries:
        states = migration_states([TEMPLATE, *schemas], batch_size=2)
    reads = [q["sql"] for q in queries.captured_queries if '"django_migrations"' in q["sql"]]
    # 5 schemas, 2 per statement: 2 + 2 + 1; and the catalog check before them.
    assert [read.count("UNION ALL") for read in reads] == [1, 1, 0]
    statements = [q["sql"] for q in queries.captured_queries if not q["sql"].startswith("SET ")]
    assert len(statements) == 1 + 3
    assert set(states) == {TEMPLATE, *schemas}
    assert len({states[schema] for schema in states}) == 1  # all equal to the template's


def test_a_schema_without_migration_records_or_missing_is_behind(make_tenant: Any) -> None:
    tenant = make_tenant("mp")
    execute(f'DROP TABLE "{tenant.schema_name}".django_migrations')
    assert behind([tenant.schema_name, "no_such_schema"], template=TEMPLATE) == [
        tenant.schema_name,
        "no_such_schema",
    ]


def test_a_tenant_behind_is_migrated_and_then_up_to_date(make_tenant: Any) -> None:
    current, stale = make_tenant("mp").schema_name, make_tenant("mp").schema_name
    unapply_sessions(stale)
    recorder = Recorder()
    report = migrate_tenants([current, stale], migrate=recorder)
    assert recorder.calls == [stale]
    assert report.migrated == [stale] and report.up_to_date == [current] and report.failed == {}
    assert has_sessions_table(stale)
    assert behind([current, stale], template=TEMPLATE) == []


def test_a_failing_tenant_is_reported_the_others_migrate_and_a_rerun_retries_only_it(
    make_tenant: Any,
) -> None:
    first, broken, last = (make_tenant("mp").schema_name for _ in range(3))
    unapply_sessions(first)
    unapply_sessions(broken, keep_table=True)  # re-creating its table fails: "already exists"
    unapply_sessions(last)
    out, err = io.StringIO(), io.StringIO()
    # Two worker processes: the parallel path.
    report = migrate_tenants([first, broken, last], jobs=2, stdout=out, stderr=err)
    assert report.migrated == sorted([first, last])
    assert list(report.failed) == [broken]
    assert "already exists" in report.failed[broken]
    assert f"FAILED {broken}" in err.getvalue()
    assert "3/3 done, 1 failed" in out.getvalue()
    assert has_sessions_table(first) and has_sessions_table(last)

    execute(f'DROP TABLE "{broken}".django_session')  # the cause fixed
    recorder = Recorder()
    again = migrate_tenants([first, broken, last], migrate=recorder)
    assert recorder.calls == [broken]
    assert again.migrated == [broken] and again.failed == {}
    assert again.up_to_date == [first, last]


def test_the_command_exits_non_zero_listing_the_failures(make_tenant: Any) -> None:
    good, broken = make_tenant("mp").schema_name, make_tenant("mp").schema_name
    unapply_sessions(good)
    unapply_sessions(broken, keep_table=True)
    out, err = io.StringIO(), io.StringIO()
    with pytest.raises(CommandError, match="1 tenant"):
        call_command("migrate_platform", schemas=[good, broken], jobs=1, verbosity=0, stdout=out, stderr=err)
    assert "1 migrated, 1 failed" in out.getvalue()
    assert f"{broken}: " in err.getvalue() and "already exists" in err.getvalue()
    assert behind([good, broken], template=TEMPLATE) == [broken]


def test_the_command_rejects_zero_jobs(make_tenant: Any) -> None:
    with pytest.raises(CommandError, match="--jobs"):
        call_command("migrate_platform", jobs=0, verbosity=0)


def test_migrating_a_tenant_lists_no_tables_of_the_whole_catalog(make_tenant: Any) -> None:
    # Django's recorder lists every visible table (a scan of all tenants' relations) before each use;
    # here it looks its table up by name in the tenant's schema.
    stale = make_tenant("mp").schema_name
    unapply_sessions(stale)
    with CaptureQueriesContext(connection) as queries:
        migrate_schema(stale, 0)
    assert has_sessions_table(stale)
    assert not [q["sql"] for q in queries.captured_queries if "pg_table_is_visible" in q["sql"]]
    assert any("to_regclass" in q["sql"] for q in queries.captured_queries)
    assert MigrationRecorder.has_table is not has_migrations_table  # put back afterwards


def test_the_recorder_table_check_is_per_schema(make_tenant: Any) -> None:
    schema = make_tenant("mp").schema_name
    with connection.cursor():
        connection.set_schema(schema)
        assert has_migrations_table(MigrationRecorder(connection)) is True
        execute(f'DROP TABLE "{schema}".django_migrations')
        # public has a django_migrations table on the search path; the schema has none.
        assert has_migrations_table(MigrationRecorder(connection)) is False
    connection.set_schema_to_public()
