"""Liveness of the processes that serve no HTTP (worker, replies, scheduler): each writes a Redis key with a
TTL, and `manage.py healthcheck --process worker|replies|scheduler` (docker-compose.yml's healthchecks)
checks it.

The key is per process kind and host (a container's host name is its id), so each replica reports only
its own, and a `replies` worker beside a `worker` on one host (the Procfile) cannot stand in for it. A
process that hangs or cannot reach Redis stops refreshing it; the key expires after TTL seconds and the
healthcheck fails.
"""

from __future__ import annotations

import socket
import threading
import time
from functools import lru_cache

import dramatiq
import redis
import structlog
from django.conf import settings

log = structlog.get_logger("heartbeat")

PROCESSES = ("worker", "replies", "scheduler")
# The queues of the `replies` service (Procfile, docker-compose.yml): a Dramatiq worker consuming exactly
# these beats as `replies`, any other as `worker`.
REPLIES_QUEUES = frozenset({"outbound"})
INTERVAL_SECONDS = 10.0
TTL_SECONDS = 45

_last_beat: dict[str, float] = {}


@lru_cache(maxsize=1)
def _client() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL, socket_timeout=3, socket_connect_timeout=3)


def key(process: str, host: str | None = None) -> str:
    return f"wacrm:heartbeat:{process}:{host or socket.gethostname()}"


def beat(process: str) -> bool:
    """Refresh the process's key, at most once per INTERVAL_SECONDS (cheap to call from a busy loop).

    Never raises: Redis being away must not add a way for the process to die; the key expiring says it.
    """
    now = time.monotonic()
    if now - _last_beat.get(process, -INTERVAL_SECONDS) < INTERVAL_SECONDS:
        return True
    try:
        _client().set(key(process), str(int(time.time())), ex=TTL_SECONDS)
    except redis.RedisError as exc:
        log.warning("heartbeat_failed", process=process, error=type(exc).__name__)
        return False
    _last_beat[process] = now
    return True


def start(process: str, stopping: threading.Event) -> threading.Thread:
    """A daemon thread that beats until `stopping` is set (for processes without a loop of ours)."""

    def run() -> None:
        while not stopping.is_set():
            beat(process)
            stopping.wait(INTERVAL_SECONDS)

    thread = threading.Thread(target=run, name=f"heartbeat-{process}", daemon=True)
    thread.start()
    return thread


def is_alive(process: str, host: str | None = None) -> bool:
    return bool(_client().exists(key(process, host)))


class WorkerHeartbeat(dramatiq.Middleware):
    """Added by config/worker.py: each Dramatiq worker process beats once its worker has booted, as
    `replies` when it consumes the replies' queues alone, else as `worker`."""

    def __init__(self) -> None:
        self.stopping = threading.Event()

    def after_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        self.stopping.clear()
        queues = worker.consumer_whitelist or set()
        start("replies" if queues == REPLIES_QUEUES else "worker", self.stopping)

    def before_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        self.stopping.set()
