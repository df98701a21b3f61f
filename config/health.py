"""/healthz on every host, answered before tenant routing so that it works even when the database is down,
and 503 instead of 500 for any request that failed because PostgreSQL or Redis is away.

/healthz: 200 "ok" when every dependency answers; 200 "degraded" when only Redis (cache, broker) is away:
the web still stores webhooks and serves pages, and jobs are picked up by the sweepers once it is back;
503 "unavailable" when the database is away.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

import redis
import structlog
from django.conf import settings
from django.core.signals import got_request_exception
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse

from core.errors import error_body
from core.resilience import unavailable_dependency

log = structlog.get_logger("health")


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
    from tenants.jobs import get_broker

    broker = get_broker()
    client = getattr(broker, "client", None)
    if client is None:
        return
    # The broker's own connections wait up to its socket timeout; a health check answers within a second.
    pool = client.connection_pool
    quick = redis.Redis(
        connection_pool=redis.ConnectionPool(
            connection_class=pool.connection_class,
            **{**pool.connection_kwargs, "socket_timeout": 1, "socket_connect_timeout": 1},
        )
    )
    try:
        quick.ping()
    finally:
        quick.close()


# Without these the web cannot answer at all; the others it can do without for a while.
ESSENTIAL = ("database",)


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
        down = [name for name, state in states.items() if state != "ok"]
        usable = not any(name in ESSENTIAL for name in down)
        body: dict[str, Any] = {
            "status": "ok" if healthy else "degraded" if usable else "unavailable",
            "checks": states,
        }
        if down:
            body["down"] = down
        return HttpResponse(json.dumps(body), status=200 if usable else 503, content_type="application/json")


RETRY_AFTER_SECONDS = 5
_DEPENDENCY_ATTR = "_unavailable_dependency"


def _remember_dependency(sender: Any, request: HttpRequest | None = None, **kwargs: Any) -> None:
    """Django turns a view's or inner middleware's exception into a 500 response before the outer
    middleware sees it; this tells DependencyUnavailableMiddleware which ones were a dependency away."""
    exc = sys.exc_info()[1]
    if request is not None and exc is not None:
        dependency = unavailable_dependency(exc)
        if dependency:
            setattr(request, _DEPENDENCY_ATTR, dependency)


got_request_exception.connect(_remember_dependency, dispatch_uid="config.health.remember_dependency")


def unavailable(request: HttpRequest, dependency: str) -> HttpResponse:
    """503 with Retry-After, built without the database or templates (both may be what is down)."""
    message = "The service is briefly unavailable. Please try again in a moment."
    if request.path.startswith(("/api/", "/webhooks/")):
        response: HttpResponse = JsonResponse(
            error_body("unavailable", message, {"dependency": dependency}), status=503
        )
    else:
        response = HttpResponse(
            "<!doctype html><meta charset=utf-8><title>Briefly unavailable</title>"
            f"<h1>Briefly unavailable</h1><p>{message}</p>",
            status=503,
            content_type="text/html; charset=utf-8",
        )
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


class DependencyUnavailableMiddleware:
    """A request that failed because PostgreSQL or Redis is away answers 503 (try again), not 500.

    Sits outside tenant routing, which is the first thing to need the database."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        try:
            response = self.get_response(request)
        except Exception as exc:
            # The error page itself failed (it needed the database too).
            dependency = unavailable_dependency(exc)
            if dependency is None:
                raise
            setattr(request, _DEPENDENCY_ATTR, dependency)
            response = HttpResponse(status=500)
        dependency = getattr(request, _DEPENDENCY_ATTR, None)
        if response.status_code == 500 and dependency:
            log.warning("dependency_unavailable", dependency=dependency, path=request.path)
            # The failed connection is not handed to the next request.
            connection.close_if_unusable_or_obsolete()
            return unavailable(request, dependency)
        return response
