from __future__ import annotations

import json

import pytest
from dramatiq.brokers.redis import RedisBroker

import config.dramatiq

DEAD_REDIS = "redis://127.0.0.1:1/0"


@pytest.mark.parametrize("host", ["localhost", "alpha.localhost", "nobody.localhost"])
def test_health_is_ok_on_every_host(db, host):
    from django.test import Client

    response = Client(HTTP_HOST=host).get("/healthz")
    assert response.status_code == 200
    body = json.loads(response.content)
    assert body["checks"] == {"database": "ok", "redis": "ok", "broker": "ok"}


def test_health_names_redis_when_it_is_down(public_client, settings):
    settings.REDIS_URL = DEAD_REDIS
    response = public_client.get("/healthz")
    assert response.status_code == 503
    body = json.loads(response.content)
    assert body["down"] == ["redis"]


def test_health_names_the_broker_when_it_is_down(public_client, monkeypatch):
    monkeypatch.setattr(config.dramatiq, "_broker", RedisBroker(url=DEAD_REDIS))
    response = public_client.get("/healthz")
    assert response.status_code == 503
    assert json.loads(response.content)["down"] == ["broker"]
