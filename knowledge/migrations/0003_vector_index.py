"""pgvector where the server has it: the extension (once, in public), knowledge_chunk.embedding_vec
vector(384) for the local model's vectors, and its HNSW index (cosine); chunks indexed before are copied
in. Where pg_available_extensions has no `vector` (CI's Debian PostgreSQL 15) this does nothing and
retrieval scans in numpy; the column stays out of the Django model, so the migration state is the same on
every server. See knowledge/vectors.py.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from django.db import migrations

MODEL = "all-minilm-l6-v2"


def vector_available(schema_editor: Any) -> bool:
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'")
        return cursor.fetchone() is not None


def add_vector_column(apps: Any, schema_editor: Any) -> None:
    if not vector_available(schema_editor):
        return
    # In public, which every tenant's search_path includes; IF NOT EXISTS: every schema's run reaches here.
    schema_editor.execute("CREATE EXTENSION IF NOT EXISTS vector SCHEMA public")
    schema_editor.execute(
        "ALTER TABLE knowledge_chunk ADD COLUMN IF NOT EXISTS embedding_vec public.vector(384)"
    )
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(
            "SELECT id, embedding FROM knowledge_chunk WHERE embedding_model = %s AND embedding IS NOT NULL",
            [MODEL],
        )
        for chunk_id, data in cursor.fetchall():
            values = np.frombuffer(bytes(data), dtype="<f4")
            if len(values) == 384:
                cursor.execute(
                    "UPDATE knowledge_chunk SET embedding_vec = %s::public.vector(384) WHERE id = %s",
                    ["[" + ",".join(str(v) for v in values.tolist()) + "]", chunk_id],
                )
    schema_editor.execute(
        "CREATE INDEX IF NOT EXISTS knowledge_chunk_embedding_hnsw ON knowledge_chunk"
        " USING hnsw (embedding_vec public.vector_cosine_ops)"
    )


def drop_vector_column(apps: Any, schema_editor: Any) -> None:
    schema_editor.execute("ALTER TABLE knowledge_chunk DROP COLUMN IF EXISTS embedding_vec")


class Migration(migrations.Migration):
    dependencies = [("knowledge", "0002_ai_agent")]

    operations = [migrations.RunPython(add_vector_column, drop_vector_column, elidable=False)]
