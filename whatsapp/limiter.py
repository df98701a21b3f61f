"""Per-number send limiter shared by every worker (Redis, GCRA), with priority for agent replies.

Each number has a theoretical arrival time (TAT): the next free send slot, one slot per 1/cap seconds,
no burst, so a number never goes above its cap in any second. An agent reply reserves the next slot
even if it is a little ahead (the worker sleeps until it); bulk traffic only takes a slot that is free
now and is additionally paced at WHATSAPP_BULK_SHARE of the cap, so it can never fill the slots ahead
of agent replies. The clock is Redis's (TIME), identical for all workers.
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


def reset(*, schema: str, phone_number_id: str) -> None:
    key = f"wacrm:wa:rate:{schema}:{phone_number_id}"
    redis_client().delete(key, key + ":bulk")
