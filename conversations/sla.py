"""SLA clocks: first-response and resolution targets counted in business hours, in the workspace's zone
(BotSettings.time_zone, the hours of Settings → Inbox).

The two pure functions below do the arithmetic; everything else (which policy applies, due times on
the conversation, the breach sweep, notifications, reports) builds on them. Hours are (weekday, opens,
closes) in local wall-clock time, weekday 0 = Monday; `closes <= opens` means the interval ends the next
day (00:00 = midnight). No hours at all means every second counts (a 24/7 workspace). Durations are real
elapsed seconds: a 09:00-17:00 day is 8 hours even across a DST change, and a 00:00-24:00 day on the
night the clocks change is 23 or 25 hours."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator, Sequence
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

Hours = Sequence[tuple[int, dt.time, dt.time]]

UTC = dt.UTC
# How far ahead a deadline may be searched (a workspace open one hour a year still gets an answer).
MAX_DAYS = 800


def zone(tz: str | dt.tzinfo) -> dt.tzinfo:
    if isinstance(tz, dt.tzinfo):
        return tz
    try:
        return ZoneInfo(tz or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return UTC


def _intervals(day: dt.date, hours: Hours, tz: dt.tzinfo) -> Iterator[tuple[dt.datetime, dt.datetime]]:
    """The day's opening intervals as UTC datetimes, in order."""
    for weekday, opens, closes in sorted(hours, key=lambda h: (h[0], h[1])):
        if weekday != day.weekday():
            continue
        start = dt.datetime.combine(day, opens, tzinfo=tz).astimezone(UTC)
        end_day = day if closes > opens else day + dt.timedelta(days=1)
        end = dt.datetime.combine(end_day, closes, tzinfo=tz).astimezone(UTC)
        if end > start:
            yield start, end


def _days_from(moment: dt.datetime, tz: dt.tzinfo) -> Iterator[dt.date]:
    # From the day before: an overnight interval opened yesterday may still be running.
    day = moment.astimezone(tz).date() - dt.timedelta(days=1)
    for _ in range(MAX_DAYS):
        yield day
        day += dt.timedelta(days=1)


def business_seconds_between(
    start: dt.datetime, end: dt.datetime, hours: Hours, tz: str | dt.tzinfo
) -> float:
    """Seconds of opening time between two aware datetimes (0 when end <= start)."""
    if end <= start:
        return 0.0
    if not hours:
        return (end - start).total_seconds()
    tz = zone(tz)
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    total = 0.0
    last_day = end.astimezone(tz).date()
    for day in _days_from(start, tz):
        if day > last_day:
            break
        for opens, closes in _intervals(day, hours, tz):
            overlap = (min(closes, end) - max(opens, start)).total_seconds()
            if overlap > 0:
                total += overlap
    return total


def deadline_after(start: dt.datetime, seconds: float, hours: Hours, tz: str | dt.tzinfo) -> dt.datetime:
    """The moment `seconds` of opening time after `start` have passed (UTC). With no opening hours in
    the next MAX_DAYS days, start plus the seconds in real time."""
    if not hours or seconds <= 0:
        return start.astimezone(UTC) + dt.timedelta(seconds=max(seconds, 0))
    tz = zone(tz)
    start = start.astimezone(UTC)
    remaining = float(seconds)
    for day in _days_from(start, tz):
        for opens, closes in _intervals(day, hours, tz):
            begin = max(opens, start)
            if closes <= begin:
                continue
            available = (closes - begin).total_seconds()
            if remaining <= available:
                return begin + dt.timedelta(seconds=remaining)
            remaining -= available
    return start + dt.timedelta(seconds=seconds)


def hours_of(rows: Iterable[Any]) -> list[tuple[int, dt.time, dt.time]]:
    """BusinessHours rows as the functions above take them."""
    return [(row.weekday, row.opens, row.closes) for row in rows]
