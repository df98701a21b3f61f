"""The tenant's bot: welcome message, away message outside business hours, keyword auto-replies.

It only speaks while `Conversation.bot_active` is on; an agent's takeover or first reply turns it off
(conversations.services), and the agent can hand the conversation back. What it says is decided here;
conversations.services.automation sends it through the reply path.

`bot_active` is what the inbox shows as "the bot is answering", so it must be true: a new conversation
starts with the bot only when the bot has something to say (`speaks_first`), otherwise it goes straight
to the agents' queue; and the bot keeps a conversation only while it answers the customer (an auto-reply
rule; later the AI agent). A welcome or away message alone greets or promises a person: after it, or
after saying nothing, the bot hands the conversation to the queue (`answer`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from django.utils import timezone

from conversations import ai
from conversations.models import AutoReplyRule, BotSettings, BusinessHours, Message
from tenants.db import connection

# At most one away message per conversation in this period, however many messages arrive at night.
AWAY_REPEAT_AFTER = dt.timedelta(hours=12)


T = TypeVar("T")
_batch_cache: ContextVar[dict[tuple[str, str], Any] | None] = ContextVar("bot_batch_cache", default=None)


@contextmanager
def settings_cached_for_batch() -> Iterator[None]:
    """While a job processes a batch of inbound messages, each tenant's settings, rules and hours are
    read once (three queries a message otherwise); a change made meanwhile applies from the next batch."""
    token = _batch_cache.set({})
    try:
        yield
    finally:
        _batch_cache.reset(token)


def _cached(name: str, load: Callable[[], T]) -> T:
    cache = _batch_cache.get()
    if cache is None:
        return load()
    key = (connection.schema_name, name)
    if key not in cache:
        cache[key] = load()
    return cache[key]  # type: ignore[no-any-return]


# For other per-batch readers of the tenant's settings (conversations.consent).
cached = _cached


def load_settings() -> BotSettings:
    return _cached("settings", lambda: BotSettings.objects.get_or_create(pk=1)[0])


def zone_of(settings: BotSettings) -> ZoneInfo:
    try:
        return ZoneInfo(settings.time_zone or "UTC")
    except (KeyError, ValueError):
        return ZoneInfo("UTC")


def is_open(*, at: dt.datetime, settings: BotSettings, hours: list[BusinessHours] | None = None) -> bool:
    """Within business hours at `at`? With no hours configured the business counts as always open.
    An interval whose closing time is before its opening time runs past midnight."""
    hours = _cached("hours", lambda: list(BusinessHours.objects.all())) if hours is None else hours
    if not hours:
        return True
    local = at.astimezone(zone_of(settings))
    day, now = local.weekday(), local.time()
    for interval in hours:
        if interval.opens <= interval.closes:
            if interval.weekday == day and interval.opens <= now < interval.closes:
                return True
        else:
            if interval.weekday == day and now >= interval.opens:
                return True
            if (interval.weekday + 1) % 7 == day and now < interval.closes:
                return True
    return False


def active_rules() -> list[AutoReplyRule]:
    return _cached("rules", lambda: list(AutoReplyRule.objects.filter(is_active=True)))


def _welcome_text(settings: BotSettings) -> str:
    return settings.welcome_text.strip() if settings.welcome_enabled else ""


def _away_text(settings: BotSettings) -> str:
    return settings.away_text.strip() if settings.away_enabled else ""


def is_set_up(*, settings: BotSettings, rules: list[AutoReplyRule]) -> bool:
    """Whether the bot has anything to say at all (a welcome, an away message or an active rule); with
    nothing, every conversation goes straight to the agents' queue. Settings → Inbox says so."""
    return bool(
        _welcome_text(settings)
        or _away_text(settings)
        or any(rule.is_active and rule.keyword.strip() for rule in rules)
    )


def speaks_first(*, now: dt.datetime | None = None) -> bool:
    """Whether a conversation a customer opens now starts with the bot: it has a welcome, an away message
    while the business is closed, or an auto-reply rule. From the batch's cached settings (the bot reads
    the same ones when it answers), so the inbound round runs no statement per message for it."""
    settings = load_settings()
    if _welcome_text(settings):
        return True
    if _away_text(settings) and not is_open(at=now or timezone.now(), settings=settings):
        return True
    if any(rule.keyword.strip() for rule in active_rules()):
        return True
    return _cached("ai_enabled", ai.is_enabled)


def matching_rule(text: str, rules: list[AutoReplyRule]) -> AutoReplyRule | None:
    words = text.strip().casefold()
    for rule in rules:
        keyword = rule.keyword.strip().casefold()
        if not keyword:
            continue
        if rule.match == AutoReplyRule.Match.EXACT and words == keyword:
            return rule
        if rule.match == AutoReplyRule.Match.CONTAINS and keyword in words:
            return rule
    return None


def replies_for(
    *, message: Message, now: dt.datetime | None = None, first_inbound: bool | None = None
) -> list[tuple[str, str]]:
    """What the bot says to this inbound message: a list of (kind, text), kind in welcome/away/rule.
    `first_inbound`: whether it is the conversation's first message from the customer, when known."""
    now = now or timezone.now()
    conversation = message.conversation
    settings = load_settings()
    replies: list[tuple[str, str]] = []
    if first_inbound is None:
        first_inbound = (
            not Message.objects.filter(conversation=conversation, direction=Message.Direction.INBOUND)
            .exclude(pk=message.pk)
            .exists()
        )
    welcome, away = _welcome_text(settings), _away_text(settings)
    if welcome and first_inbound:
        replies.append(("welcome", welcome))
    if away and not is_open(at=now, settings=settings):
        recently_said = Message.objects.filter(
            conversation=conversation,
            direction=Message.Direction.OUTBOUND,
            sender__isnull=True,
            text=away,
            timestamp__gte=now - AWAY_REPEAT_AFTER,
        ).exists()
        if not recently_said:
            replies.append(("away", away))
    text = message.text or ""
    if text:
        rule = matching_rule(text, active_rules())
        if rule is not None:
            replies.append(("rule", rule.reply))
    return replies


# What answers the customer, so the bot keeps the conversation (the AI agent, conversations.ai, keeps it
# by taking the message).
ANSWERING_KINDS = frozenset({"rule"})
