"""What counts as a dependency being briefly away (PostgreSQL or Redis down, restarting, timing out), and the
capped exponential backoff the long-running processes wait with before trying again."""

from __future__ import annotations

import random

import dramatiq.errors
import psycopg
import redis
from django.db import InterfaceError, OperationalError

# Named ConnectionError before Dramatiq 2.
_BROKER_CONNECTION_ERROR: type[Exception] = (
    getattr(dramatiq.errors, "BrokerConnectionError", None) or dramatiq.errors.ConnectionError
)

# Connection refused or dropped, a server shutting down, a socket timeout: worth retrying later. A bad
# query (ProgrammingError, IntegrityError) is not: it fails the same way every time.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    OperationalError,
    InterfaceError,
    psycopg.OperationalError,
    psycopg.InterfaceError,
    redis.ConnectionError,
    redis.TimeoutError,
    _BROKER_CONNECTION_ERROR,
)


def unavailable_dependency(exc: BaseException) -> str | None:
    """'database' or 'redis' when `exc` (or what it was raised from) says that dependency is away."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, redis.ConnectionError | redis.TimeoutError | _BROKER_CONNECTION_ERROR):
            return "redis"
        if isinstance(current, TRANSIENT_ERRORS):
            return "database"
        current = current.__cause__ or current.__context__
    return None


class Backoff:
    """Exponential delays from `base` doubling up to `cap` seconds, with jitter so that several processes
    that lost the same server do not come back in step. `reset()` after a success."""

    def __init__(self, base: float = 1.0, cap: float = 30.0) -> None:
        self.base = base
        self.cap = cap
        self.failures = 0

    def next_delay(self) -> float:
        delay = min(self.cap, self.base * 2**self.failures)
        self.failures += 1
        return delay * random.uniform(0.8, 1.0)

    def reset(self) -> None:
        self.failures = 0
