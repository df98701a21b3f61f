from __future__ import annotations

import dramatiq
import pytest
from django_tenants.utils import schema_context

from tenants.db import connection
from tenants.jobs import TENANT_OPTION, broker, send_in_schema

seen: list[tuple[str, str]] = []


@dramatiq.actor(queue_name="default", max_retries=0)
def record_schema(label: str) -> None:
    seen.append((label, connection.schema_name))


@dramatiq.actor(queue_name="default", max_retries=0)
def fail_in_schema(label: str) -> None:
    seen.append((label, connection.schema_name))
    raise RuntimeError("boom")


@pytest.fixture
def worker(committed_db):
    broker.flush_all()
    seen.clear()
    worker = dramatiq.Worker(broker, worker_threads=1, worker_timeout=100)
    worker.start()
    yield worker
    worker.stop()
    broker.flush_all()


def test_the_enqueuing_schema_travels_in_the_message(committed_db):
    with schema_context("alpha"):
        message = record_schema.send("x")
    assert message.options[TENANT_OPTION] == "alpha"
    broker.flush_all()


def test_one_worker_thread_running_jobs_of_two_tenants_never_leaks_a_schema(worker):
    plan = ["alpha", "beta", "public", "beta", "alpha", "public"]
    for index, schema in enumerate(plan):
        with schema_context(schema):
            record_schema.send(f"{index}")
    broker.join("default")
    worker.join()
    assert seen == [(str(index), schema) for index, schema in enumerate(plan)]


def test_the_schema_is_reset_after_a_failing_job(worker):
    with schema_context("alpha"):
        fail_in_schema.send("fails")
    record_schema.send("after")  # enqueued from the public schema
    broker.join("default", fail_fast=False)
    worker.join()
    assert seen == [("fails", "alpha"), ("after", "public")]


def test_a_public_job_fans_out_to_each_tenant_in_its_schema(worker):
    for schema in ("alpha", "beta"):
        send_in_schema(record_schema, schema, schema)
    broker.join("default")
    worker.join()
    assert seen == [("alpha", "alpha"), ("beta", "beta")]
