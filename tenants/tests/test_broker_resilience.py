"""The Redis broker outlives Redis: a socket timeout is a connection loss (the worker's consumer logs it
and reconnects), like a refused or dropped connection, not an unexpected error."""

from __future__ import annotations

import pytest
import redis
from dramatiq.errors import ConnectionClosed

from tenants.jobs import PromptRedisBroker


@pytest.fixture
def stalled_broker(monkeypatch):
    broker = PromptRedisBroker(url="redis://127.0.0.1:1/0", namespace="wacrm-resilience-test")

    def stalls(*args, **kwargs):
        raise redis.TimeoutError("Timeout reading from socket")

    for name in ("do_fetch", "do_ack", "do_nack", "do_requeue"):
        monkeypatch.setattr(broker, name, stalls)
    return broker


def test_a_socket_timeout_while_fetching_is_a_connection_loss(stalled_broker):
    consumer = stalled_broker.consume("default")
    with pytest.raises(ConnectionClosed):
        next(consumer)
    consumer.close()


def test_a_refused_connection_is_a_connection_loss_too():
    broker = PromptRedisBroker(url="redis://127.0.0.1:1/0", namespace="wacrm-resilience-test")
    consumer = broker.consume("default")
    with pytest.raises(ConnectionClosed):
        next(consumer)
    consumer.close()


def test_the_broker_client_gives_up_on_a_silent_redis_instead_of_hanging():
    from tenants.jobs import SOCKET_TIMEOUT_SECONDS, broker_client

    kwargs = broker_client("redis://127.0.0.1:6379/0").connection_pool.connection_kwargs
    assert kwargs["socket_timeout"] == kwargs["socket_connect_timeout"] == SOCKET_TIMEOUT_SECONDS
