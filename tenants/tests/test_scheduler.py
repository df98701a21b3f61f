"""The scheduler enqueues each due job once per period and survives Redis or the broker being away."""

from __future__ import annotations

import threading
from typing import Any

import pytest
import redis

from tenants.management.commands import run_scheduler


class FlakyRedis:
    """SET NX as Redis does, failing the first `failures` calls as a stopped Redis would."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.keys: set[str] = set()
        self.calls = 0

    def set(self, key: str, value: str, *, nx: bool, ex: int) -> bool:
        self.calls += 1
        if self.calls <= self.failures:
            raise redis.ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")
        if key in self.keys:
            return False
        self.keys.add(key)
        return True

    def delete(self, key: str) -> int:
        self.keys.discard(key)
        return 1


class Actor:
    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.attempts = 0
        self.sent = 0

    def send(self) -> None:
        self.attempts += 1
        if self.attempts <= self.failures:
            raise redis.TimeoutError("Timeout reading from socket")
        self.sent += 1


def test_a_due_job_is_enqueued_once_per_period():
    client, actor = FlakyRedis(), Actor()
    jobs: Any = {"sweep": (actor, 30)}
    assert run_scheduler.enqueue_due(client, jobs, 60.0) == ["sweep"]
    assert run_scheduler.enqueue_due(client, jobs, 75.0) == []  # same period, another scheduler's tick
    assert run_scheduler.enqueue_due(client, jobs, 90.0) == ["sweep"]
    assert actor.sent == 2


def test_a_job_whose_send_failed_gives_its_lock_back_and_is_sent_next_tick():
    client, actor = FlakyRedis(), Actor(failures=1)
    jobs: Any = {"sweep": (actor, 30)}
    with pytest.raises(redis.TimeoutError):
        run_scheduler.enqueue_due(client, jobs, 60.0)
    assert run_scheduler.enqueue_due(client, jobs, 61.0) == ["sweep"]
    assert actor.sent == 1


def test_the_loop_logs_backs_off_and_carries_on_while_redis_is_away(monkeypatch):
    client, actor = FlakyRedis(failures=3), Actor()
    stopping = threading.Event()
    waits: list[float] = []

    def wait(timeout: float) -> bool:
        waits.append(timeout)
        if actor.sent:
            stopping.set()
        return stopping.is_set()

    monkeypatch.setattr(stopping, "wait", wait)
    closed: list[bool] = []
    monkeypatch.setattr(run_scheduler.connection, "close", lambda: closed.append(True))
    run_scheduler.run_forever(client, {"sweep": (actor, 30)}, tick=1.0, stopping=stopping)  # type: ignore[dict-item]

    assert actor.sent == 1
    # Three failed ticks waited longer and longer (jitter keeps each within 80-100 % of 1, 2, 4 s).
    assert all(0.8 * 2**i <= w <= 2**i for i, w in enumerate(waits[:3])), waits
    assert len(closed) == 3  # the database connection is not reused after a failure


def test_the_backoff_is_capped():
    backoff = run_scheduler.Backoff(base=1.0, cap=30.0)
    delays = [backoff.next_delay() for _ in range(10)]
    assert max(delays) <= 30.0
    assert delays[-1] >= 0.8 * 30.0
    backoff.reset()
    assert backoff.next_delay() <= 1.0
