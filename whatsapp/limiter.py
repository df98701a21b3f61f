"""Per-number send limiter shared by every worker (Redis, GCRA), with priority for agent replies.

Each number has a theoretical arrival time (TAT): the next free send slot, one slot per 1/cap seconds,
no burst, so a number never goes above its cap in any second. An agent reply reserves the next slot
even if it is a little ahead (the worker sleeps until it); bulk traffic only takes a slot that is free
now and is additionally paced at WHATSAPP_BULK_SHARE of the cap, so it can never fill the slots ahead
of agent replies. A bulk batch books its slots with one call (acquire_bulk), but none further ahead than
a short horizon: a reply then waits at most that horizon plus one slot. The clock is Redis's (TIME),
identical for all workers.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import redis
from django.conf import settings

from core.redis_client import redis_client

# KEYS: number TAT, bulk TAT. ARGV: interval µs, bulk interval µs, max wait µs, bulk (0/1).
# Returns {reserved (0/1), wait µs}.
ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local bulk_interval = tonumber(ARGV[2])
local max_wait = tonumber(ARGV[3])
local bulk = ARGV[4] == '1'
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
local slot = math.max(now, tat)
if bulk then
  local bulk_tat = tonumber(redis.call('GET', KEYS[2]) or '0')
  slot = math.max(slot, bulk_tat)
  -- Bulk never books ahead: the slots ahead stay for agent replies.
  if slot - now > 2000 then return {0, slot - now} end
  local bulk_next = slot + bulk_interval
  local bulk_ttl = math.ceil((bulk_next - now) / 1000) + 1000
  redis.call('SET', KEYS[2], string.format('%.0f', bulk_next), 'PX', bulk_ttl)
elseif slot - now > max_wait then
  return {0, slot - now}
end
local nxt = slot + interval
redis.call('SET', KEYS[1], string.format('%.0f', nxt), 'PX', math.ceil((nxt - now) / 1000) + 1000)
return {1, slot - now}
"""


@dataclass(frozen=True)
class Slot:
    reserved: bool
    wait: float  # seconds until the slot (reserved) or until trying again makes sense (not reserved)


@lru_cache(maxsize=1)
def _script() -> redis.commands.core.Script:
    return redis_client().register_script(ACQUIRE)


def acquire(
    *, schema: str, phone_number_id: str, cap: int, bulk: bool = False, max_wait: float = 1.0
) -> Slot:
    """Reserve a send slot for the number. Not reserved → reschedule after `wait` (no retry spent)."""
    cap = max(1, cap)
    interval = 1_000_000 / cap
    bulk_interval = interval / max(0.05, min(1.0, settings.WHATSAPP_BULK_SHARE))
    key = f"wacrm:wa:rate:{schema}:{phone_number_id}"
    reserved, wait_us = _script()(
        keys=[key, key + ":bulk"],
        args=[f"{interval:.3f}", f"{bulk_interval:.3f}", int(max_wait * 1_000_000), "1" if bulk else "0"],
    )
    return Slot(reserved=bool(reserved), wait=max(0, int(wait_us)) / 1_000_000)


# KEYS: number TAT, bulk TAT. ARGV: interval µs, bulk interval µs, count, horizon µs.
# Books up to `count` consecutive bulk slots that begin within `horizon` of now, as acquire() books one.
# Returns {booked, offsets µs of the booked slots...}, or {0, wait µs} when none is within the horizon.
BOOK = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local bulk_interval = tonumber(ARGV[2])
local count = tonumber(ARGV[3])
local horizon = tonumber(ARGV[4])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
local bulk_tat = tonumber(redis.call('GET', KEYS[2]) or '0')
local slot = math.max(now, tat, bulk_tat)
if slot - now > horizon then return {0, math.floor(slot - now - horizon)} end
local booked = {0}
while booked[1] < count and slot - now <= horizon do
  booked[1] = booked[1] + 1
  booked[booked[1] + 1] = math.floor(slot - now)
  tat = slot + interval
  bulk_tat = slot + bulk_interval
  slot = math.max(tat, bulk_tat)
end
redis.call('SET', KEYS[1], string.format('%.0f', tat), 'PX', math.ceil((tat - now) / 1000) + 1000)
redis.call('SET', KEYS[2], string.format('%.0f', bulk_tat), 'PX', math.ceil((bulk_tat - now) / 1000) + 1000)
return booked
"""


@lru_cache(maxsize=1)
def _book_script() -> redis.commands.core.Script:
    return redis_client().register_script(BOOK)


@dataclass(frozen=True)
class Slots:
    offsets: list[float]  # seconds from now of each booked slot, in order (empty: none booked)
    wait: float  # none booked: seconds until trying again makes sense


def acquire_bulk(*, schema: str, phone_number_id: str, cap: int, count: int, horizon: float) -> Slots:
    """Book up to `count` bulk slots of the number in one call: consecutive slots at the bulk pace, the
    first free one onwards, but none further than `horizon` seconds ahead. The priority lane stays: an
    agent reply books the slot after the last one booked, so it waits at most `horizon` plus one slot
    behind bulk traffic (acquire() books bulk only 2 ms ahead; a batch may book its slots for the next
    `horizon` seconds, WHATSAPP_BULK_BOOK_AHEAD_SECONDS, so one Redis call serves many sends)."""
    cap = max(1, cap)
    interval = 1_000_000 / cap
    bulk_interval = interval / max(0.05, min(1.0, settings.WHATSAPP_BULK_SHARE))
    key = f"wacrm:wa:rate:{schema}:{phone_number_id}"
    result = _book_script()(
        keys=[key, key + ":bulk"],
        args=[f"{interval:.3f}", f"{bulk_interval:.3f}", max(1, count), max(2000, int(horizon * 1_000_000))],
    )
    booked = int(result[0])
    if not booked:
        return Slots(offsets=[], wait=max(0, int(result[1])) / 1_000_000)
    return Slots(offsets=[max(0, int(v)) / 1_000_000 for v in result[1 : booked + 1]], wait=0.0)


# KEYS: number TAT. ARGV: pause µs. The next slot is at least `pause` from now (never earlier than booked).
BACK_OFF = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local until_ = now + tonumber(ARGV[1])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if until_ > tat then
  redis.call('SET', KEYS[1], string.format('%.0f', until_), 'PX', math.ceil(tonumber(ARGV[1]) / 1000) + 1000)
end
return 1
"""


@lru_cache(maxsize=1)
def _back_off_script() -> redis.commands.core.Script:
    return redis_client().register_script(BACK_OFF)


def back_off(*, schema: str, phone_number_id: str, seconds: float) -> None:
    """Meta said slow down (130429): no send from the number, bulk or reply, for `seconds`."""
    key = f"wacrm:wa:rate:{schema}:{phone_number_id}"
    _back_off_script()(keys=[key], args=[int(seconds * 1_000_000)])


def reset(*, schema: str, phone_number_id: str) -> None:
    key = f"wacrm:wa:rate:{schema}:{phone_number_id}"
    redis_client().delete(key, key + ":bulk")
