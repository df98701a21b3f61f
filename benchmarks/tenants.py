"""Tenants at scale: creation, the catalog, a no-op and a real migrate_platform at 200 and 1,000 tenants.

make bench BENCH_ARGS=tenants   (BENCH_TENANTS=200,1000 by default: one database, tenants are created
up to each count in turn and everything is measured at each. BENCH_KEEP=1 keeps the database of an
earlier run and goes on from its tenants.)

At each count:
- creation p50/p95 (`onboard_tenant`: schema, domain, owner) of the last BENCH_SAMPLE (100) tenants
  before the count, made one at a time (at ~N existing tenants), half from a spare schema (one made
  untimed just before each, as the background refill does between sign-ups: what a signing-up owner
  waits for) and half by cloning the template (no spare ready); the ones before them are made by
  BENCH_FILL_PROCESSES (2) processes in parallel, untimed, to reach 1,000 sooner. No password hashing in
  creation: the owner gets a hash made once beforehand; hashing with the configured hasher is timed
  apart;
- the catalog: relations in pg_class, and one tenant's (its schema's by kind, and its TOAST tables and
  their indexes);
- no-op `migrate_platform` (every tenant up to date), and the one statement per batch reading every
  schema's recorded migrations;
- a real migration adding a column to every tenant: a throwaway migration written at run time into a
  copy of one tenant app's migrations in a temporary directory (MIGRATION_MODULES points the app at it),
  so `migrate_platform` runs exactly what a deploy runs: the template, then every tenant behind it
  through Django's migrate, in parallel processes. Nothing is written into the repository.
- the old no-op `migrate_schemas` (all tenants, multiprocessing executor) for comparison, at counts up
  to BENCH_BASELINE_MAX (default 200: at 1,000 tenants it took 386 s). BENCH_REAL_MIGRATE_MAX leaves the
  real migration out above that count.

Targets (issue 20): no-op migrate_platform over 1,000 tenants ≤ 60 s; creation p95 ≤ 0.2 s at 1,000.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import setup_django, summary_ms

MIGRATED_APP = "crm"
MIGRATED_TABLE = "crm_contact"
PASSWORD = "Sturdy-Pass-42"


def _counts() -> list[int]:
    raw = os.environ.get("BENCH_TENANTS", "200,1000")
    return sorted({int(part) for part in raw.split(",") if part.strip()})


def _scalar(query: str, params: list[Any] | None = None) -> Any:
    from tenants.db import connection

    with connection.cursor() as cursor:
        cursor.execute(query, params or [])
        return cursor.fetchone()[0]


def _catalog() -> dict[str, Any]:
    from tenants.db import connection

    relations = int(_scalar("SELECT count(*) FROM pg_class"))
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relkind, count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s GROUP BY c.relkind ORDER BY c.relkind",
            ["bench0000"],
        )
        kinds = {kind: int(n) for kind, n in cursor.fetchall()}
    # A tenant's relations: its schema's, plus its tables' TOAST tables and their indexes (in pg_toast).
    toast = (
        "SELECT c.reltoastrelid FROM pg_class c WHERE c.relnamespace = to_regnamespace(%s) "
        "AND c.reltoastrelid <> 0"
    )
    per_tenant = int(
        _scalar(
            f"SELECT count(*) FROM pg_class c WHERE c.relnamespace = to_regnamespace(%s) "
            f"OR c.oid IN ({toast}) "
            f"OR c.oid IN (SELECT indexrelid FROM pg_index WHERE indrelid IN ({toast}))",
            ["bench0000"] * 3,
        )
    )
    return {
        "pg_class": relations,
        "per_tenant": per_tenant,
        "in_schema_by_kind": kinds,
        "in_schema": sum(kinds.values()),
    }


def _make(index: int, password_hash: str) -> float:
    from onboarding.services import onboard_tenant

    started = time.perf_counter()
    onboard_tenant(
        slug=f"bench{index:04d}",
        name=f"Bench {index}",
        owner_email=f"owner{index}@bench.test",
        owner_password_hash=password_hash,
    )
    return time.perf_counter() - started


_fill_hash: dict[str, str] = {}


def _fill_one(index: int) -> float:
    return _make(index, _fill_hash["hash"])


def _fill(start: int, stop: int, password_hash: str, *, processes: int) -> None:
    """Tenants start..stop-1, made by `processes` in parallel, untimed: only to reach the count sooner."""
    from django.db import connections

    began = time.perf_counter()
    connections.close_all()
    _fill_hash["hash"] = password_hash
    with multiprocessing.get_context("fork").Pool(processes) as pool:
        for done, _ in enumerate(pool.imap_unordered(_fill_one, range(start, stop), 5), 1):
            if done % 100 == 0:
                print(f"  {start + done} tenants made", flush=True)
    print(f"  filler: {stop - start} tenants by {processes} processes in {time.perf_counter() - began:.0f} s")


def _create_both_paths(
    start: int, stop: int, password_hash: str, *, sample: int, processes: int
) -> dict[str, Any]:
    """Tenants start..stop-1: all but the last `sample` made by `_fill`, then the sample one at a time,
    each timed, alternating between the two paths a creation can take: from a spare schema (one is made
    untimed just before, as the background refill does between sign-ups) and the clone (spares dropped
    before it, so none is ready)."""
    from tenants.cloning import SPARE_PREFIX, refill_spares, spare_schemas

    def drop_spares() -> None:
        from django.db import connection
        from psycopg import sql

        with connection.cursor() as cursor:
            for spare in spare_schemas():
                assert spare.startswith(SPARE_PREFIX)
                cursor.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(spare)))

    timed_from = max(start, stop - sample)
    drop_spares()
    if timed_from > start:
        _fill(start, timed_from, password_hash, processes=processes)
    spare: list[float] = []
    clone: list[float] = []
    for index in range(timed_from, stop):
        if index % 2 == 0:
            refill_spares(target=1)
            spare.append(_make(index, password_hash))
        else:
            drop_spares()
            clone.append(_make(index, password_hash))
    drop_spares()
    return {"creation_spare": summary_ms(spare), "creation_clone": summary_ms(clone)}


def _noop_migrate(count: int) -> dict[str, Any]:
    from django.conf import settings
    from django.core.management import call_command

    from tenants.management.commands.migrate_platform import ensure_template_schema
    from tenants.migrating import all_tenant_schemas, behind, migration_states

    schemas = all_tenant_schemas()
    call_command("migrate_schemas", shared=True, interactive=False, verbosity=0)
    ensure_template_schema()
    stale = behind(schemas, template=settings.TENANT_BASE_SCHEMA)
    if stale:
        # Migrations added to the tree since the tenants were made: applied first, untimed, so the timed
        # run below is a no-op.
        print(f"  (the tree has new migrations: {len(stale)} tenants behind, migrated first, untimed)")
        call_command("migrate_platform", verbosity=0)
    started = time.perf_counter()
    migration_states([settings.TENANT_BASE_SCHEMA, *schemas])
    states_s = time.perf_counter() - started
    started = time.perf_counter()
    call_command("migrate_platform", verbosity=0)
    total_s = time.perf_counter() - started
    stale_after = behind(schemas, template=settings.TENANT_BASE_SCHEMA)
    print(
        f"  no-op migrate_platform over {count} tenants: {total_s:.1f} s, {len(stale_after)} behind after it "
        f"(reading every schema's recorded migrations: {states_s * 1000:.0f} ms)"
    )
    return {
        "noop_migrate_platform_s": round(total_s, 2),
        "read_states_ms": round(states_s * 1000, 1),
        "tree_moved_before_noop": len(stale),
    }


def _throwaway_migration(count: int, root: Path) -> str:
    """A copy of MIGRATED_APP's migrations plus one adding a nullable column; returns its module name."""
    from django.apps import apps
    from django.db.migrations.loader import MigrationLoader

    leaf = MigrationLoader(None, ignore_no_migrations=True).graph.leaf_nodes(MIGRATED_APP)[0][1]
    module = f"bench_migrations_{count}"
    source = Path(apps.get_app_config(MIGRATED_APP).path) / "migrations"
    target = root / module
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
    column = f"bench_column_{count}"
    (target / f"9{count:04d}_bench_add_column.py").write_text(
        "from django.db import migrations\n\n\n"
        "class Migration(migrations.Migration):\n"
        f"    dependencies = [({MIGRATED_APP!r}, {leaf!r})]\n"
        "    operations = [\n"
        "        migrations.RunSQL(\n"
        f"            'ALTER TABLE {MIGRATED_TABLE} ADD COLUMN {column} text NULL',\n"
        f"            'ALTER TABLE {MIGRATED_TABLE} DROP COLUMN {column}',\n"
        "        )\n"
        "    ]\n"
    )
    return module


def _real_migrate(count: int) -> dict[str, Any]:
    from django.conf import settings
    from django.core.management import call_command

    root = Path(tempfile.mkdtemp(prefix="bench-migrations-"))
    module = _throwaway_migration(count, root)
    sys.path.insert(0, str(root))
    original = getattr(settings, "MIGRATION_MODULES", {})
    settings.MIGRATION_MODULES = {**original, MIGRATED_APP: module}
    try:
        started = time.perf_counter()
        call_command("migrate_platform", verbosity=0)
        total_s = time.perf_counter() - started
    finally:
        settings.MIGRATION_MODULES = original
        sys.path.remove(str(root))
        shutil.rmtree(root, ignore_errors=True)
    with_column = int(
        _scalar(
            "SELECT count(*) FROM information_schema.columns WHERE table_name = %s AND column_name = %s",
            [MIGRATED_TABLE, f"bench_column_{count}"],
        )
    )
    print(
        f"  real migration (ADD COLUMN) over {count} tenants: {total_s:.1f} s "
        f"({total_s / count * 1000:.0f} ms per tenant; {with_column} schemas have the column)"
    )
    return {
        "real_migrate_platform_s": round(total_s, 2),
        "real_migrate_ms_per_tenant": round(total_s / count * 1000, 1),
        "schemas_with_column": with_column,
    }


def _baseline(count: int) -> dict[str, Any]:
    from django.core.management import call_command

    started = time.perf_counter()
    call_command("migrate_schemas", tenant=True, interactive=False, verbosity=0, executor="multiprocessing")
    seconds = time.perf_counter() - started
    print(f"  old no-op migrate_schemas over {count} tenants (multiprocessing executor): {seconds:.1f} s")
    return {"baseline_noop_migrate_schemas_s": round(seconds, 2)}


def main() -> dict[str, Any]:
    keep = os.environ.get("BENCH_KEEP") == "1"
    setup_django(fresh=not keep)
    from django.conf import settings
    from django.contrib.auth.hashers import make_password
    from django.core.management import call_command

    counts = _counts()
    baseline_max = int(os.environ.get("BENCH_BASELINE_MAX", "200"))
    real_max = int(os.environ.get("BENCH_REAL_MIGRATE_MAX", "100000"))
    call_command("migrate_platform", verbosity=0)
    hashes = []
    for _ in range(5):
        started = time.perf_counter()
        password_hash = make_password(PASSWORD)
        hashes.append(time.perf_counter() - started)
    hashing = summary_ms(hashes)
    hasher = settings.PASSWORD_HASHERS[0].rsplit(".", 1)[-1]
    print(f"password hashing ({hasher}), apart from creation: p50 {hashing['p50_ms']} ms")
    results: dict[str, Any] = {
        "counts": counts,
        "processes": settings.TENANT_MULTIPROCESSING_MAX_PROCESSES,
        "hashing": {"hasher": hasher, **hashing},
        "by_count": {},
    }
    from tenants.models import Tenant

    made = Tenant.objects.filter(slug__startswith="bench").count()
    sample = int(os.environ.get("BENCH_SAMPLE", "100"))
    processes = int(os.environ.get("BENCH_FILL_PROCESSES", "2"))
    for count in counts:
        if count <= made:
            continue
        print(f"== {count} tenants", flush=True)
        step: dict[str, Any] = _create_both_paths(
            made, count, password_hash, sample=sample, processes=processes
        )
        made = count
        for path, label in (
            ("creation_spare", "from a spare schema"),
            ("creation_clone", "cloned, no spare"),
        ):
            print(
                f"  creation {label}, {step[path]['n']} of the last {sample} tenants up to {count}, one at a "
                f"time (no hashing): p50 {step[path]['p50_ms']} ms, p95 {step[path]['p95_ms']} ms, "
                f"max {step[path]['max_ms']} ms",
                flush=True,
            )
        step["catalog"] = _catalog()
        print(
            f"  catalog: {step['catalog']['pg_class']} relations, {step['catalog']['per_tenant']} per tenant "
            f"({step['catalog']['in_schema']} in its schema: {step['catalog']['in_schema_by_kind']}, "
            "the rest TOAST)"
        )
        step.update(_noop_migrate(count))
        if count <= real_max:
            step.update(_real_migrate(count))
        if count <= baseline_max:
            step.update(_baseline(count))
        results["by_count"][str(count)] = step
    return results


if __name__ == "__main__":
    main()
