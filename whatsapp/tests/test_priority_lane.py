"""Replies never wait behind a campaign: on the number (the limiter's priority lane) and in the worker
(a reply job runs before bulk jobs waiting in the same process). Positions, never wall-clock times."""

from __future__ import annotations

import threading

import dramatiq
import pytest
from django.test import TestCase
from django_tenants.utils import schema_context
from dramatiq.brokers.stub import StubBroker

from conftest import wait_until
from conversations.services import send_text_message
from whatsapp import actors, delivery, limiter
from whatsapp.tests.test_bulk_delivery import audience, send_bulk


def test_a_reply_takes_the_next_slot_of_a_number_bulk_traffic_saturates(settings):
    settings.WHATSAPP_BULK_SHARE = 1.0  # bulk may use the whole cap: replies still go first
    number = {"schema": "alpha", "phone_number_id": "lane1", "cap": 5}  # 200 ms slots
    assert limiter.acquire(**number, bulk=True).reserved
    # The number is saturated: every further bulk attempt is told to come back later.
    refused = limiter.acquire(**number, bulk=True)
    assert not refused.reserved
    reply = limiter.acquire(**number)
    assert reply.reserved
    assert reply.wait <= 0.2 + 0.01  # the very next slot, at most one slot away
    # Bulk cannot take that slot: its next chance is after the reply's.
    after = limiter.acquire(**number, bulk=True)
    assert not after.reserved and after.wait > reply.wait


def test_replies_keep_the_next_slot_however_many_bulk_workers_ask(settings):
    settings.WHATSAPP_BULK_SHARE = 1.0
    number = {"schema": "alpha", "phone_number_id": "lane2", "cap": 2}  # 500 ms slots
    limiter.acquire(**number, bulk=True)
    results: list[bool] = []

    def bulk_worker() -> None:
        for _ in range(20):
            results.append(limiter.acquire(**number, bulk=True).reserved)

    threads = [threading.Thread(target=bulk_worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not any(results)  # nothing books ahead of the present
    replies = [limiter.acquire(**number, max_wait=5) for _ in range(3)]
    assert [r.reserved for r in replies] == [True, True, True]
    assert replies[0].wait <= 0.5 + 0.01  # first in line, whatever bulk asked before


@pytest.fixture
def worker_broker():
    """A Dramatiq worker with ONE thread over a stub broker, and actors with the queue and priority of
    whatsapp.actors' send_message and send_bulk_message, recording the order they run in."""
    broker = StubBroker()
    ran: list[str] = []
    gate = threading.Event()

    @dramatiq.actor(broker=broker, actor_name="blocker", queue_name="bulk", priority=0)
    def blocker() -> None:
        ran.append("blocker")
        gate.wait(10)

    @dramatiq.actor(
        broker=broker,
        actor_name="reply",
        queue_name=actors.send_message.queue_name,
        priority=actors.send_message.priority,
    )
    def reply(name: str) -> None:
        ran.append(name)

    @dramatiq.actor(
        broker=broker,
        actor_name="bulk",
        queue_name=actors.send_bulk_message.queue_name,
        priority=actors.send_bulk_message.priority,
    )
    def bulk(name: str) -> None:
        ran.append(name)

    worker = dramatiq.Worker(broker, worker_threads=1, worker_timeout=50)
    yield worker, blocker, reply, bulk, gate, ran
    gate.set()
    worker.stop()


def test_a_reply_job_runs_before_the_bulk_jobs_waiting_in_the_same_worker(worker_broker):
    worker, blocker, reply, bulk, gate, ran = worker_broker
    assert actors.send_message.priority < actors.send_bulk_message.priority
    assert actors.send_message.queue_name != actors.send_bulk_message.queue_name
    blocker.send()  # the only thread is busy (as with a running campaign batch)
    worker.start()
    wait_until(lambda: ran == ["blocker"], what="the blocker to hold the only thread")
    for index in range(10):
        bulk.send(f"bulk {index}")
    reply.send("reply")

    # A thread-bound worker fetches a couple of jobs per queue ahead: the reply and a bulk job wait.
    def waiting() -> list[str]:
        return [item.message.actor_name for item in list(worker.work_queue.queue)]

    wait_until(lambda: {"reply", "bulk"} <= set(waiting()), what="the reply and bulk jobs to wait")
    gate.set()
    wait_until(lambda: len(ran) == 12, what="every job ran")
    assert ran[1] == "reply"
    assert ran[2:] == [f"bulk {i}" for i in range(10)]


def test_an_agent_reply_goes_out_while_a_campaign_saturates_the_number(
    channel_a, tenant_a, sandbox, settings
):
    settings.WHATSAPP_BULK_SHARE = 1.0
    with schema_context(tenant_a.schema_name):
        conversations = audience(channel_a, 3)
        campaign = send_bulk(conversations[:2])
        # The campaign just took the number's slot that is free now.
        delivery.deliver_bulk(message_id=campaign[0].pk)
        with TestCase.captureOnCommitCallbacks(execute=True):
            reply = send_text_message(conversation=conversations[2], text="An agent's answer")
        outcome = delivery.deliver_message(message_id=reply.pk)
        assert outcome.action == "sent"  # booked the next slot at once, not told to wait
        sent = [s["body"]["biz_opaque_callback_data"] for s in sandbox.sent()]
        assert sent.index(f"wacrm:{reply.pk}") < len(sent)
