"""Hybrid retrieval over the active tenant's chunks: full-text search in each chunk's language (stemmed,
accents folded) plus semantic vectors, fused into one score in [0, 1].

Vectors (knowledge/vectors.py decides): where the server has pgvector (the embedded PostgreSQL 16), the
local model's vectors are searched through the HNSW index on knowledge_chunk.embedding_vec. Elsewhere
(CI's PostgreSQL 15, or another embedder): exact cosine in numpy over the tenant's chunk matrix, cached
per process and keyed by the tenant schema, the embedder and a cheap version of the chunk table (the count
of indexed sources and their latest indexed_at: every re-index stamps it, every delete lowers the count):
at 10,000 chunks x 384 floats the matrix is 15 MB and one product takes under a millisecond. Both paths
scale the cosine alike, so scores and the handoff threshold mean the same. See docs/benchmarks.md.

Score: `semantic` maps the cosine from the embedder's [floor, ceiling] to [0, 1]; `lexical` is the share
of the query's (stemmed) terms the chunk contains. The fused score rewards the stronger signal and
agreement: 0.7 * max + 0.3 * mean.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np
from django.db import connection, transaction

from knowledge import vectors
from knowledge.embeddings import Embedder, fold, from_bytes, get_embedder

# Source language -> PostgreSQL text search configuration.
REGCONFIG = {"en": "english", "es": "spanish", "pt": "portuguese"}
CONFIGS = ("english", "spanish", "portuguese", "simple")
CANDIDATES = 50
# Below this fused score a passage is not an answer: the agent hands over (missing_knowledge).
HANDOFF_THRESHOLD = 0.25


def regconfig(language: str | None) -> str:
    return REGCONFIG.get(language or "", "simple")


@dataclass(frozen=True)
class Passage:
    chunk_id: int
    source_id: int
    title: str
    heading: str
    text: str
    score: float
    url: str


# -- full-text ---------------------------------------------------------------------------------------------


def search_vector_sql(config: str, heading: str, text: str) -> str:
    """The chunk's tsvector: heading (weight A) and text (B) in the language's configuration. Both are
    accent-folded in Python first (knowledge.embeddings.fold), as the query is: "informacion" finds
    "información" on every server, whether or not it has the unaccent extension (the embedded PostgreSQL
    16 does not)."""
    return (
        f"setweight(to_tsvector('{config}', {heading}), 'A')"
        f" || setweight(to_tsvector('{config}', {text}), 'B')"
    )


# -- the vector matrix cache -------------------------------------------------------------------------------


@dataclass
class _Matrix:
    version: tuple[int, int]
    ids: np.ndarray
    vectors: np.ndarray
    floors: np.ndarray  # per chunk: the embedder's floor and span for the chunk's language
    spans: np.ndarray


_cache: OrderedDict[tuple[str, str], _Matrix] = OrderedDict()
_cache_lock = threading.Lock()
CACHED_TENANTS = 16


def _matrix(embedder: Embedder) -> _Matrix:
    schema = connection.schema_name  # type: ignore[attr-defined]
    with connection.cursor() as cursor:
        # Every (re-)index stamps its source's indexed_at as it swaps the chunks in, and a deleted source
        # lowers the count: a cheap version of the chunk table (sources are few; chunks are many).
        cursor.execute(
            "SELECT count(*), coalesce(extract(epoch FROM max(indexed_at)) * 1e6, 0)::bigint"
            " FROM knowledge_source WHERE indexed_at IS NOT NULL"
        )
        count, stamp = cursor.fetchone()  # type: ignore[misc]
    version = (int(count), int(stamp))
    key = (schema, embedder.name)
    with _cache_lock:
        cached = _cache.get(key)
        if cached is not None and cached.version == version:
            _cache.move_to_end(key)
            return cached
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT id, embedding, language FROM knowledge_chunk WHERE embedding_model = %s ORDER BY id",
            [embedder.name],
        )
        rows = cursor.fetchall()
    ids = np.fromiter((row[0] for row in rows), dtype=np.int64, count=len(rows))
    vectors = np.vstack([from_bytes(row[1]) for row in rows]) if rows else np.zeros((0, 1), dtype=np.float32)
    native = np.fromiter(
        (embedder.languages is None or row[2] in embedder.languages for row in rows),
        dtype=bool,
        count=len(rows),
    )
    floors = np.where(native, embedder.floor, embedder.other_floor).astype(np.float32)
    spans = np.where(
        native, embedder.ceiling - embedder.floor, embedder.other_ceiling - embedder.other_floor
    ).astype(np.float32)
    built = _Matrix(version=version, ids=ids, vectors=vectors, floors=floors, spans=spans)
    with _cache_lock:
        _cache[key] = built
        _cache.move_to_end(key)
        while len(_cache) > CACHED_TENANTS:
            _cache.popitem(last=False)
    return built


def _scale(embedder: Embedder, cosines: np.ndarray, native: np.ndarray) -> np.ndarray:
    floors = np.where(native, embedder.floor, embedder.other_floor)
    spans = np.where(native, embedder.ceiling - embedder.floor, embedder.other_ceiling - embedder.other_floor)
    return np.clip((cosines - floors) / spans, 0.0, 1.0)


def _semantic(query: str, embedder: Embedder) -> dict[int, float]:
    if vectors.serves(embedder.name, embedder.dim) and vectors.available(connection):
        return _semantic_pgvector(query, embedder)
    return _semantic_numpy(query, embedder)


def _semantic_pgvector(query: str, embedder: Embedder) -> dict[int, float]:
    """The nearest chunks by raw cosine through the HNSW index (twice the candidates: the per-language
    scale can reorder them), then the same scale as the numpy path, so scores match it."""
    vector = embedder.embed([query])[0]
    with transaction.atomic(), connection.cursor() as cursor:
        rows = vectors.nearest(cursor, vector, limit=2 * CANDIDATES)
    if not rows:
        return {}
    cosines = np.array([row[2] for row in rows], dtype=np.float32)
    native = np.array(
        [embedder.languages is None or row[1] in embedder.languages for row in rows], dtype=bool
    )
    scores = _scale(embedder, cosines, native)
    top = np.argsort(-scores, kind="stable")[:CANDIDATES]
    return {rows[i][0]: float(scores[i]) for i in top}


def _semantic_numpy(query: str, embedder: Embedder) -> dict[int, float]:
    matrix = _matrix(embedder)
    if not len(matrix.ids):
        return {}
    vector = embedder.embed([query])[0]
    if matrix.vectors.shape[1] != vector.shape[0]:
        return {}
    scores = np.clip((matrix.vectors @ vector - matrix.floors) / matrix.spans, 0.0, 1.0)
    top = np.argpartition(-scores, min(CANDIDATES, len(scores) - 1))[:CANDIDATES]
    return {int(matrix.ids[i]): float(scores[i]) for i in top}


def _lexical(query: str, language: str | None) -> dict[int, float]:
    """Chunks containing any of the query's terms (stemmed in each configuration in play), scored by the
    share of the query's terms they contain in their own configuration."""
    configs = [regconfig(language), "simple"] if language else list(CONFIGS)
    text = "%(q)s"
    lexemes = " UNION ".join(
        f"SELECT '{cfg}'::text AS cfg, tsvector_to_array(to_tsvector('{cfg}', {text})) AS lex"
        for cfg in configs
    )
    # The GIN index finds the chunks with any query term; only the best CANDIDATES by rank get the
    # (per-row) coverage count.
    sql = f"""
        WITH q AS ({lexemes}),
        terms AS (SELECT DISTINCT unnest(lex) AS term FROM q),
        query AS (
            SELECT to_tsquery('simple', string_agg(quote_literal(term), ' | ')) AS tsq FROM terms
        ),
        best AS (
            SELECT c.id, c.language, c.search_vector
              FROM knowledge_chunk c, query
             WHERE c.search_vector @@ query.tsq
             ORDER BY ts_rank(c.search_vector, query.tsq) DESC
             LIMIT {CANDIDATES}
        )
        SELECT best.id,
               (SELECT count(*) FROM unnest(tsvector_to_array(best.search_vector)) t
                 WHERE t = ANY(q.lex))::float / greatest(cardinality(q.lex), 1) AS coverage
          FROM best
          JOIN q ON q.cfg = (CASE best.language WHEN 'en' THEN 'english' WHEN 'es' THEN 'spanish'
                                                WHEN 'pt' THEN 'portuguese' ELSE 'simple' END)
    """
    with connection.cursor() as cursor:
        cursor.execute(sql, {"q": fold(query)})
        return {int(row[0]): float(row[1]) for row in cursor.fetchall()}


def fuse(semantic: float, lexical: float) -> float:
    return 0.7 * max(semantic, lexical) + 0.3 * (semantic + lexical) / 2


def search(query: str, *, limit: int = 5, language: str | None = None) -> list[Passage]:
    """The best passages for `query` in the active tenant's schema, best first, scores in [0, 1].
    `language` (en/es/pt) is the customer's, when known: it picks the stemming for the full-text half."""
    query = (query or "").replace("\x00", " ").strip()[:2000]
    if not query:
        return []
    embedder = get_embedder()
    semantic = _semantic(query, embedder)
    lexical = _lexical(query, language if language in REGCONFIG else None)
    scores = {
        cid: fuse(semantic.get(cid, 0.0), lexical.get(cid, 0.0)) for cid in set(semantic) | set(lexical)
    }
    best = sorted(scores.items(), key=lambda item: (-item[1], item[0]))[: max(limit, 0)]
    if not best:
        return []
    rows = _rows([cid for cid, _ in best])
    return [
        Passage(
            chunk_id=cid,
            source_id=rows[cid]["source_id"],
            title=rows[cid]["title"],
            heading=rows[cid]["heading"],
            text=rows[cid]["text"],
            score=round(score, 4),
            url=rows[cid]["url"],
        )
        for cid, score in best
        if cid in rows
    ]


def _rows(ids: list[int]) -> dict[int, dict[str, Any]]:
    from knowledge.models import Chunk

    found = Chunk.objects.filter(id__in=ids).values(
        "id", "source_id", "heading", "text", "source__title", "source__url"
    )
    return {
        row["id"]: {
            "source_id": row["source_id"],
            "heading": row["heading"],
            "text": row["text"],
            "title": row["source__title"],
            "url": row["source__url"],
        }
        for row in found
    }
