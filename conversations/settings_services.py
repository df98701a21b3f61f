"""Writes for the tenant's inbox settings: the bot's auto-reply rules, welcome and away messages, business
hours and time zone, and saved replies (canned responses).

A module of its own rather than a section of conversations/services.py: that file holds the message
pipeline and the conversation workflow (~900 lines, changed by the WhatsApp and inbox work), while this
is configuration that only the settings page and the admin write, and conversations/bot.py reads.

Every rule the bot depends on is checked here, so the settings page and the admin refuse the same input
with the same stable codes (core.errors.ServiceError), and nothing is stored unless all of it is valid.
"""

from __future__ import annotations

import datetime as dt
import functools
import itertools
import re
import zoneinfo
from collections.abc import Sequence

from django.db import IntegrityError, transaction
from django.db.models import Max

from conversations.bot import load_settings
from conversations.consent import WORD_LIMIT, normalize, parse_words
from conversations.models import AutoReplyRule, BotSettings, BusinessHours, CannedResponse
from core import audit
from core.errors import ServiceError
from crm import variables

# WhatsApp's limit for a text message body: a longer bot reply or saved reply could never be sent.
TEXT_LIMIT = 4096
KEYWORD_LIMIT = AutoReplyRule._meta.get_field("keyword").max_length or 100
SHORTCUT_LIMIT = CannedResponse._meta.get_field("shortcut").max_length or 40
TITLE_LIMIT = CannedResponse._meta.get_field("title").max_length or 100
# What the composer's `/` menu can complete (static/js/inbox.js matches [\w-] after the slash).
SHORTCUT_PATTERN = re.compile(r"^[a-z0-9_-]+$")
MINUTES_PER_DAY = 24 * 60
MINUTES_PER_WEEK = 7 * MINUTES_PER_DAY


@functools.cache
def time_zone_names() -> tuple[str, ...]:
    """Every IANA zone name this machine knows, sorted (reading them scans the zone files once)."""
    return tuple(sorted(zoneinfo.available_timezones()))


# ---------------------------------------------------------------------------------------------------
# Checks shared by the settings page's services and the admin's forms
# ---------------------------------------------------------------------------------------------------


def _text(value: str, *, field: str, what: str, required: bool, limit: int = TEXT_LIMIT) -> str:
    value = (value or "").strip()
    if required and not value:
        raise ServiceError(f"empty_{field}", f"Enter the {what}.", field=field)
    if len(value) > limit:
        raise ServiceError(
            f"{field}_too_long",
            f"The {what} is {len(value)} characters long; at most {limit} are allowed.",
            field=field,
        )
    return value


def check_time_zone(time_zone: str) -> str:
    name = (time_zone or "").strip()
    if name not in time_zone_names():
        raise ServiceError(
            "invalid_time_zone",
            f"“{name or time_zone}” is not a time zone. Choose one from the list, e.g. Europe/Berlin.",
            field="time_zone",
        )
    return name


def check_bot_messages(
    *, welcome_enabled: bool, welcome_text: str, away_enabled: bool, away_text: str
) -> tuple[str, str]:
    """The cleaned texts. An enabled message needs text: the bot skips an empty one without a word."""
    welcome = _text(welcome_text, field="welcome_text", what="welcome message", required=welcome_enabled)
    away = _text(away_text, field="away_text", what="away message", required=away_enabled)
    return welcome, away


def check_rule(*, rule: AutoReplyRule | None, keyword: str, match: str, reply: str) -> tuple[str, str, str]:
    """The cleaned keyword, match mode and reply of a rule that may be stored beside the others."""
    keyword = _text(keyword, field="keyword", what="keyword", required=True, limit=KEYWORD_LIMIT)
    if match not in AutoReplyRule.Match.values:
        raise ServiceError("invalid_match", "Choose how the message must match the keyword.", field="match")
    reply = _text(reply, field="reply", what="reply", required=True)
    others = AutoReplyRule.objects.filter(keyword__iexact=keyword, match=match)
    if rule is not None and rule.pk:
        others = others.exclude(pk=rule.pk)
    if others.exists():
        # The bot answers with the first match only: a second rule like this one would never speak.
        raise ServiceError(
            "duplicate_rule",
            f"A rule for “{keyword}” with this match already exists; edit that one instead.",
            field="keyword",
            status=409,
        )
    return keyword, match, reply


def check_canned_response(
    *, canned: CannedResponse | None, shortcut: str, title: str, text: str
) -> tuple[str, str, str]:
    """The cleaned shortcut (lower case, no leading slash), title and text."""
    shortcut = (shortcut or "").strip().lstrip("/").strip().lower()
    if not shortcut:
        raise ServiceError("empty_shortcut", "Enter a shortcut, e.g. thanks.", field="shortcut")
    if len(shortcut) > SHORTCUT_LIMIT:
        raise ServiceError(
            "shortcut_too_long", f"A shortcut has at most {SHORTCUT_LIMIT} characters.", field="shortcut"
        )
    if not SHORTCUT_PATTERN.match(shortcut):
        raise ServiceError(
            "invalid_shortcut",
            "A shortcut may use only letters, digits, - and _ (agents type it after /).",
            field="shortcut",
        )
    title = _text(title, field="title", what="title", required=False, limit=TITLE_LIMIT)
    text = _text(text, field="text", what="text of the reply", required=True)
    # A misspelled variable would reach customers as literal braces: refuse it while the writer is here.
    variables.check(text, field="text")
    others = CannedResponse.objects.filter(shortcut__iexact=shortcut)
    if canned is not None and canned.pk:
        others = others.exclude(pk=canned.pk)
    if others.exists():
        raise _duplicate_shortcut(shortcut)
    return shortcut, title, text


def _duplicate_shortcut(shortcut: str) -> ServiceError:
    return ServiceError(
        "duplicate_shortcut",
        f"The shortcut /{shortcut} is taken by another saved reply; choose another.",
        field="shortcut",
        status=409,
    )


def _week_span(weekday: int, opens: dt.time, closes: dt.time) -> tuple[int, int]:
    """Minutes since Monday 00:00 where the interval starts, and its length (past midnight when closes
    is earlier than opens, as conversations.bot.is_open reads it)."""
    start = weekday * MINUTES_PER_DAY + opens.hour * 60 + opens.minute
    length = (closes.hour * 60 + closes.minute - opens.hour * 60 - opens.minute) % MINUTES_PER_DAY
    return start, length


def check_intervals(intervals: Sequence[tuple[int, dt.time, dt.time]]) -> None:
    """Each interval is a real stretch of time and none overlaps another, across midnight too. The error
    names the weekday's field (`hours_<weekday>`)."""
    spans = []
    for weekday, opens, closes in intervals:
        field = f"hours_{weekday}"
        if weekday not in range(7):
            raise ServiceError("invalid_weekday", "Choose a weekday.", field="weekday")
        if opens.second or closes.second or opens.microsecond or closes.microsecond:
            raise ServiceError("invalid_time", "Give times in whole minutes (HH:MM).", field=field)
        start, length = _week_span(weekday, opens, closes)
        if length == 0:
            raise ServiceError("empty_interval", "Opening and closing times are the same.", field=field)
        spans.append((start, start + length, weekday))
    spans.sort()
    # Sorted by start, each interval must end before the next begins, and the week's last one (which
    # may run past Sunday midnight) before the first one of the next week.
    for (_, end, _), (start, _, weekday) in itertools.pairwise(spans):
        if start < end:
            raise _overlap(weekday)
    if len(spans) > 1 and spans[-1][1] > spans[0][0] + MINUTES_PER_WEEK:
        raise _overlap(spans[0][2])


def _overlap(weekday: int) -> ServiceError:
    day = dict(BusinessHours._meta.get_field("weekday").choices or [])[weekday]
    return ServiceError(
        "overlapping_hours",
        f"{day}'s hours overlap other opening hours (an interval that closes before it opens runs past "
        "midnight into the next day).",
        field=f"hours_{weekday}",
    )


# ---------------------------------------------------------------------------------------------------
# Welcome and away messages, time zone, business hours
# ---------------------------------------------------------------------------------------------------


@transaction.atomic
def update_bot_messages(
    *, welcome_enabled: bool, welcome_text: str, away_enabled: bool, away_text: str
) -> BotSettings:
    welcome, away = check_bot_messages(
        welcome_enabled=welcome_enabled,
        welcome_text=welcome_text,
        away_enabled=away_enabled,
        away_text=away_text,
    )
    settings = load_settings()
    settings.welcome_enabled, settings.welcome_text = welcome_enabled, welcome
    settings.away_enabled, settings.away_text = away_enabled, away
    settings.save(update_fields=["welcome_enabled", "welcome_text", "away_enabled", "away_text"])
    audit.record("settings.changed", details={"section": "bot_messages"})
    return settings


def set_time_zone(*, time_zone: str) -> BotSettings:
    name = check_time_zone(time_zone)
    settings = load_settings()
    settings.time_zone = name
    settings.save(update_fields=["time_zone"])
    return settings


@transaction.atomic
def set_business_hours(
    *, time_zone: str, always_open: bool, intervals: Sequence[tuple[int, dt.time, dt.time]]
) -> list[BusinessHours]:
    """Replace the week's opening hours and set the zone they are read in.

    With no hours the bot counts the business as always open (and never sends the away message), so
    that is asked for explicitly: an empty week without `always_open` is refused rather than stored.
    """
    name = check_time_zone(time_zone)
    if always_open:
        intervals = []
    elif not intervals:
        raise ServiceError(
            "no_open_days",
            "Open at least one day, or choose “Always open”: with no hours the bot treats the business "
            "as always open.",
            field="mode",
        )
    check_intervals(intervals)
    set_time_zone(time_zone=name)
    audit.record("settings.changed", details={"section": "business_hours", "time_zone": name})
    BusinessHours.objects.all().delete()
    return BusinessHours.objects.bulk_create(
        BusinessHours(weekday=weekday, opens=opens, closes=closes)
        for weekday, opens, closes in sorted(intervals)
    )


@transaction.atomic
def save_business_hours_interval(
    *, interval: BusinessHours | None = None, weekday: int, opens: dt.time, closes: dt.time
) -> BusinessHours:
    """One interval (the admin edits them one by one), checked against the rest of the week."""
    # Serialises concurrent edits of the week: two overlapping intervals must not both pass the check.
    others = BusinessHours.objects.select_for_update()
    if interval is not None and interval.pk:
        others = others.exclude(pk=interval.pk)
    check_intervals([*((o.weekday, o.opens, o.closes) for o in others), (weekday, opens, closes)])
    interval = interval or BusinessHours()
    interval.weekday, interval.opens, interval.closes = weekday, opens, closes
    interval.save()
    return interval


def delete_business_hours_interval(*, interval: BusinessHours) -> None:
    interval.delete()


# ---------------------------------------------------------------------------------------------------
# Auto-reply rules
# ---------------------------------------------------------------------------------------------------


@transaction.atomic
def save_auto_reply_rule(
    *,
    rule: AutoReplyRule | None = None,
    keyword: str,
    match: str = AutoReplyRule.Match.CONTAINS,
    reply: str,
    is_active: bool = True,
    position: int | None = None,
) -> AutoReplyRule:
    """Create (tried after every existing rule unless `position` says otherwise) or update a rule."""
    keyword, match, reply = check_rule(rule=rule, keyword=keyword, match=match, reply=reply)
    if position is not None and position < 0:
        raise ServiceError("invalid_position", "A position is 0 or more.", field="position")
    if rule is None or rule.pk is None:
        rule = rule or AutoReplyRule()
        if position is None:
            last = AutoReplyRule.objects.aggregate(last=Max("position"))["last"]
            position = 0 if last is None else last + 1
    rule.keyword, rule.match, rule.reply, rule.is_active = keyword, match, reply, is_active
    if position is not None:
        rule.position = position
    rule.save()
    audit.record("settings.changed", target=rule, details={"section": "auto_reply_rules"})
    return rule


def set_auto_reply_rule_active(*, rule: AutoReplyRule, is_active: bool) -> AutoReplyRule:
    rule.is_active = is_active
    rule.save(update_fields=["is_active"])
    return rule


@transaction.atomic
def delete_auto_reply_rule(*, rule: AutoReplyRule) -> None:
    audit.record("settings.changed", target=rule, details={"section": "auto_reply_rules", "deleted": True})
    rule.delete()


@transaction.atomic
def move_auto_reply_rule(*, rule: AutoReplyRule, direction: str) -> list[AutoReplyRule]:
    """Swap the rule with its neighbour in the bot's order ("up" is tried earlier). Positions are
    renumbered 0..n-1 on the way, so rules created with equal positions get a definite order."""
    if direction not in ("up", "down"):
        raise ServiceError("invalid_direction", "Move a rule up or down.", field="direction")
    rules = list(AutoReplyRule.objects.select_for_update().order_by("position", "id"))
    index = next((i for i, r in enumerate(rules) if r.pk == rule.pk), None)
    if index is None:
        raise ServiceError("not_found", "That rule no longer exists.", status=404)
    other = index - 1 if direction == "up" else index + 1
    if 0 <= other < len(rules):
        rules[index], rules[other] = rules[other], rules[index]
    changed = []
    for position, item in enumerate(rules):
        if item.position != position:
            item.position = position
            changed.append(item)
    AutoReplyRule.objects.bulk_update(changed, ["position"])
    rule.position = next(r.position for r in rules if r.pk == rule.pk)
    return rules


# ---------------------------------------------------------------------------------------------------
# Saved replies (canned responses)
# ---------------------------------------------------------------------------------------------------


def save_canned_response(
    *, canned: CannedResponse | None = None, shortcut: str, title: str = "", text: str
) -> CannedResponse:
    shortcut, title, text = check_canned_response(canned=canned, shortcut=shortcut, title=title, text=text)
    canned = canned or CannedResponse()
    canned.shortcut, canned.title, canned.text = shortcut, title, text
    try:
        with transaction.atomic():
            canned.save()
            audit.record("settings.changed", target=canned, details={"section": "saved_replies"})
    except IntegrityError as exc:
        # Another admin took the shortcut between the check and the insert.
        raise _duplicate_shortcut(shortcut) from exc
    return canned


@transaction.atomic
def delete_canned_response(*, canned: CannedResponse) -> None:
    audit.record("settings.changed", target=canned, details={"section": "saved_replies", "deleted": True})
    canned.delete()


# ---------------------------------------------------------------------------------------------------
# Consent keywords (STOP / START) and the assignment of a replied conversation
# ---------------------------------------------------------------------------------------------------


def check_keywords(raw: str, *, field: str) -> str:
    """The words one per line as stored (blank lines and repeats dropped); each short enough to be a
    whole message a customer types."""
    words = parse_words(raw or "")
    long = next((w for w in words if len(w) > WORD_LIMIT), None)
    if long is not None:
        raise ServiceError(
            f"{field}_too_long",
            f"“{long[:30]}…” is longer than {WORD_LIMIT} characters: a keyword is a whole short message.",
            field=field,
        )
    return "\n".join(words)


def check_consent_words(*, stop_words: str, start_words: str) -> tuple[str, str]:
    """The cleaned stop and start lists; a word in both would opt a customer in and out at once."""
    stop = check_keywords(stop_words, field="stop_words")
    start = check_keywords(start_words, field="start_words")
    both = {normalize(w) for w in parse_words(stop)} & {normalize(w) for w in parse_words(start)}
    if both:
        raise ServiceError(
            "keyword_in_both",
            f"“{sorted(both)[0]}” is both a stop and a start word; keep it in one list.",
            field="start_words",
        )
    return stop, start


@transaction.atomic
def update_consent_settings(
    *, stop_words: str, start_words: str, opt_out_reply: str, opt_in_reply: str, assign_on_reply: bool
) -> BotSettings:
    stop, start = check_consent_words(stop_words=stop_words, start_words=start_words)
    out_reply = _text(opt_out_reply, field="opt_out_reply", what="opt-out confirmation", required=False)
    in_reply = _text(opt_in_reply, field="opt_in_reply", what="opt-in confirmation", required=False)
    settings = load_settings()
    settings.stop_words, settings.start_words = stop, start
    settings.opt_out_reply, settings.opt_in_reply = out_reply, in_reply
    settings.assign_on_reply = assign_on_reply
    settings.save(
        update_fields=["stop_words", "start_words", "opt_out_reply", "opt_in_reply", "assign_on_reply"]
    )
    audit.record("settings.changed", details={"section": "consent"})
    return settings
