"""Forms of the inbox settings page. They parse input; conversations.settings_services applies the rules,
and its errors come back here next to their field, with their stable code."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.http import QueryDict

from conversations.models import AutoReplyRule, BusinessHours
from conversations.settings_services import KEYWORD_LIMIT, SHORTCUT_LIMIT, TEXT_LIMIT, TITLE_LIMIT
from core.errors import ServiceError

WEEKDAYS: list[tuple[int, str]] = list(BusinessHours._meta.get_field("weekday").choices or [])  # type: ignore[arg-type]


class SettingsForm(forms.Form):
    # The page shows several forms at once: ids carry the form's prefix so none collide.
    id_prefix = "settings"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("auto_id", f"{self.id_prefix}_%s")
        super().__init__(*args, **kwargs)

    @classmethod
    def initial_for(cls, obj: Any) -> dict[str, Any]:
        """The form's fields filled from the row they edit (every field is named after its attribute)."""
        return {name: getattr(obj, name) for name in cls.base_fields}

    def add_service_error(self, error: ServiceError) -> None:
        target = error.field if error.field in self.fields else None
        self.add_error(target, ValidationError(error.message, code=error.code))


def _textarea(rows: int = 3) -> forms.Textarea:
    return forms.Textarea(attrs={"rows": rows, "maxlength": TEXT_LIMIT})


class BotMessagesForm(SettingsForm):
    id_prefix = "bot"
    welcome_enabled = forms.BooleanField(required=False, label="Send a welcome message")
    welcome_text = forms.CharField(
        required=False,
        label="Welcome message",
        widget=_textarea(),
        help_text="Sent once, when a customer writes for the first time in a conversation.",
    )
    away_enabled = forms.BooleanField(required=False, label="Send an away message")
    away_text = forms.CharField(
        required=False,
        label="Away message",
        widget=_textarea(),
        help_text="Sent outside business hours, at most once every 12 hours per conversation.",
    )


class ConsentForm(SettingsForm):
    id_prefix = "consent"
    stop_words = forms.CharField(
        required=False,
        label="Stop words",
        widget=forms.Textarea(attrs={"rows": 5}),
        help_text="One per line. A customer whose whole message is one of these (upper or lower case, "
        "with or without accents) is opted out of marketing messages.",
    )
    opt_out_reply = forms.CharField(
        required=False, label="Opt-out confirmation", widget=_textarea(2), help_text="Empty: no reply."
    )
    start_words = forms.CharField(
        required=False,
        label="Start words",
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text="One per line: opts the customer back in.",
    )
    opt_in_reply = forms.CharField(
        required=False, label="Opt-in confirmation", widget=_textarea(2), help_text="Empty: no reply."
    )
    assign_on_reply = forms.BooleanField(
        required=False,
        label="Assign an unassigned conversation to the agent who replies",
    )


class RuleForm(SettingsForm):
    id_prefix = "rule"
    keyword = forms.CharField(
        required=False,
        max_length=KEYWORD_LIMIT,
        label="Keyword",
        widget=forms.TextInput(attrs={"maxlength": KEYWORD_LIMIT, "autocomplete": "off"}),
        help_text="Upper and lower case are the same.",
    )
    match = forms.ChoiceField(choices=AutoReplyRule.Match.choices, label="Match")
    reply = forms.CharField(required=False, label="Reply", widget=_textarea())
    is_active = forms.BooleanField(required=False, label="Active", initial=True)


class CannedResponseForm(SettingsForm):
    id_prefix = "canned"
    shortcut = forms.CharField(
        required=False,
        max_length=SHORTCUT_LIMIT + 1,
        label="Shortcut",
        widget=forms.TextInput(attrs={"maxlength": SHORTCUT_LIMIT + 1, "autocomplete": "off"}),
        help_text="Agents type / and this in the composer, e.g. thanks.",
    )
    title = forms.CharField(required=False, max_length=TITLE_LIMIT, label="Title")
    text = forms.CharField(
        required=False,
        label="Text",
        widget=_textarea(4),
        help_text="Filled in when inserted: {{contact.first_name}}, {{contact.name}}, {{agent.name}} (you), "
        "{{contact.attributes.<key>}}. A value the contact lacks is left empty.",
    )


# ---------------------------------------------------------------------------------------------------
# Business hours: a row per weekday with any number of intervals, so not a fixed set of Django fields.
# ---------------------------------------------------------------------------------------------------


@dataclass
class Slot:
    opens: str = ""
    closes: str = ""


@dataclass
class Day:
    weekday: int
    name: str
    is_open: bool = False
    slots: list[Slot] = field(default_factory=list)
    errors: list[tuple[str, str]] = field(default_factory=list)  # (code, message)

    @property
    def field(self) -> str:
        return f"hours_{self.weekday}"


def _parse_time(raw: str) -> dt.time | None:
    try:
        value = dt.time.fromisoformat(raw)
    except ValueError:
        return None
    return value.replace(second=0, microsecond=0)


class HoursForm:
    """Time zone, "always open" or per-day hours. Every day shows its intervals and one empty pair, so
    a second interval (a lunch break) needs no script. Submitted as `open_<d>` (checkbox) and repeated
    `opens_<d>` / `closes_<d>` pairs."""

    def __init__(
        self, data: QueryDict | None = None, *, time_zone: str = "UTC", hours: Sequence[BusinessHours] = ()
    ) -> None:
        """Bound to submitted `data`, or showing the stored `time_zone` and `hours`."""
        self.is_bound = data is not None
        self.errors: dict[str, list[tuple[str, str]]] = {}
        self.intervals: list[tuple[int, dt.time, dt.time]] = []
        self.days = [Day(weekday=d, name=name) for d, name in WEEKDAYS]
        if data is None:
            self.time_zone = time_zone
            self.always_open = not hours
            for interval in hours:
                day = self.days[interval.weekday]
                day.is_open = True
                day.slots.append(Slot(f"{interval.opens:%H:%M}", f"{interval.closes:%H:%M}"))
        else:
            self.time_zone = data.get("time_zone", "").strip()
            self.always_open = data.get("mode") == "always"
            for day in self.days:
                day.is_open = data.get(f"open_{day.weekday}") == "on"
                opens = data.getlist(f"opens_{day.weekday}")
                closes = data.getlist(f"closes_{day.weekday}")
                for a, b in zip(opens, closes, strict=False):
                    if a.strip() or b.strip():
                        day.slots.append(Slot(a.strip(), b.strip()))
        for day in self.days:
            day.slots.append(Slot())

    def add_error(self, name: str | None, code: str, message: str) -> None:
        key = name or "__all__"
        self.errors.setdefault(key, []).append((code, message))
        if key.startswith("hours_"):
            self.days[int(key.removeprefix("hours_"))].errors.append((code, message))

    def add_service_error(self, error: ServiceError) -> None:
        known = {"time_zone", "mode"} | {day.field for day in self.days}
        self.add_error(error.field if error.field in known else None, error.code, error.message)

    def is_valid(self) -> bool:
        """Parses the times; the week's rules (overlaps, an open day at least) are the service's."""
        if self.always_open:
            return not self.errors
        for day in self.days:
            if not day.is_open:
                continue
            filled = [slot for slot in day.slots if slot.opens or slot.closes]
            if not filled:
                self.add_error(
                    day.field, "missing_hours", f"Give {day.name}'s opening hours, or mark it closed."
                )
            for slot in filled:
                opens, closes = _parse_time(slot.opens), _parse_time(slot.closes)
                if opens is None or closes is None:
                    self.add_error(
                        day.field,
                        "invalid_time",
                        f"Give both times of {day.name}'s hours as HH:MM (e.g. 09:00 and 17:30).",
                    )
                    continue
                self.intervals.append((day.weekday, opens, closes))
        return not self.errors

    @property
    def non_field_errors(self) -> list[tuple[str, str]]:
        return self.errors.get("__all__", [])
