"""Retrieval quality on a labelled question set: top-1 and top-3 accuracy per method (hybrid, semantic
only, full-text only). Used by the tests and by benchmarks/knowledge.py; the active tenant's schema."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from knowledge import retrieval
from knowledge.embeddings import get_embedder


@dataclass
class Accuracy:
    top1: float
    top3: float
    n: int


def _ranked_ids(method: str, query: str, language: str | None) -> list[int]:
    """Chunk ids, best first, by one method."""
    if method == "hybrid":
        return [p.chunk_id for p in retrieval.search(query, limit=3, language=language)]
    if method == "semantic":
        scores = retrieval._semantic(query, get_embedder())
    else:
        scores = retrieval._lexical(query, language)
    return [cid for cid, _ in sorted(scores.items(), key=lambda item: -item[1])[:3]]


def accuracy(
    questions: list[tuple[str, str]],
    chunk_of: Callable[[str], set[int]],
    *,
    method: str = "hybrid",
    language: str | None = None,
) -> Accuracy:
    top1 = top3 = 0
    for question, fact in questions:
        wanted = chunk_of(fact)
        ranked = _ranked_ids(method, question, language)
        top1 += bool(ranked[:1] and ranked[0] in wanted)
        top3 += bool(wanted & set(ranked[:3]))
    n = len(questions) or 1
    return Accuracy(top1=top1 / n, top3=top3 / n, n=len(questions))
