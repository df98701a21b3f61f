"""Migration operations for the trigram search indexes, which need PostgreSQL's pg_trgm extension.

Every real PostgreSQL ships pg_trgm (contrib), but the embedded server `make run` uses on a machine with
no PostgreSQL (pgserver) does not. There the indexes are skipped and search still works, unindexed; the
migration state is the same either way, so later migrations behave alike.
"""

from __future__ import annotations

from typing import Any

from django.db import migrations


def trigram_available(schema_editor: Any) -> bool:
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm'")
        return cursor.fetchone() is not None


def create_trigram_extension(apps: Any, schema_editor: Any) -> None:
    if trigram_available(schema_editor):
        # In public, which every tenant's search_path includes; created once per database.
        schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm SCHEMA public")


class TrigramAddIndex(migrations.AddIndex):
    def database_forwards(self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any) -> None:
        if trigram_available(schema_editor):
            super().database_forwards(app_label, schema_editor, from_state, to_state)

    def database_backwards(self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any) -> None:
        if trigram_available(schema_editor):
            super().database_backwards(app_label, schema_editor, from_state, to_state)


class TrigramRemoveIndex(migrations.RemoveIndex):
    def database_forwards(self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any) -> None:
        if trigram_available(schema_editor):
            super().database_forwards(app_label, schema_editor, from_state, to_state)

    def database_backwards(self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any) -> None:
        if trigram_available(schema_editor):
            super().database_backwards(app_label, schema_editor, from_state, to_state)
