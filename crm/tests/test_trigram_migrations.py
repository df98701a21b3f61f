"""The embedded PostgreSQL of `make run` (pgserver) has no pg_trgm: every trigram index must be added
through crm.migration_operations, which skips it there, or a fresh `make run` fails to migrate."""

from __future__ import annotations

from django.db import migrations
from django.db.migrations.loader import MigrationLoader

from crm.migration_operations import TrigramAddIndex


def test_every_trigram_index_is_added_by_the_operation_that_skips_it_without_pg_trgm():
    loader = MigrationLoader(None, ignore_no_migrations=True)
    offenders = []
    for (app, name), migration in loader.disk_migrations.items():
        for operation in migration.operations:
            trigram = isinstance(operation, migrations.AddIndex) and "gin_trgm_ops" in repr(operation.index)
            if trigram and not isinstance(operation, TrigramAddIndex):
                offenders.append(f"{app}.{name}: {operation.index.name}")
    assert not offenders, offenders
