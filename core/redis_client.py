"""The process's synchronous Redis client (send limiter, inbound wake flag). redis-py's pool notices a
fork and opens new connections in the child, so one client serves every thread of every worker."""

from __future__ import annotations

from functools import lru_cache

import redis
from django.conf import settings


@lru_cache(maxsize=1)
def redis_client() -> redis.Redis:
    # A hung Redis raises after a few seconds instead of holding a worker thread or the ingress forever.
    return redis.Redis.from_url(settings.REDIS_URL, socket_timeout=5, socket_connect_timeout=5)
