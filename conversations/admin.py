"""Tenant admin: the inbox settings (auto-reply rules, saved replies, bot settings, business hours).

The same checks and writes as Settings → Inbox (conversations.settings_services): the admin refuses what
the page refuses, with the same messages, so the bot never reads a row it would silently ignore.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse

from conversations import settings_services as services
from conversations.bot import load_settings
from conversations.models import AutoReplyRule, BotSettings, BusinessHours, CannedResponse
from core.errors import ServiceError


class CheckedForm(forms.ModelForm):
    """Runs a settings_services check in clean() and shows its error on the field it names."""

    def checked(self, check: Callable[..., Any], **kwargs: Any) -> Any:
        try:
            return check(**kwargs)
        except ServiceError as exc:
            field = exc.field if exc.field in self.fields else None
            self.add_error(field, ValidationError(exc.message, code=exc.code))
            return None


class AutoReplyRuleForm(CheckedForm):
    class Meta:
        model = AutoReplyRule
        fields = ["keyword", "match", "reply", "is_active", "position"]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if {"keyword", "match", "reply"} <= data.keys():
            cleaned = self.checked(
                services.check_rule,
                rule=self.instance,
                keyword=data["keyword"],
                match=data["match"],
                reply=data["reply"],
            )
            if cleaned:
                data["keyword"], data["match"], data["reply"] = cleaned
        return data


@admin.register(AutoReplyRule)
class AutoReplyRuleAdmin(admin.ModelAdmin):
    form = AutoReplyRuleForm
    list_display = ["keyword", "match", "short_reply", "is_active", "position"]
    list_filter = ["is_active", "match"]
    search_fields = ["keyword", "reply"]
    ordering = ["position", "id"]
    actions = ["turn_on", "turn_off"]

    @admin.display(description="Reply")
    def short_reply(self, obj: AutoReplyRule) -> str:
        return obj.reply if len(obj.reply) <= 80 else obj.reply[:79] + "…"

    def save_model(self, request: HttpRequest, obj: AutoReplyRule, form: Any, change: bool) -> None:
        services.save_auto_reply_rule(
            rule=obj,
            keyword=obj.keyword,
            match=obj.match,
            reply=obj.reply,
            is_active=obj.is_active,
            position=obj.position,
        )

    def delete_model(self, request: HttpRequest, obj: AutoReplyRule) -> None:
        services.delete_auto_reply_rule(rule=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[AutoReplyRule]) -> None:
        for rule in queryset:
            services.delete_auto_reply_rule(rule=rule)

    @admin.action(description="Turn the selected rules on")
    def turn_on(self, request: HttpRequest, queryset: QuerySet[AutoReplyRule]) -> None:
        for rule in queryset:
            services.set_auto_reply_rule_active(rule=rule, is_active=True)

    @admin.action(description="Turn the selected rules off")
    def turn_off(self, request: HttpRequest, queryset: QuerySet[AutoReplyRule]) -> None:
        for rule in queryset:
            services.set_auto_reply_rule_active(rule=rule, is_active=False)


class CannedResponseForm(CheckedForm):
    # A plain text field: the service strips a leading "/" and lower-cases before checking the pattern.
    shortcut = forms.CharField(
        max_length=services.SHORTCUT_LIMIT + 1,
        help_text="Agents type / and this in the composer: letters, digits, - and _.",
    )

    class Meta:
        model = CannedResponse
        fields = ["shortcut", "title", "text"]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if {"shortcut", "text"} <= data.keys():
            cleaned = self.checked(
                services.check_canned_response,
                canned=self.instance,
                shortcut=data["shortcut"],
                title=data.get("title", ""),
                text=data["text"],
            )
            if cleaned:
                data["shortcut"], data["title"], data["text"] = cleaned
        return data


@admin.register(CannedResponse)
class CannedResponseAdmin(admin.ModelAdmin):
    form = CannedResponseForm
    list_display = ["__str__", "title", "short_text", "created_at"]
    search_fields = ["shortcut", "title", "text"]

    @admin.display(description="Text")
    def short_text(self, obj: CannedResponse) -> str:
        return obj.text if len(obj.text) <= 80 else obj.text[:79] + "…"

    def save_model(self, request: HttpRequest, obj: CannedResponse, form: Any, change: bool) -> None:
        services.save_canned_response(canned=obj, shortcut=obj.shortcut, title=obj.title, text=obj.text)

    def delete_model(self, request: HttpRequest, obj: CannedResponse) -> None:
        services.delete_canned_response(canned=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[CannedResponse]) -> None:
        for canned in queryset:
            services.delete_canned_response(canned=canned)


class BotSettingsForm(CheckedForm):
    time_zone = forms.ChoiceField(
        choices=lambda: [(name, name) for name in services.time_zone_names()],
        help_text="Business hours are read in this zone.",
    )

    class Meta:
        model = BotSettings
        fields = [
            "welcome_enabled",
            "welcome_text",
            "away_enabled",
            "away_text",
            "time_zone",
            "stop_words",
            "opt_out_reply",
            "start_words",
            "opt_in_reply",
            "assign_on_reply",
        ]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        words = self.checked(
            services.check_consent_words,
            stop_words=data.get("stop_words", ""),
            start_words=data.get("start_words", ""),
        )
        if words:
            data["stop_words"], data["start_words"] = words
        texts = self.checked(
            services.check_bot_messages,
            welcome_enabled=data.get("welcome_enabled", False),
            welcome_text=data.get("welcome_text", ""),
            away_enabled=data.get("away_enabled", False),
            away_text=data.get("away_text", ""),
        )
        if texts:
            data["welcome_text"], data["away_text"] = texts
        return data


@admin.register(BotSettings)
class BotSettingsAdmin(admin.ModelAdmin):
    """One row per tenant (the bot reads pk 1): no adding or deleting, and the list opens that row."""

    form = BotSettingsForm

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        settings = load_settings()
        return HttpResponseRedirect(reverse("admin:conversations_botsettings_change", args=[settings.pk]))

    def save_model(self, request: HttpRequest, obj: BotSettings, form: Any, change: bool) -> None:
        services.update_bot_messages(
            welcome_enabled=obj.welcome_enabled,
            welcome_text=obj.welcome_text,
            away_enabled=obj.away_enabled,
            away_text=obj.away_text,
        )
        services.set_time_zone(time_zone=obj.time_zone)
        services.update_consent_settings(
            stop_words=obj.stop_words,
            start_words=obj.start_words,
            opt_out_reply=obj.opt_out_reply,
            opt_in_reply=obj.opt_in_reply,
            assign_on_reply=obj.assign_on_reply,
        )
        if obj.away_enabled and not BusinessHours.objects.exists():
            messages.warning(
                request,
                "No business hours are set: the bot counts the business as always open and never sends "
                "the away message.",
            )


class BusinessHoursForm(CheckedForm):
    class Meta:
        model = BusinessHours
        fields = ["weekday", "opens", "closes"]
        help_texts = {"closes": "Earlier than the opening time: the interval runs past midnight."}

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if {"weekday", "opens", "closes"} <= data.keys():
            others = BusinessHours.objects.exclude(pk=self.instance.pk) if self.instance.pk else None
            others = BusinessHours.objects.all() if others is None else others
            week = [(o.weekday, o.opens, o.closes) for o in others]
            self.checked(
                services.check_intervals, intervals=[*week, (data["weekday"], data["opens"], data["closes"])]
            )
        return data


@admin.register(BusinessHours)
class BusinessHoursAdmin(admin.ModelAdmin):
    form = BusinessHoursForm
    list_display = ["weekday", "opens", "closes"]
    list_filter = ["weekday"]
    ordering = ["weekday", "opens"]

    def save_model(self, request: HttpRequest, obj: BusinessHours, form: Any, change: bool) -> None:
        services.save_business_hours_interval(
            interval=obj, weekday=obj.weekday, opens=obj.opens, closes=obj.closes
        )

    def delete_model(self, request: HttpRequest, obj: BusinessHours) -> None:
        services.delete_business_hours_interval(interval=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[BusinessHours]) -> None:
        for interval in queryset:
            services.delete_business_hours_interval(interval=interval)
