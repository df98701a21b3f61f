from __future__ import annotations

import threading

from whatsapp import limiter


def test_slots_are_booked_back_to_back_at_the_cap_across_workers(settings):
    import redis

    key = "wacrm:wa:rate:alpha:1"
    client = redis.Redis.from_url(settings.REDIS_URL)
    # Half-second slots: however slow the machine, the 40 bookings finish long before the schedule
    # they book catches up with the clock (with 10 ms slots a slow run fell behind it and failed).
    limiter.acquire(schema="alpha", phone_number_id="1", cap=2, max_wait=60)
    first_tat = int(client.get(key))
    reserved: list[bool] = []

    def worker() -> None:
        for _ in range(10):
            reserved.append(limiter.acquire(schema="alpha", phone_number_id="1", cap=2, max_wait=60).reserved)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # 40 more slots of 500 ms each (2/s), one after the other, whichever worker asked.
    assert reserved == [True] * 40
    assert int(client.get(key)) - first_tat == 40 * 500_000


def test_a_slot_too_far_ahead_is_not_reserved_and_spends_nothing():
    for _ in range(5):
        limiter.acquire(schema="alpha", phone_number_id="2", cap=1, max_wait=10)
    slot = limiter.acquire(schema="alpha", phone_number_id="2", cap=1, max_wait=1)
    assert not slot.reserved and slot.wait > 3


def test_bulk_never_books_ahead_so_agent_replies_go_first():
    # Bulk takes a slot only when one is free now; an agent reply books the next one at once.
    first = limiter.acquire(schema="alpha", phone_number_id="3", cap=10, bulk=True)
    second_bulk = limiter.acquire(schema="alpha", phone_number_id="3", cap=10, bulk=True)
    agent = limiter.acquire(schema="alpha", phone_number_id="3", cap=10)
    assert first.reserved and not second_bulk.reserved
    assert agent.reserved and agent.wait <= 0.1


def test_numbers_and_tenants_have_separate_limits():
    limiter.acquire(schema="alpha", phone_number_id="4", cap=1)
    assert limiter.acquire(schema="alpha", phone_number_id="5", cap=1).wait == 0
    assert limiter.acquire(schema="beta", phone_number_id="4", cap=1).wait == 0


def test_a_bulk_batch_books_its_slots_in_one_call_at_the_bulk_pace_within_the_horizon(settings):
    settings.WHATSAPP_BULK_SHARE = 1.0
    number = {"schema": "alpha", "phone_number_id": "6", "cap": 10}  # 100 ms slots
    booked = limiter.acquire_bulk(**number, count=50, horizon=0.35)
    # Four slots start within 350 ms (0, 100, 200, 300 ms), one slot apart: never above the cap.
    assert len(booked.offsets) == 4
    gaps = [b - a for a, b in zip(booked.offsets, booked.offsets[1:], strict=False)]
    assert all(0.099 <= gap <= 0.101 for gap in gaps)
    assert booked.offsets[0] <= 0.01
    # Nothing more within the horizon: the next batch is told when to come back, and books nothing.
    refused = limiter.acquire_bulk(**number, count=50, horizon=0.35)
    assert refused.offsets == [] and 0 < refused.wait <= 0.1 + 0.01


def test_an_agent_reply_waits_at_most_the_horizon_behind_a_booked_batch(settings):
    settings.WHATSAPP_BULK_SHARE = 1.0
    number = {"schema": "alpha", "phone_number_id": "7", "cap": 5}  # 200 ms slots
    booked = limiter.acquire_bulk(**number, count=40, horizon=0.5)
    assert len(booked.offsets) == 3  # 0, 200, 400 ms
    reply = limiter.acquire(**number)
    assert reply.reserved and reply.wait <= 0.5 + 0.2 + 0.01
    # Bulk cannot take the reply's slot: its next chance is after it.
    after = limiter.acquire_bulk(**number, count=40, horizon=0.5)
    assert after.offsets == [] or after.offsets[0] >= reply.wait + 0.2 - 0.01
