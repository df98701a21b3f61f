"""Test helpers for knowledge: run the indexing job in the test's own transaction and thread."""

from __future__ import annotations

from typing import Any

from django.db import transaction


def run_jobs_inline(monkeypatch: Any) -> None:
    """`index_source_job.send(id)` indexes at once (after the enqueuing transaction's commit callbacks run:
    pytest-django's rolled-back transaction runs them through captureOnCommitCallbacks only, so here they
    run immediately)."""
    from knowledge import actors, services

    monkeypatch.setattr(
        actors.index_source_job, "send", lambda source_id: services.index_source(source_id=source_id)
    )
    monkeypatch.setattr(transaction, "on_commit", lambda func, using=None, robust=False: func())


def index_now(source: Any) -> Any:
    from knowledge import services

    return services.index_source(source_id=source.pk)
