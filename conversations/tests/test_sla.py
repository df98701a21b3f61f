"""SLA clocks across business hours and time zones (the pure arithmetic, DST included), due times set
by the inbound round, breaches marked and notified once, the inbox row, reports and Settings → SLA."""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.db import transaction
from django.test import Client
from django.utils import timezone
from django_tenants.utils import schema_context
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import host_of, login, make_agent
from conversations.models import BotSettings, BusinessHours, Channel, Conversation, SlaPolicy
from conversations.services.inbound import InboundDraft, store_inbound_messages
from conversations.services.sla import save_sla_policy, sweep_sla_breaches
from conversations.sla import business_seconds_between, deadline_after
from crm.models import Contact, Notification, Team

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
H = dt.time
HOUR = 3600
WEEKDAYS_9_TO_5 = [(d, H(9), H(17)) for d in range(5)]
ALL_DAY = [(d, H(0), H(0)) for d in range(7)]


def at(tz: ZoneInfo, *args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=tz)  # type: ignore[misc]


# ---------------------------------------------------------------------------------------------------
# The pure clock
# ---------------------------------------------------------------------------------------------------


def test_seconds_inside_one_day_count_fully() -> None:
    # 2026-01-05 is a Monday.
    assert (
        business_seconds_between(
            at(BERLIN, 2026, 1, 5, 10), at(BERLIN, 2026, 1, 5, 12), WEEKDAYS_9_TO_5, BERLIN
        )
        == 2 * HOUR
    )


def test_the_night_and_the_time_before_opening_do_not_count() -> None:
    assert (
        business_seconds_between(
            at(BERLIN, 2026, 1, 5, 16), at(BERLIN, 2026, 1, 6, 10), WEEKDAYS_9_TO_5, BERLIN
        )
        == 2 * HOUR
    )
    assert (
        business_seconds_between(
            at(BERLIN, 2026, 1, 5, 7), at(BERLIN, 2026, 1, 5, 10), WEEKDAYS_9_TO_5, BERLIN
        )
        == HOUR
    )
    assert (
        business_seconds_between(
            at(BERLIN, 2026, 1, 5, 18), at(BERLIN, 2026, 1, 5, 23), WEEKDAYS_9_TO_5, BERLIN
        )
        == 0
    )


def test_a_weekend_does_not_count() -> None:
    friday_4pm, monday_10am = at(BERLIN, 2026, 1, 9, 16), at(BERLIN, 2026, 1, 12, 10)
    assert business_seconds_between(friday_4pm, monday_10am, WEEKDAYS_9_TO_5, BERLIN) == 2 * HOUR
    assert deadline_after(friday_4pm, 2 * HOUR, WEEKDAYS_9_TO_5, BERLIN) == monday_10am
    # A whole week is five working days.
    week = business_seconds_between(
        at(BERLIN, 2026, 1, 5, 0), at(BERLIN, 2026, 1, 12, 0), WEEKDAYS_9_TO_5, BERLIN
    )
    assert week == 5 * 8 * HOUR


def test_a_deadline_on_the_closing_minute_rolls_to_the_next_opening() -> None:
    assert deadline_after(at(BERLIN, 2026, 1, 5, 17), 60, WEEKDAYS_9_TO_5, BERLIN) == at(
        BERLIN, 2026, 1, 6, 9, 1
    )
    assert deadline_after(at(BERLIN, 2026, 1, 5, 16), HOUR, WEEKDAYS_9_TO_5, BERLIN) == at(
        BERLIN, 2026, 1, 5, 17
    )
    assert deadline_after(at(BERLIN, 2026, 1, 5, 6), 30 * 60, WEEKDAYS_9_TO_5, BERLIN) == at(
        BERLIN, 2026, 1, 5, 9, 30
    )


def test_a_lunch_break_and_several_intervals_a_day() -> None:
    split = [(0, H(9), H(12)), (0, H(13), H(17))]
    assert (
        business_seconds_between(at(BERLIN, 2026, 1, 5, 11), at(BERLIN, 2026, 1, 5, 14), split, BERLIN)
        == 2 * HOUR
    )
    assert deadline_after(at(BERLIN, 2026, 1, 5, 11, 30), HOUR, split, BERLIN) == at(
        BERLIN, 2026, 1, 5, 13, 30
    )
    # Next Monday when this one is used up.
    assert deadline_after(at(BERLIN, 2026, 1, 5, 16), 2 * HOUR, split, BERLIN) == at(BERLIN, 2026, 1, 12, 10)


def test_an_overnight_interval_spans_midnight() -> None:
    night = [(0, H(22), H(6))]  # Monday 22:00 to Tuesday 06:00
    assert (
        business_seconds_between(at(BERLIN, 2026, 1, 5, 23), at(BERLIN, 2026, 1, 6, 5), night, BERLIN)
        == 6 * HOUR
    )
    assert deadline_after(at(BERLIN, 2026, 1, 6, 1), HOUR, night, BERLIN) == at(BERLIN, 2026, 1, 6, 2)


def test_dst_days_count_real_hours() -> None:
    # Berlin springs forward on 2026-03-29 (23-hour day) and falls back on 2026-10-25 (25 hours).
    spring = business_seconds_between(at(BERLIN, 2026, 3, 29, 0), at(BERLIN, 2026, 3, 30, 0), ALL_DAY, BERLIN)
    autumn = business_seconds_between(
        at(BERLIN, 2026, 10, 25, 0), at(BERLIN, 2026, 10, 26, 0), ALL_DAY, BERLIN
    )
    assert (spring, autumn) == (23 * HOUR, 25 * HOUR)
    # Office hours stay eight real hours a day across the change; Friday 16:00 CET to Monday 10:00 CEST.
    assert (
        business_seconds_between(
            at(BERLIN, 2026, 3, 27, 16), at(BERLIN, 2026, 3, 30, 10), WEEKDAYS_9_TO_5, BERLIN
        )
        == 2 * HOUR
    )
    due = deadline_after(at(BERLIN, 2026, 3, 27, 16), 2 * HOUR, WEEKDAYS_9_TO_5, BERLIN)
    assert due == at(BERLIN, 2026, 3, 30, 10) and due.utcoffset() == dt.timedelta(0)
    assert due == dt.datetime(2026, 3, 30, 8, tzinfo=dt.UTC)  # 10:00 CEST is 08:00 UTC


def test_the_same_instant_is_in_hours_in_one_zone_and_not_in_another() -> None:
    # 13:00 UTC on a Monday in January: 14:00 in Berlin (open), 08:00 in New York (not yet).
    moment = dt.datetime(2026, 1, 5, 13, tzinfo=dt.UTC)
    assert deadline_after(moment, HOUR, WEEKDAYS_9_TO_5, BERLIN) == dt.datetime(2026, 1, 5, 14, tzinfo=dt.UTC)
    assert deadline_after(moment, HOUR, WEEKDAYS_9_TO_5, NEW_YORK) == dt.datetime(
        2026, 1, 5, 15, tzinfo=dt.UTC
    )
    # New York's late afternoon runs into Berlin's night.
    evening = dt.datetime(2026, 1, 5, 21, tzinfo=dt.UTC)  # 16:00 EST
    assert deadline_after(evening, 2 * HOUR, WEEKDAYS_9_TO_5, "America/New_York") == at(
        NEW_YORK, 2026, 1, 6, 10
    )
    # The US changes clocks on 2026-03-08, Europe three weeks later: the gap between the zones moves.
    assert deadline_after(
        dt.datetime(2026, 3, 16, 13, tzinfo=dt.UTC), HOUR, WEEKDAYS_9_TO_5, NEW_YORK
    ) == dt.datetime(2026, 3, 16, 14, tzinfo=dt.UTC)


def test_no_hours_counts_every_second_and_bad_input_is_harmless() -> None:
    start = at(BERLIN, 2026, 1, 10, 3)
    assert business_seconds_between(start, start + dt.timedelta(hours=5), [], BERLIN) == 5 * HOUR
    assert deadline_after(start, 90, [], BERLIN) == start + dt.timedelta(seconds=90)
    assert business_seconds_between(start, start - dt.timedelta(hours=1), WEEKDAYS_9_TO_5, BERLIN) == 0
    # An unknown zone name falls back to UTC rather than failing the inbound round.
    assert deadline_after(
        dt.datetime(2026, 1, 5, 8, tzinfo=dt.UTC), HOUR, WEEKDAYS_9_TO_5, "Mars/Olympus"
    ) == dt.datetime(2026, 1, 5, 10, tzinfo=dt.UTC)


@settings(max_examples=150, deadline=None)
@given(
    start=st.datetimes(min_value=dt.datetime(2025, 1, 1), max_value=dt.datetime(2027, 12, 31)),
    seconds=st.integers(min_value=1, max_value=30 * 8 * HOUR),
    zone_name=st.sampled_from(
        ["Europe/Berlin", "America/New_York", "Asia/Kolkata", "Australia/Sydney", "UTC"]
    ),
    hours=st.sampled_from(
        [WEEKDAYS_9_TO_5, ALL_DAY, [(0, H(22), H(6)), (3, H(8), H(12)), (3, H(13), H(18))]]
    ),
)
def test_the_deadline_is_exactly_that_many_business_seconds_later(
    start: dt.datetime, seconds: int, zone_name: str, hours: Any
) -> None:
    begin = start.replace(tzinfo=dt.UTC)
    due = deadline_after(begin, seconds, hours, zone_name)
    assert due > begin
    assert business_seconds_between(begin, due, hours, zone_name) == pytest.approx(seconds)
    # And no earlier moment would do: one second before, a second is still missing.
    assert business_seconds_between(begin, due - dt.timedelta(seconds=1), hours, zone_name) == pytest.approx(
        seconds - 1
    )


# ---------------------------------------------------------------------------------------------------
# Due times, breaches and notifications
# ---------------------------------------------------------------------------------------------------

_numbers = itertools.count(8000)


def _inbound(contact: Contact | None = None, *, when: dt.datetime | None = None) -> Conversation:
    if contact is None:
        n = next(_numbers)
        contact = Contact.objects.create(name=f"Customer {n}", phone=f"+1888{n:07d}")
    channel = Channel.objects.get_or_create(name="SLA test number")[0]
    with transaction.atomic():
        locked = Contact.objects.select_for_update().get(pk=contact.pk)
        message = store_inbound_messages(
            drafts=[
                InboundDraft(
                    contact=locked,
                    channel=channel,
                    wamid=f"wamid.sla.{next(_numbers)}",
                    type="text",
                    text="help",
                    payload={"type": "text"},
                    preview="help",
                    timestamp=when or timezone.now(),
                )
            ]
        )[0]
    return Conversation.objects.get(pk=message.conversation_id)


def _office(tenant: Any, zone_name: str = "Europe/Berlin") -> None:
    with schema_context(tenant.schema_name):
        bot = BotSettings.objects.get_or_create(pk=1)[0]
        bot.time_zone = zone_name
        bot.save()
        for day in range(5):
            BusinessHours.objects.create(weekday=day, opens=H(9), closes=H(17))


def test_new_conversations_get_due_times_from_the_most_specific_policy(tenant_a: Any) -> None:
    _office(tenant_a)
    with schema_context(tenant_a.schema_name):
        save_sla_policy(name="Default", first_response_minutes=60, resolution_minutes=8 * 60)
        # Friday 16:30 Berlin: an hour of business time later is Monday 09:30; a working day, Monday 16:30.
        friday = at(BERLIN, 2026, 1, 9, 16, 30)
        conversation = _inbound(when=friday)
        assert conversation.first_response_due_at == at(BERLIN, 2026, 1, 12, 9, 30)
        assert conversation.resolution_due_at == at(BERLIN, 2026, 1, 12, 16, 30)
        channel = Channel.objects.get(name="SLA test number")
        save_sla_policy(
            name="VIP line", first_response_minutes=5, resolution_minutes=None, channel_id=channel.pk
        )
        vip = _inbound(when=friday)
        assert vip.first_response_due_at == at(BERLIN, 2026, 1, 9, 16, 35) and vip.resolution_due_at is None


def test_without_policies_nothing_is_due(tenant_a: Any) -> None:
    with schema_context(tenant_a.schema_name):
        conversation = _inbound()
        assert conversation.first_response_due_at is None and conversation.resolution_due_at is None


def test_a_breach_is_marked_and_notified_once_to_the_assignee_and_supervisors(tenant_a: Any) -> None:
    agent = make_agent(tenant_a, email="ann@alpha.test")
    supervisor = make_agent(tenant_a, email="sup@alpha.test", role="supervisor")
    bystander = make_agent(tenant_a, email="other@alpha.test")
    with schema_context(tenant_a.schema_name):
        save_sla_policy(
            name="Default", first_response_minutes=10, resolution_minutes=None, business_hours_only=False
        )
        conversation = _inbound(when=timezone.now() - dt.timedelta(minutes=30))
        Conversation.objects.filter(pk=conversation.pk).update(assignee=agent.user, bot_active=False)
        answered = _inbound(when=timezone.now() - dt.timedelta(minutes=30))
        Conversation.objects.filter(pk=answered.pk).update(first_response_at=timezone.now(), bot_active=False)
        with transaction.atomic():
            assert sweep_sla_breaches() == 1
        assert sweep_sla_breaches() == 0
        conversation.refresh_from_db()
        assert conversation.first_response_breached and not conversation.resolution_breached
        notes = Notification.objects.filter(kind="sla_breach")
        assert {n.user_id for n in notes} >= {agent.user_id, supervisor.user_id}
        assert bystander.user_id not in {n.user_id for n in notes}
        assert len(notes) == len({n.user_id for n in notes})  # once each
        assert not Conversation.objects.get(pk=answered.pk).first_response_breached


def test_a_reopened_conversation_restarts_its_resolution_clock(tenant_a: Any) -> None:
    with schema_context(tenant_a.schema_name):
        save_sla_policy(
            name="Default", first_response_minutes=None, resolution_minutes=60, business_hours_only=False
        )
        conversation = _inbound(when=timezone.now() - dt.timedelta(hours=3))
        Conversation.objects.filter(pk=conversation.pk).update(bot_active=False)
        sweep_sla_breaches()
        conversation.refresh_from_db()
        assert conversation.resolution_breached
        Conversation.objects.filter(pk=conversation.pk).update(status="resolved", resolved_at=timezone.now())
        now = timezone.now()
        again = _inbound(Contact.objects.get(pk=conversation.contact_id), when=now)
        assert again.pk == conversation.pk and again.status == "open"
        assert not again.resolution_breached
        assert abs((again.resolution_due_at - (now + dt.timedelta(hours=1))).total_seconds()) < 1


def test_the_inbox_row_shows_time_left_and_breaches_and_reports_show_attainment(
    tenant_a: Any, owner_a: Any
) -> None:
    with schema_context(tenant_a.schema_name):
        team = Team.objects.create(name="<b>Support</b>")
        agent = make_agent(tenant_a, email="ann@alpha.test")
        save_sla_policy(
            name="Default", first_response_minutes=60, resolution_minutes=None, business_hours_only=False
        )
        late = _inbound(when=timezone.now() - dt.timedelta(hours=2))
        fresh = _inbound()
        met = _inbound(when=timezone.now() - dt.timedelta(hours=2))
        Conversation.objects.filter(pk__in=[late.pk, fresh.pk, met.pk]).update(
            assignee=agent.user, team=team, bot_active=False
        )
        Conversation.objects.filter(pk=met.pk).update(
            first_response_at=timezone.now() - dt.timedelta(hours=1, minutes=30)
        )
        sweep_sla_breaches()
    client = login(Client(HTTP_HOST=host_of(tenant_a)), tenant_a, owner_a)
    html = client.get("/inbox/?tab=all").content.decode()
    assert "SLA breached" in html
    assert "to respond" in html
    report = client.get("/reports/").content.decode()
    assert "SLA attainment" in report
    assert "50% (1/2)" in report  # one met, one missed; the fresh one is still running
    assert "&lt;b&gt;Support&lt;/b&gt;" in report and "<b>Support</b>" not in report


def test_sla_settings_are_for_admins_validate_and_escape(tenant_a: Any, owner_a: Any) -> None:
    agent = make_agent(tenant_a, email="ann@alpha.test")
    with schema_context(tenant_a.schema_name):
        team = Team.objects.create(name="<i>Sales</i>")
    as_agent = login(Client(HTTP_HOST=host_of(tenant_a)), tenant_a, agent.user)
    assert as_agent.get("/settings/sla/").status_code == 403
    assert as_agent.post("/settings/sla/", {"name": "x", "first_response_minutes": "5"}).status_code == 403
    admin = login(Client(HTTP_HOST=host_of(tenant_a)), tenant_a, owner_a)
    assert admin.get("/settings/sla/").status_code == 200
    saved = admin.post(
        "/settings/sla/",
        {
            "name": "<script>x</script>",
            "first_response_minutes": "15",
            "team": str(team.pk),
            "business_hours_only": "on",
        },
    )
    assert saved.status_code == 302
    html = admin.get("/settings/sla/").content.decode()
    assert "&lt;script&gt;x&lt;/script&gt;" in html and "<script>x</script>" not in html
    assert "&lt;i&gt;Sales&lt;/i&gt;" in html
    for bad in (
        {"name": "", "first_response_minutes": "15"},
        {"name": "No target"},
        {"name": "Negative", "first_response_minutes": "-5"},
        {"name": "Words", "resolution_minutes": "soon"},
        {"name": "Ghost team", "first_response_minutes": "5", "team": "999999"},
        {"name": "Dup", "first_response_minutes": "5", "team": str(team.pk)},
        {"name": "Both", "first_response_minutes": "5", "team": str(team.pk), "channel": "1"},
    ):
        response = admin.post("/settings/sla/", bad)
        assert response.status_code == 400, bad
    with schema_context(tenant_a.schema_name):
        assert SlaPolicy.objects.count() == 1
        policy = SlaPolicy.objects.get()
    assert as_agent.post(f"/settings/sla/{policy.pk}/delete/").status_code == 403
    assert admin.post(f"/settings/sla/{policy.pk}/delete/").status_code == 302
    assert admin.post("/settings/sla/999999/delete/").status_code == 404
    with schema_context(tenant_a.schema_name):
        assert not SlaPolicy.objects.exists()
