"""The scheduler process: enqueues each periodic job when it is due.

Any number of copies may run: a Redis lock per job and period makes sure each run is enqueued once.

It outlives its dependencies: a tick that fails because Redis or PostgreSQL is away (or for any other
reason) is logged, the loop waits with a capped exponential backoff and tries again; it never exits on
its own. A job whose lock was taken but whose message could not be sent gives the lock back, so the next
tick enqueues it.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from typing import Any

import dramatiq
import redis
import structlog
from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import connection
from django.utils.module_loading import import_string

import tenants.jobs  # noqa: F401  (actors bind to the broker)
from core import heartbeat
from core.redis_client import redis_client
from core.resilience import TRANSIENT_ERRORS, Backoff

log = structlog.get_logger("scheduler")

# Waits between failed ticks: 1 s doubling up to this (with jitter).
MAX_BACKOFF_SECONDS = 30.0

Jobs = dict[str, tuple[dramatiq.Actor, int]]


def enqueue_due(client: redis.Redis, jobs: Jobs, now: float, *, force: bool = False) -> list[str]:
    """Send every job whose period `now` falls in and that no scheduler has sent for it yet."""
    sent = []
    for name, (actor, every) in jobs.items():
        key = f"wacrm:scheduler:{name}:{int(now // every)}"
        if not force and not client.set(key, "1", nx=True, ex=every * 2):
            continue
        try:
            actor.send()
        except BaseException:
            if not force:
                # The next tick tries again; if Redis is away the key expires with its period.
                with contextlib.suppress(redis.RedisError):
                    client.delete(key)
            raise
        sent.append(name)
        log.info("job_enqueued", job=name)
    return sent


class Command(BaseCommand):
    help = "Run periodic jobs (webhook sweeper, template sync, snooze wake-ups, cleanup)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--once", action="store_true", help="Enqueue every job once and exit.")
        parser.add_argument("--tick", type=float, default=1.0)

    def handle(self, *args: Any, **options: Any) -> None:
        client = redis_client()
        jobs: Jobs = {
            name: (import_string(path), every) for name, (path, every) in settings.PERIODIC_JOBS.items()
        }
        if options["once"]:
            enqueue_due(client, jobs, 0.0, force=True)
            return
        stopping = threading.Event()

        def stop(*_: Any) -> None:
            stopping.set()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        log.info("scheduler_started", jobs=sorted(jobs))
        run_forever(client, jobs, tick=options["tick"], stopping=stopping)
        log.info("scheduler_stopped")


def run_forever(client: redis.Redis, jobs: Jobs, *, tick: float, stopping: threading.Event) -> None:
    backoff = Backoff(base=max(tick, 0.1), cap=MAX_BACKOFF_SECONDS)
    while not stopping.is_set():
        try:
            enqueue_due(client, jobs, time.time())
            heartbeat.beat("scheduler")  # read by `manage.py healthcheck --process scheduler`
        except Exception as exc:
            delay = backoff.next_delay()
            transient = isinstance(exc, TRANSIENT_ERRORS)
            log.warning(
                "scheduler_tick_failed",
                error=repr(exc),
                transient=transient,
                retry_in=round(delay, 2),
                exc_info=not transient,
            )
            # A connection the failure left broken is not reused by the next tick.
            connection.close()
            stopping.wait(delay)
            continue
        if backoff.failures:
            log.info("scheduler_recovered", after_failures=backoff.failures)
            backoff.reset()
        stopping.wait(tick)
