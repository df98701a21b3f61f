from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from django_tenants.utils import schema_context

from conversations import bot
from conversations.models import AutoReplyRule, BotSettings, BusinessHours, Message
from conversations.tests.conftest import add_message, make_conversation

BERLIN = ZoneInfo("Europe/Berlin")


def _setup(**fields):
    settings = bot.load_settings()
    for key, value in fields.items():
        setattr(settings, key, value)
    settings.save()
    return settings


def test_business_hours_follow_the_tenants_time_zone(tenant_a):
    with schema_context(tenant_a.schema_name):
        settings = _setup(time_zone="Europe/Berlin")
        hours = [BusinessHours(weekday=0, opens=dt.time(9), closes=dt.time(17))]
        monday_10_berlin = dt.datetime(2026, 11, 23, 10, 0, tzinfo=BERLIN)
        assert bot.is_open(at=monday_10_berlin, settings=settings, hours=hours)
        assert not bot.is_open(at=monday_10_berlin.replace(hour=18), settings=settings, hours=hours)
        # 08:30 UTC is 09:30 in Berlin in November.
        assert bot.is_open(at=dt.datetime(2026, 11, 23, 8, 30, tzinfo=dt.UTC), settings=settings, hours=hours)
        assert bot.is_open(at=monday_10_berlin, settings=settings, hours=[])


def test_an_interval_past_midnight_counts_on_the_next_morning(tenant_a):
    with schema_context(tenant_a.schema_name):
        settings = _setup(time_zone="UTC")
        night = [BusinessHours(weekday=4, opens=dt.time(22), closes=dt.time(2))]
        assert bot.is_open(at=dt.datetime(2026, 11, 27, 23, tzinfo=dt.UTC), settings=settings, hours=night)
        assert bot.is_open(at=dt.datetime(2026, 11, 28, 1, tzinfo=dt.UTC), settings=settings, hours=night)
        assert not bot.is_open(at=dt.datetime(2026, 11, 28, 3, tzinfo=dt.UTC), settings=settings, hours=night)


def test_the_first_matching_rule_answers_case_insensitively(tenant_a):
    with schema_context(tenant_a.schema_name):
        AutoReplyRule.objects.create(keyword="price", reply="Our prices: ...", position=1)
        AutoReplyRule.objects.create(keyword="hours", reply="9 to 5", position=0)
        AutoReplyRule.objects.create(
            keyword="hi", match=AutoReplyRule.Match.EXACT, reply="Hello!", position=2
        )
        rules = list(AutoReplyRule.objects.all())
        assert bot.matching_rule("What are your HOURS and price?", rules).reply == "9 to 5"
        assert bot.matching_rule("Hi", rules).reply == "Hello!"
        assert bot.matching_rule("history", rules) is None


def test_a_new_conversation_gets_the_welcome_and_the_away_message_once(tenant_a):
    c = make_conversation(tenant_a, messages=1)
    with schema_context(tenant_a.schema_name):
        _setup(welcome_enabled=True, welcome_text="Welcome!", away_enabled=True, away_text="We are closed.")
        BusinessHours.objects.create(weekday=0, opens=dt.time(9), closes=dt.time(10))
        AutoReplyRule.objects.create(keyword="hello", reply="Hi there")
        first = Message.objects.get(conversation=c)
        sunday = dt.datetime(2026, 11, 22, 12, tzinfo=dt.UTC)
        assert bot.replies_for(message=first, now=sunday) == [
            ("welcome", "Welcome!"),
            ("away", "We are closed."),
            ("rule", "Hi there"),
        ]
    add_message(
        tenant_a,
        c,
        direction=Message.Direction.OUTBOUND,
        text="We are closed.",
        status="sent",
        timestamp=dt.datetime(2026, 11, 22, 12, tzinfo=dt.UTC),
    )
    second = add_message(tenant_a, c, text="anyone?")
    with schema_context(tenant_a.schema_name):
        assert bot.replies_for(message=second, now=dt.datetime(2026, 11, 22, 13, tzinfo=dt.UTC)) == []


def test_an_unknown_time_zone_falls_back_to_utc(tenant_a):
    with schema_context(tenant_a.schema_name):
        assert bot.zone_of(BotSettings(time_zone="Mars/Olympus")) == ZoneInfo("UTC")
