from __future__ import annotations

import json

import pytest
from dramatiq.brokers.redis import RedisBroker

import tenants.jobs

DEAD_REDIS = "redis://127.0.0.1:1/0"


@pytest.mark.parametrize("host", ["localhost", "alpha.localhost", "nobody.localhost"])
def test_health_is_ok_on_every_host(db, host):
    from django.test import Client

    response = Client(HTTP_HOST=host).get("/healthz")
    assert response.status_code == 200
    body = json.loads(response.content)
    assert body["checks"] == {"database": "ok", "redis": "ok", "broker": "ok"}


def test_health_is_degraded_naming_redis_when_it_is_down(public_client, settings):
    # The web still stores webhooks and serves pages without Redis: a load balancer keeps it.
    settings.REDIS_URL = DEAD_REDIS
    response = public_client.get("/healthz")
    assert response.status_code == 200
    body = json.loads(response.content)
    assert (body["status"], body["down"]) == ("degraded", ["redis"])


def test_health_names_the_broker_when_it_is_down(public_client, monkeypatch):
    monkeypatch.setattr(tenants.jobs, "_broker", RedisBroker(url=DEAD_REDIS))
    response = public_client.get("/healthz")
    assert response.status_code == 200
    assert json.loads(response.content)["down"] == ["broker"]


def test_health_is_unavailable_when_the_database_is_down(public_client, monkeypatch):
    from django.db import OperationalError

    import config.health

    def refused() -> None:
        raise OperationalError("connection refused")

    monkeypatch.setitem(config.health.CHECKS, "database", refused)
    response = public_client.get("/healthz")
    assert response.status_code == 503
    body = json.loads(response.content)
    assert (body["status"], body["down"]) == ("unavailable", ["database"])


def _database_away(monkeypatch: pytest.MonkeyPatch, error: type[Exception]) -> None:
    """Every new query fails as it does while PostgreSQL restarts."""
    from django.db.backends.utils import CursorWrapper

    def execute(self, sql, params=None):
        raise error("connection failed: connection to server at 127.0.0.1 failed: Connection refused")

    monkeypatch.setattr(CursorWrapper, "execute", execute)


@pytest.mark.parametrize(
    ("host", "path", "json_body"),
    [
        ("alpha.localhost", "/inbox/", False),
        ("alpha.localhost", "/api/v1/contacts/", True),
    ],
)
def test_a_page_answers_503_not_500_while_the_database_is_down(db, monkeypatch, host, path, json_body):
    from django.db import OperationalError
    from django.test import Client

    from tenants.middleware import forget_tenants

    forget_tenants()  # tenant routing must go to the database
    _database_away(monkeypatch, OperationalError)
    response = Client(HTTP_HOST=host, raise_request_exception=False).get(path)
    assert response.status_code == 503
    assert response["Retry-After"]
    if json_body:
        assert json.loads(response.content)["error"]["code"] == "unavailable"
    else:
        assert b"Briefly unavailable" in response.content


def test_a_redis_outage_in_a_view_answers_503(db, monkeypatch):
    import redis
    from django.test import Client

    import tenants.middleware

    def away(*args, **kwargs):
        raise redis.ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(tenants.middleware.TenantMiddleware, "process_request", away)
    response = Client(HTTP_HOST="alpha.localhost", raise_request_exception=False).get("/inbox/")
    assert response.status_code == 503


def test_a_bug_still_answers_500(db, monkeypatch):
    from django.test import Client

    import tenants.middleware

    def bug(*args, **kwargs):
        raise ValueError("a bug, not an outage")

    monkeypatch.setattr(tenants.middleware.TenantMiddleware, "process_request", bug)
    response = Client(HTTP_HOST="alpha.localhost", raise_request_exception=False).get("/inbox/")
    assert response.status_code == 500
