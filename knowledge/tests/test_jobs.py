"""The indexing job: its own queue, and a crash fails the source instead of leaving it processing."""

from __future__ import annotations

import pytest
from django.conf import settings

from knowledge import actors, services
from knowledge.models import Source


def test_indexing_runs_on_its_own_queue_which_workers_consume():
    assert actors.index_source_job.queue_name == "knowledge"
    assert "knowledge" in settings.DRAMATIQ_QUEUES


def test_the_job_indexes_the_source(in_a):
    source = Source.objects.create(kind="text", title="t", text="Open from 9 to 5.")
    actors.index_source_job.fn(source.pk)
    source.refresh_from_db()
    assert (source.status, source.chunk_count) == ("ready", 1)


def test_a_crash_in_the_job_fails_the_source_with_a_reason(in_a, monkeypatch):
    source = Source.objects.create(kind="text", title="t", text="x")

    def crash(**kwargs):
        raise RuntimeError("bug")

    monkeypatch.setattr(services, "index_source", crash)
    with pytest.raises(RuntimeError):
        actors.index_source_job.fn(source.pk)
    source.refresh_from_db()
    assert (source.status, source.error_code) == ("failed", "index_error")


def test_a_source_deleted_before_its_job_runs_is_skipped(in_a):
    source = Source.objects.create(kind="text", title="t", text="x")
    source_id = source.pk
    source.delete()
    actors.index_source_job.fn(source_id)  # no error
    assert not Source.objects.exists()
