"""The Dramatiq broker, with the tenant middleware and structured logs for every actor run.

Import this module before declaring actors (each `actors.py` does) so they bind to this broker. It lives
in tenants, below every app that declares actors: each job runs in the schema of the tenant that queued it.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

import dramatiq
import redis
import structlog
from django.conf import settings
from django.db import close_old_connections
from django_tenants.utils import get_public_schema_name
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker
from dramatiq.errors import ConnectionClosed

from tenants.db import connection

log = structlog.get_logger("jobs")

TENANT_OPTION = "tenant_schema"


class TenantMiddleware(dramatiq.Middleware):
    """Records the enqueuing connection's schema in the message and activates it in the worker.

    The schema is reset to public after success, failure and skip, so a worker thread never carries
    one tenant's schema into the next message.
    """

    def before_enqueue(self, broker: dramatiq.Broker, message: dramatiq.Message, delay: int) -> None:
        if TENANT_OPTION not in message.options:
            message.options[TENANT_OPTION] = getattr(connection, "schema_name", get_public_schema_name())

    def before_process_message(self, broker: dramatiq.Broker, message: dramatiq.MessageProxy) -> None:
        close_old_connections()
        schema = message.options.get(TENANT_OPTION) or get_public_schema_name()
        if schema == get_public_schema_name():
            connection.set_schema_to_public()
        else:
            connection.set_schema(schema)
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(
            tenant=schema, actor=message.actor_name, message_id=message.message_id
        )
        message.options["_started"] = time.perf_counter()

    def _reset(self) -> None:
        connection.set_schema_to_public()
        close_old_connections()
        structlog.contextvars.clear_contextvars()

    def after_process_message(
        self,
        broker: dramatiq.Broker,
        message: dramatiq.MessageProxy,
        *,
        result: Any = None,
        exception: BaseException | None = None,
    ) -> None:
        started = message.options.pop("_started", None)
        ms = round((time.perf_counter() - started) * 1000, 1) if started else None
        retries = message.options.get("retries", 0)
        if exception is None:
            log.info("actor_run", outcome="ok", ms=ms, retries=retries)
        else:
            log.warning("actor_run", outcome="error", ms=ms, retries=retries, error=repr(exception))
        self._reset()

    def after_skip_message(self, broker: dramatiq.Broker, message: dramatiq.MessageProxy) -> None:
        message.options.pop("_started", None)
        log.info("actor_run", outcome="skipped")
        self._reset()


def send_in_schema(actor: dramatiq.Actor, schema: str, *args: Any, **kwargs: Any) -> dramatiq.Message:
    """Enqueue for a given tenant (fan-out from a public-schema job), whatever schema is active here."""
    options: dict[str, Any] = {TENANT_OPTION: schema}
    return actor.send_with_options(args=args, kwargs=kwargs, **options)


# An idle Redis consumer backs off exponentially up to the worker's timeout (1 s), so the first message
# after a quiet spell waited up to a second: too slow for a reply to show in the inbox. Capped at 100 ms,
# an idle worker process polls each queue ten times a second.
IDLE_POLL_MS = 100


# A Redis that stops answering (paused, a network partition) raises after this long instead of holding
# the worker's consumer, or the web's enqueue, forever.
SOCKET_TIMEOUT_SECONDS = 10


@contextlib.contextmanager
def _timeouts_as_connection_loss() -> Iterator[None]:
    """Dramatiq's Redis consumer maps redis.ConnectionError to ConnectionClosed (the worker logs it and
    reconnects a second later) but lets redis.TimeoutError through as an unexpected error with a
    traceback (Bogdanp/dramatiq#894). Both are the same event: Redis is away for a while."""
    try:
        yield
    except redis.TimeoutError as exc:
        raise ConnectionClosed(exc) from None


class _ResilientConsumer(dramatiq.Consumer):
    def __init__(self, consumer: dramatiq.Consumer) -> None:
        self.consumer = consumer

    def __next__(self) -> dramatiq.MessageProxy | None:
        with _timeouts_as_connection_loss():
            return next(self.consumer)  # type: ignore[no-any-return]

    def ack(self, message: dramatiq.MessageProxy) -> None:
        with _timeouts_as_connection_loss():
            self.consumer.ack(message)

    def nack(self, message: dramatiq.MessageProxy) -> None:
        with _timeouts_as_connection_loss():
            self.consumer.nack(message)

    def requeue(self, messages: Any) -> None:
        with _timeouts_as_connection_loss():
            self.consumer.requeue(messages)

    def close(self) -> None:
        self.consumer.close()


class PromptRedisBroker(RedisBroker):
    def consume(self, queue_name: str, prefetch: int = 1, timeout: int = 5000) -> dramatiq.Consumer:
        consumer = super().consume(queue_name, prefetch=prefetch, timeout=min(timeout, IDLE_POLL_MS))
        return _ResilientConsumer(consumer)


def broker_client(url: str) -> redis.Redis:
    return redis.Redis.from_url(
        url,
        socket_timeout=SOCKET_TIMEOUT_SECONDS,
        socket_connect_timeout=SOCKET_TIMEOUT_SECONDS,
        # A connection left dead by a Redis restart is noticed before a command is sent on it.
        health_check_interval=30,
    )


_broker: dramatiq.Broker | None = None


def get_broker() -> dramatiq.Broker:
    global _broker
    if _broker is None:
        if settings.DRAMATIQ_BROKER == "stub":
            _broker = StubBroker()
            _broker.emit_after("process_boot")
        else:
            _broker = PromptRedisBroker(
                client=broker_client(settings.DRAMATIQ_BROKER_URL), namespace="wacrm-tasks"
            )
        _broker.add_middleware(TenantMiddleware())
        for queue in settings.DRAMATIQ_QUEUES:
            _broker.declare_queue(queue)
        dramatiq.set_broker(_broker)
    return _broker


broker = get_broker()
