"""/healthz on every host, answered before tenant routing so that it works even when the database is down."""

from __future__ import annotations

import json
from collections.abc import Callable

import redis
from django.conf import settings
from django.db import connection
from django.http import HttpRequest, HttpResponse


def check_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def check_redis() -> None:
    client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=1, socket_connect_timeout=1)
    try:
        client.ping()
    finally:
        client.close()


def check_broker() -> None:
    from config.dramatiq import get_broker

    broker = get_broker()
    client = getattr(broker, "client", None)
    if client is not None:
        client.ping()


CHECKS: dict[str, Callable[[], None]] = {
    "database": check_database,
    "redis": check_redis,
    "broker": check_broker,
}


def health_status() -> tuple[bool, dict[str, str]]:
    states: dict[str, str] = {}
    for name, check in CHECKS.items():
        try:
            check()
            states[name] = "ok"
        except Exception as exc:
            states[name] = f"down: {type(exc).__name__}"
    return all(state == "ok" for state in states.values()), states


class HealthCheckMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path != "/healthz":
            return self.get_response(request)
        healthy, states = health_status()
        body = {"status": "ok" if healthy else "unavailable", "checks": states}
        if not healthy:
            body["down"] = [name for name, state in states.items() if state != "ok"]  # type: ignore[assignment]
        return HttpResponse(json.dumps(body), status=200 if healthy else 503, content_type="application/json")
