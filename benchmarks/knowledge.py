"""Knowledge: indexing throughput, hybrid retrieval latency at 10,000 chunks in one tenant, and retrieval
quality per language and method on the paraphrase set (knowledge/tests/paraphrases.py).

make bench BENCH_ARGS=knowledge
  BENCH_KNOWLEDGE_CHUNKS=10000   chunks in the retrieval tenant
  BENCH_KNOWLEDGE_QUERIES=300    timed searches
  BENCH_KNOWLEDGE_DOCS=12        documents indexed end to end for throughput (~3 chunks each)
Target: retrieval p95 <= 50 ms at 10,000 chunks.

The 10,000 chunks are written directly (text from a word list, tsvectors by the same SQL the indexer uses)
with random unit vectors under the default embedder's name: a search's cost does not depend on the
vectors' values, and encoding 10,000 chunks on a CPU takes longer than a benchmark should. Throughput is
measured separately, end to end through the indexing service.
"""

from __future__ import annotations

import itertools
import os
import random
import time
from typing import Any

from benchmarks.common import setup_django, summary_ms

SLUG = "benchknowledgez"
QUALITY_SLUG = "benchknowledgeq"
_WORDS = (
    "price delivery shipping order refund return warranty repair bicycle frame wheel tyre brake chain "
    "store opening hours weekend holiday payment card cash invoice discount member club rental deposit "
    "week day month year customer service phone email address parking station street city country "
    "product size colour model battery electric charger helmet lock light bell seat saddle pedal gear "
    "envío pedido devolución garantía reparación tienda horario pago tarjeta alquiler fianza cliente "
    "encomenda devolução garantia reparação loja horário pagamento cartão aluguer caução cliente"
)
WORDS = _WORDS.split()


class Corpus:
    """Words drawn with Zipf's law (frequency ~ 1/rank) from a 20,000-word vocabulary, the domain words
    above at ranks 30-3,000: a query term then matches a realistic share of the chunks (a frequent word
    most of them, a specific one few), not every chunk as a uniform draw from a hundred words would."""

    def __init__(self, rng: random.Random) -> None:
        letters = "abcdefghijklmnopqrstuvwxyz"
        vocabulary = ["".join(rng.choice(letters) for _ in range(rng.randint(3, 9))) for _ in range(20_000)]
        for word in WORDS:
            vocabulary[rng.randint(30, 3000)] = word
        self.vocabulary = vocabulary
        self.weights = list(itertools.accumulate(1.0 / (rank + 1) ** 1.07 for rank in range(len(vocabulary))))
        self.rng = rng

    _shared: Corpus | None = None

    @classmethod
    def shared(cls, rng: random.Random) -> Corpus:
        if cls._shared is None:
            cls._shared = cls(rng)
        return cls._shared

    def text(self, words: int) -> str:
        drawn = self.rng.choices(self.vocabulary, cum_weights=self.weights, k=words)
        sentences = [" ".join(drawn[i : i + 12]).capitalize() + "." for i in range(0, words, 12)]
        return " ".join(sentences)


def _text(rng: random.Random, words: int) -> str:
    return Corpus.shared(rng).text(words)


def _tenant(slug: str) -> None:
    from onboarding.services import onboard_tenant
    from tenants.models import Tenant

    if not Tenant.objects.filter(slug=slug).exists():
        onboard_tenant(
            slug=slug, name=slug, owner_email=f"owner@{slug}.test", owner_password="Sturdy-Pass-42"
        )


def load_chunks(count: int) -> None:
    import numpy as np
    from django.db import connection, transaction
    from django.utils import timezone

    from knowledge.embeddings import get_embedder, to_bytes
    from knowledge.models import Chunk, Source

    embedder = get_embedder()
    rng = random.Random(11)
    vectors = np.random.default_rng(11).standard_normal((count, embedder.dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    per_source = 20
    languages = ["en", "es", "pt"]
    with transaction.atomic():
        Source.objects.all().delete()
        for start in range(0, count, per_source):
            language = languages[(start // per_source) % 3]
            source = Source.objects.create(
                kind="text",
                title=f"Doc {start // per_source}",
                language=language,
                status="ready",
                text="(benchmark)",
                indexed_at=timezone.now(),
            )
            Chunk.objects.bulk_create(
                Chunk(
                    source=source,
                    ordinal=i,
                    heading=f"Section {i}",
                    text=_text(rng, rng.randint(120, 300)),
                    language=language,
                    embedding=to_bytes(vectors[start + i]),
                    embedding_model=embedder.name,
                )
                for i in range(min(per_source, count - start))
            )
        from knowledge.services import write_search_vectors

        for language in languages:
            write_search_vectors(list(Chunk.objects.filter(language=language)), language)
        from knowledge import vectors as vectors_db

        if vectors_db.serves(embedder.name, embedder.dim) and vectors_db.available(connection):
            # The pgvector column, as the indexer fills it (knowledge/vectors.py): the HNSW index is built
            # as the rows arrive.
            ids = list(Chunk.objects.order_by("id").values_list("id", flat=True))
            with connection.cursor() as cursor:
                vectors_db.write(cursor, ids, vectors[: len(ids)])
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE knowledge_chunk")


def throughput(docs: int) -> dict[str, Any]:
    from knowledge import services
    from knowledge.embeddings import get_embedder
    from knowledge.models import Source

    rng = random.Random(5)
    Source.objects.filter(title__startswith="Throughput").delete()
    bodies = ["\n\n".join(f"# Part {p}\n\n{_text(rng, 250)}" for p in range(3)) for _ in range(docs)]
    # Short pasted text is indexed inline; these are long enough to go by the job, so call it directly.
    sources = [
        Source.objects.create(kind="text", title=f"Throughput {i}", text=b) for i, b in enumerate(bodies)
    ]
    embedder = get_embedder()
    embedder.embed(["warm up"])
    started = time.perf_counter()
    chunks = 0
    for source in sources:
        indexed = services.index_source(source_id=source.pk)
        chunks += indexed.chunk_count if indexed else 0
    elapsed = time.perf_counter() - started
    rate = chunks / elapsed if elapsed else 0.0
    print(f"indexing ({embedder.name}): {chunks} chunks in {elapsed:.1f} s = {rate:.1f} chunks/s")
    Source.objects.filter(title__startswith="Throughput").delete()
    return {
        "embedder": embedder.name,
        "chunks": chunks,
        "seconds": round(elapsed, 2),
        "chunks_per_s": round(rate, 2),
    }


def latency(queries: int) -> dict[str, Any]:
    from knowledge.retrieval import search
    from knowledge.tests.paraphrases import QUESTIONS

    questions = [q for qs in QUESTIONS.values() for q, _ in qs]
    rng = random.Random(3)
    started = time.perf_counter()
    search("cold: loads the vector matrix")
    cold = time.perf_counter() - started
    for _ in range(10):
        search(rng.choice(questions))
    timings = []
    for _ in range(queries):
        question = rng.choice(questions)
        started = time.perf_counter()
        search(question, limit=5)
        timings.append(time.perf_counter() - started)
    summary = summary_ms(timings)
    print(f"retrieval: cold (matrix load) {cold * 1000:.0f} ms; warm {summary}")
    return {"cold_ms": round(cold * 1000, 1), **summary}


def quality() -> dict[str, Any]:
    from django.conf import settings

    from knowledge import services
    from knowledge.evaluation import accuracy
    from knowledge.models import Chunk, Source
    from knowledge.tests.paraphrases import FACTS, QUESTIONS

    results: dict[str, Any] = {}
    for embedder in ("local", "hashing"):
        settings.KNOWLEDGE_EMBEDDER = embedder
        Source.objects.all().delete()
        ids: dict[tuple[str, str], set[int]] = {}
        for language, facts in FACTS.items():
            for key, (title, text) in facts.items():
                source = services.create_text_source(title=title, text=text, language=language)
                ids[(language, key)] = set(Chunk.objects.filter(source=source).values_list("id", flat=True))
        for language in FACTS:
            chunks_of = {fact: found for (lang, fact), found in ids.items() if lang == language}
            for method in ("hybrid", "semantic", "lexical"):
                acc = accuracy(QUESTIONS[language], chunks_of.__getitem__, method=method, language=language)
                label = f"{embedder}/{language}/{method}"
                results[label] = {"top1": round(acc.top1, 2), "top3": round(acc.top3, 2)}
                print(f"quality {label}: top-1 {acc.top1:.2f}, top-3 {acc.top3:.2f} (n={acc.n})")
    settings.KNOWLEDGE_EMBEDDER = "local"
    return results


def main() -> dict[str, Any]:
    setup_django(fresh=False)
    from django.core.management import call_command
    from django_tenants.utils import schema_context

    from knowledge.models import Chunk

    count = int(os.environ.get("BENCH_KNOWLEDGE_CHUNKS", "10000"))
    queries = int(os.environ.get("BENCH_KNOWLEDGE_QUERIES", "300"))
    docs = int(os.environ.get("BENCH_KNOWLEDGE_DOCS", "12"))
    call_command("migrate_platform", verbosity=0)
    _tenant(SLUG)
    _tenant(QUALITY_SLUG)
    result: dict[str, Any] = {}
    with schema_context(SLUG):
        if Chunk.objects.count() != count:
            started = time.perf_counter()
            load_chunks(count)
            print(f"loaded {count} chunks in {time.perf_counter() - started:.1f} s")
        result["retrieval"] = latency(queries)
        result["retrieval"]["chunks"] = count
        from django.conf import settings

        result["indexing"] = throughput(docs)
        settings.KNOWLEDGE_EMBEDDER = "hashing"
        result["indexing_hashing"] = throughput(docs)
        settings.KNOWLEDGE_EMBEDDER = "local"
    with schema_context(QUALITY_SLUG):
        result["quality"] = quality()
    return result


if __name__ == "__main__":
    main()
