"""manage.py healthcheck --process web|worker|scheduler: exit 0 when that process on this host is healthy.

The containers' healthchecks (Dockerfile, docker-compose.yml). web: its /healthz answers 200 (database,
Redis and broker reachable). worker and scheduler: their heartbeat key in Redis (core/heartbeat.py) is
fresh, i.e. the process on this host wrote it within the last TTL seconds.
"""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from core import heartbeat


class Command(BaseCommand):
    help = "Exit 0 when the given process on this host is healthy (container healthchecks)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--process", choices=["web", *heartbeat.PROCESSES], default="web")
        parser.add_argument(
            "--url",
            default=f"http://127.0.0.1:{os.environ.get('PORT', '8000')}/healthz",
            help="web only: the health URL to fetch (default: this host's /healthz on $PORT or 8000)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        process = options["process"]
        if process == "web":
            try:
                with urllib.request.urlopen(options["url"], timeout=5) as response:  # noqa: S310 - our own URL
                    status = response.status
            except urllib.error.HTTPError as exc:
                raise CommandError(f"web unhealthy: {options['url']} answered {exc.code}") from exc
            except OSError as exc:
                raise CommandError(f"web unreachable at {options['url']}: {exc}") from exc
            if status != 200:
                raise CommandError(f"web unhealthy: {options['url']} answered {status}")
        else:
            try:
                alive = heartbeat.is_alive(process)
            except Exception as exc:
                raise CommandError(f"{process}: cannot read its heartbeat from Redis: {exc}") from exc
            if not alive:
                raise CommandError(
                    f"{process}: no heartbeat from this host in the last {heartbeat.TTL_SECONDS} s "
                    f"(key {heartbeat.key(process)})"
                )
        self.stdout.write(f"{process}: healthy")
