"""The AI agent's knowledge in the owners' data export (conversations.data_export): its sources (without
their extracted text: the uploaded files are the operator's archive's) and its FAQ pairs."""

from __future__ import annotations

from conversations.data_export import model_dataset, register_dataset
from knowledge.models import Faq, Source


def register() -> None:
    register_dataset(
        model_dataset(
            "knowledge_sources",
            Source.objects.all,
            (
                "id", "kind", "title", "language", "status", "url", "file_name", "size", "chunk_count",
                "created_at", "indexed_at",
            ),
        )
    )  # fmt: skip
    register_dataset(
        model_dataset(
            "knowledge_faqs",
            Faq.objects.all,
            ("id", "question", "answer", "language", "status", "created_at", "updated_at"),
        )
    )
