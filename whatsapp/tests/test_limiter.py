from __future__ import annotations

import threading

from whatsapp import limiter


def test_slots_are_spaced_by_the_cap_across_workers():
    slots: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(10):
            slot = limiter.acquire(schema="alpha", phone_number_id="1", cap=100, max_wait=5)
            with lock:
                slots.append(slot.wait)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    waits = sorted(slots)
    # 40 reservations at 100/s: the last one is ~0.39 s out, each 10 ms after the previous.
    assert len(waits) == 40
    assert 0.37 <= waits[-1] <= 0.41
    assert all(b - a >= 0.008 for a, b in zip(waits, waits[1:], strict=False))


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
