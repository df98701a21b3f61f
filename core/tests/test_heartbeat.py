"""Worker and scheduler heartbeats, and `manage.py healthcheck` (the containers' healthchecks)."""

from __future__ import annotations

import http.server
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from io import StringIO
from pathlib import Path

import dramatiq
import pytest
from django.core.management import CommandError, call_command
from dramatiq.brokers.stub import StubBroker

from conftest import wait_until
from core import heartbeat

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _no_heartbeats() -> Iterator[None]:
    def clear() -> None:
        heartbeat._last_beat.clear()
        for process in heartbeat.PROCESSES:
            heartbeat._client().delete(heartbeat.key(process))

    clear()
    yield
    clear()


def healthcheck(*args: str) -> str:
    out = StringIO()
    call_command("healthcheck", *args, stdout=out)
    return out.getvalue()


@pytest.mark.parametrize("process", heartbeat.PROCESSES)
def test_a_process_without_a_heartbeat_is_unhealthy(process):
    with pytest.raises(CommandError, match=f"{process}: no heartbeat from this host"):
        healthcheck("--process", process)


@pytest.mark.parametrize("process", heartbeat.PROCESSES)
def test_a_fresh_heartbeat_is_healthy_and_expires(process):
    assert heartbeat.beat(process)

    assert healthcheck("--process", process) == f"{process}: healthy\n"
    assert 0 < heartbeat._client().ttl(heartbeat.key(process)) <= heartbeat.TTL_SECONDS


def test_a_heartbeat_counts_only_for_its_own_host():
    heartbeat._client().set(heartbeat.key("worker", "another-container"), "1", ex=30)
    try:
        with pytest.raises(CommandError):
            healthcheck("--process", "worker")
    finally:
        heartbeat._client().delete(heartbeat.key("worker", "another-container"))


def test_a_beat_without_redis_fails_quietly(settings):
    heartbeat._client.cache_clear()
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    try:
        assert heartbeat.beat("worker") is False
    finally:
        heartbeat._client.cache_clear()


def test_a_dramatiq_worker_beats_from_boot_until_shutdown():
    broker = StubBroker()
    middleware = heartbeat.WorkerHeartbeat()
    broker.add_middleware(middleware)
    worker = dramatiq.Worker(broker, worker_threads=1)
    worker.start()
    try:
        wait_until(lambda: heartbeat.is_alive("worker"), what="the worker's heartbeat")
    finally:
        worker.stop()
    assert middleware.stopping.is_set()


def test_a_dramatiq_worker_of_the_replies_queues_alone_beats_as_replies_not_as_worker():
    # The Procfile runs both on one host: one beating for the other would hide the other's death.
    broker = StubBroker()
    broker.declare_queue("outbound")
    broker.add_middleware(heartbeat.WorkerHeartbeat())
    worker = dramatiq.Worker(broker, queues=set(heartbeat.REPLIES_QUEUES), worker_threads=1)
    worker.start()
    try:
        wait_until(lambda: heartbeat.is_alive("replies"), what="the replies worker's heartbeat")
        assert not heartbeat.is_alive("worker")
    finally:
        worker.stop()


def test_the_running_scheduler_keeps_its_heartbeat_fresh():
    # The real command in its own process, as the container runs it (stub broker: nothing is enqueued
    # anywhere that matters).
    scheduler = subprocess.Popen(
        [sys.executable, "manage.py", "run_scheduler", "--tick", "0.1"],
        cwd=ROOT,
        env={**os.environ, "DJANGO_ENV": "test", "DRAMATIQ_BROKER": "stub"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_until(
            lambda: heartbeat.is_alive("scheduler") or scheduler.poll() is not None,
            what="the scheduler's heartbeat",
        )
        assert scheduler.poll() is None, scheduler.stderr.read() if scheduler.stderr else ""
        assert healthcheck("--process", "scheduler") == "scheduler: healthy\n"
    finally:
        scheduler.terminate()
        scheduler.wait(timeout=30)


class _Healthz(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/healthz" else 404)
        self.end_headers()
        self.wfile.write(b'{"status": "ok"}')

    def log_message(self, *args: object) -> None:
        pass


def test_web_is_healthy_when_its_healthz_answers_200():
    # A plain server answering /healthz (pytest-django's live_server would live on for the whole session
    # and starve the later WebSocket tests of their database).
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Healthz)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/healthz"
        assert healthcheck("--process", "web", "--url", url) == "web: healthy\n"
    finally:
        server.shutdown()
        server.server_close()


def test_web_is_unhealthy_when_nothing_answers():
    with pytest.raises(CommandError, match="web unreachable"):
        healthcheck("--process", "web", "--url", "http://127.0.0.1:1/healthz")
