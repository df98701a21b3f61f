"""The scheduler process: enqueues each periodic job when it is due.

Any number of copies may run: a Redis lock per job and period makes sure each run is enqueued once.
"""

from __future__ import annotations

import signal
import time
from typing import Any

import dramatiq
import redis
import structlog
from django.conf import settings
from django.core.management.base import BaseCommand
from django.utils.module_loading import import_string

import config.dramatiq  # noqa: F401

log = structlog.get_logger("scheduler")


class Command(BaseCommand):
    help = "Run periodic jobs (webhook sweeper, template sync, snooze wake-ups, cleanup)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--once", action="store_true", help="Enqueue every job once and exit.")
        parser.add_argument("--tick", type=float, default=1.0)

    def handle(self, *args: Any, **options: Any) -> None:
        client = redis.Redis.from_url(settings.REDIS_URL)
        jobs: dict[str, tuple[dramatiq.Actor, int]] = {
            name: (import_string(path), every) for name, (path, every) in settings.PERIODIC_JOBS.items()
        }
        stopping = False

        def stop(*_: Any) -> None:
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        log.info("scheduler_started", jobs=sorted(jobs))
        while not stopping:
            now = time.time()
            for name, (actor, every) in jobs.items():
                slot = int(now // every)
                if options["once"] or client.set(
                    f"wacrm:scheduler:{name}:{slot}", "1", nx=True, ex=every * 2
                ):
                    actor.send()
                    log.info("job_enqueued", job=name)
            if options["once"]:
                return
            time.sleep(options["tick"])
        log.info("scheduler_stopped")
