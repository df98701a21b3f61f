"""pgvector where the server has it, exact cosine in numpy where it does not: the one place that decides.

The embedded PostgreSQL 16 (`make run`) ships pgvector: migration 0003 creates the extension once in
public and gives every tenant's knowledge_chunk an `embedding_vec vector(384)` column with an HNSW index
(vector_cosine_ops). Only the local model's vectors (all-MiniLM-L6-v2, 384 dimensions) go there: an HNSW
index needs one fixed dimension, the hashing fallback has 1024 and an OpenAI-compatible endpoint whatever
its model returns. CI's Debian PostgreSQL 15 has no pgvector: there the migration does nothing, the
column does not exist and retrieval scans the tenant's vectors in numpy (knowledge/retrieval.py) - the
same search, exact instead of approximate. `embedding` (float32 bytes) stays the source of truth on every
server, so the numpy path never depends on the column.

Detected once per process per database and schema (the column exists only where the migration found the
extension), so a server that gains pgvector later keeps the numpy path until migrated again.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
from pgvector import Vector

DIM = 384
INDEXED_MODEL = "all-minilm-l6-v2"  # knowledge.embeddings.MiniLMEmbedder.name
COLUMN = "embedding_vec"
INDEX = "knowledge_chunk_embedding_hnsw"
# HNSW's candidate list per search (pgvector 0.6 returns no more than ef_search rows from one scan).
# Measured at 10,000 random unit vectors, the hardest case (docs/benchmarks.md): recall@50 0.76 at 200,
# 0.92 at 400 (7 ms), 0.99 at 800 (25 ms).
EF_SEARCH = 400

ADD_COLUMN_SQL = f"ALTER TABLE knowledge_chunk ADD COLUMN IF NOT EXISTS {COLUMN} public.vector({DIM})"
ADD_INDEX_SQL = (
    f"CREATE INDEX IF NOT EXISTS {INDEX} ON knowledge_chunk USING hnsw ({COLUMN} public.vector_cosine_ops)"
)

_available: dict[tuple[str, str, str, str], bool] = {}
_lock = threading.Lock()


def _key(connection: Any) -> tuple[str, str, str, str]:
    db = connection.settings_dict
    return (str(db.get("HOST") or ""), str(db.get("PORT") or ""), str(db["NAME"]), _schema(connection))


def _schema(connection: Any) -> str:
    return str(getattr(connection, "schema_name", "") or "public")


def available(connection: Any) -> bool:
    """Whether the active schema's knowledge_chunk has the vector column (so the server has pgvector and
    migration 0003 added it). Cached per process, database and schema."""
    key = _key(connection)
    with _lock:
        if key in _available:
            return _available[key]
    with connection.cursor() as cursor:
        found = column_exists(cursor)
    with _lock:
        _available[key] = found
    return found


def column_exists(cursor: Any) -> bool:
    cursor.execute(
        "SELECT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass('knowledge_chunk')"
        " AND attname = %s AND NOT attisdropped)",
        [COLUMN],
    )
    return bool(cursor.fetchone()[0])


def forget() -> None:
    """Drop the cached checks (tests)."""
    with _lock:
        _available.clear()


def serves(model: str, dim: int) -> bool:
    return model == INDEXED_MODEL and dim == DIM


def literal(vector: np.ndarray) -> str:
    """pgvector's text form ('[0.1,0.2,...]'), exact for float32 values; cast with ::vector in SQL."""
    return str(Vector(np.asarray(vector, dtype=np.float32)).to_text())


def write(cursor: Any, ids: list[int], vectors: np.ndarray) -> None:
    """Fill the vector column of these chunks, 500 per UPDATE, in the caller's transaction."""
    for start in range(0, len(ids), 500):
        batch = ids[start : start + 500]
        cursor.execute(
            f"""UPDATE knowledge_chunk c SET {COLUMN} = v.vec::public.vector({DIM})
                  FROM unnest(%s::bigint[], %s::text[]) AS v(id, vec)
                 WHERE c.id = v.id""",
            [batch, [literal(vectors[start + i]) for i in range(len(batch))]],
        )


def nearest(cursor: Any, vector: np.ndarray, *, limit: int) -> list[tuple[int, str, float]]:
    """(chunk id, language, cosine) of the chunks nearest `vector` through the HNSW index, nearest first.
    Call it inside a transaction: ef_search is set for that transaction only."""
    cursor.execute("SELECT set_config('hnsw.ef_search', %s, true)", [str(max(EF_SEARCH, limit))])
    cursor.execute(
        f"""SELECT id, language, 1 - ({COLUMN} <=> %(q)s::public.vector({DIM})) AS cosine
              FROM knowledge_chunk
             WHERE {COLUMN} IS NOT NULL AND embedding_model = %(model)s
             ORDER BY {COLUMN} <=> %(q)s::public.vector({DIM})
             LIMIT %(limit)s""",
        {"q": literal(vector), "limit": limit, "model": INDEXED_MODEL},
    )
    return [(int(row[0]), str(row[1]), float(row[2])) for row in cursor.fetchall()]
