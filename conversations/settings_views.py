"""Settings → Inbox (/settings/inbox/): what the bot says and when, and the saved replies agents insert
with `/` in the composer. For owners and admins; everyone else gets the 403 page.

One page of four sections. With htmx a form posts to its section's URL and gets that section back (with
its errors, or a note that it was saved); without script the same URLs redirect back to the page after a
save, or render the whole page with the errors. Writes go through conversations.settings_services.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from conversations import settings_services as services
from conversations.bot import is_set_up, load_settings
from conversations.models import AutoReplyRule, BotSettings, BusinessHours, CannedResponse
from conversations.settings_forms import BotMessagesForm, CannedResponseForm, ConsentForm, HoursForm, RuleForm
from core.errors import ServiceError
from crm.views import member_required

PAGE = "inbox/settings/page.html"
SECTIONS = {
    "bot-messages": "inbox/settings/_messages.html",
    "hours": "inbox/settings/_hours.html",
    "rules": "inbox/settings/_rules.html",
    "replies": "inbox/settings/_replies.html",
    "consent": "inbox/settings/_consent.html",
}


def _is_htmx(request: HttpRequest) -> bool:
    return request.headers.get("HX-Request") == "true"


class _Loaded:
    """The bot's settings row and the week's hours, read once per request whichever sections need them."""

    def __init__(self) -> None:
        self._settings: BotSettings | None = None
        self._hours: list[BusinessHours] | None = None

    @property
    def settings(self) -> BotSettings:
        if self._settings is None:
            self._settings = load_settings()
        return self._settings

    @property
    def hours(self) -> list[BusinessHours]:
        if self._hours is None:
            self._hours = list(BusinessHours.objects.all())
        return self._hours

    @property
    def away_without_hours(self) -> bool:
        # Without business hours the bot counts the business as always open: say so by the switch.
        return self.settings.away_enabled and not self.hours


def _messages_context(loaded: _Loaded, form: BotMessagesForm | None = None, **extra: Any) -> dict[str, Any]:
    form = form or BotMessagesForm(initial=BotMessagesForm.initial_for(loaded.settings))
    return {"messages_form": form, "away_without_hours": loaded.away_without_hours, **extra}


def _hours_context(loaded: _Loaded, form: HoursForm | None = None, **extra: Any) -> dict[str, Any]:
    form = form or HoursForm(time_zone=loaded.settings.time_zone, hours=loaded.hours)
    names = services.time_zone_names()
    # A zone stored before it was checked (or removed from tzdata) stays visible, so saving names it.
    zones = names if form.time_zone in names or not form.time_zone else (form.time_zone, *names)
    return {"hours_form": form, "time_zones": zones, "away_without_hours": loaded.away_without_hours, **extra}


def _rules_context(
    loaded: _Loaded, form: RuleForm | None = None, editing: AutoReplyRule | None = None, **extra: Any
) -> dict[str, Any]:
    if form is None:
        form = RuleForm(initial=RuleForm.initial_for(editing)) if editing else RuleForm()
    return {
        "rules": list(AutoReplyRule.objects.order_by("position", "id")),
        "rule_form": form,
        "editing_rule": editing,
        **extra,
    }


def _replies_context(
    loaded: _Loaded,
    form: CannedResponseForm | None = None,
    editing: CannedResponse | None = None,
    **extra: Any,
) -> dict[str, Any]:
    if form is None:
        initial = CannedResponseForm.initial_for(editing) if editing else None
        form = CannedResponseForm(initial=initial)
    return {
        "replies": list(CannedResponse.objects.order_by("shortcut")),
        "reply_form": form,
        "editing_reply": editing,
        **extra,
    }


def _consent_context(loaded: _Loaded, form: ConsentForm | None = None, **extra: Any) -> dict[str, Any]:
    form = form or ConsentForm(initial=ConsentForm.initial_for(loaded.settings))
    return {"consent_form": form, **extra}


BUILDERS: dict[str, Callable[..., dict[str, Any]]] = {
    "bot-messages": _messages_context,
    "hours": _hours_context,
    "rules": _rules_context,
    "replies": _replies_context,
    "consent": _consent_context,
}


def _page(request: HttpRequest, section: str | None = None, **section_context: Any) -> HttpResponse:
    """The whole page; `section`'s context is built from `section_context` (a bound form, the row being
    edited), the others' from the database."""
    loaded = _Loaded()
    context: dict[str, Any] = {"nav": "settings"}
    for name, build in BUILDERS.items():
        context.update(build(loaded, **section_context) if name == section else build(loaded))
    context["bot_set_up"] = is_set_up(settings=loaded.settings, rules=context["rules"])
    return render(request, PAGE, context)


# Sections whose saves can make the bot start or stop having anything to say (the page's hint follows).
BOT_SECTIONS = ("bot-messages", "rules")


def _respond(
    request: HttpRequest, section: str, *, saved: str = "", **section_context: Any
) -> HttpResponseBase:
    """htmx: the section, re-rendered. Otherwise: back to the page after a save (so a reload does not
    post again), or the page with the section's errors."""
    if _is_htmx(request):
        loaded = _Loaded()
        context = {"notice": saved, "htmx": True, **BUILDERS[section](loaded, **section_context)}
        if section in BOT_SECTIONS:
            rules = context.get("rules")
            rules = list(AutoReplyRule.objects.filter(is_active=True)) if rules is None else rules
            context["bot_set_up"] = is_set_up(settings=loaded.settings, rules=rules)
        return render(request, SECTIONS[section], context)
    if saved:
        messages.success(request, saved)
        return redirect(reverse("inbox:settings-inbox") + f"#{section}")
    return _page(request, section, **section_context)


@require_GET
@member_required("admin")
def settings_page(request: HttpRequest) -> HttpResponse:
    return _page(request)


@require_POST
@member_required("admin")
def save_messages(request: HttpRequest) -> HttpResponseBase:
    form = BotMessagesForm(request.POST)
    if form.is_valid():
        try:
            services.update_bot_messages(**form.cleaned_data)
        except ServiceError as exc:
            form.add_service_error(exc)
        else:
            return _respond(request, "bot-messages", saved="Welcome and away messages saved.")
    return _respond(request, "bot-messages", form=form)


@require_POST
@member_required("admin")
def save_hours(request: HttpRequest) -> HttpResponseBase:
    form = HoursForm(request.POST)
    if form.is_valid():
        try:
            services.set_business_hours(
                time_zone=form.time_zone, always_open=form.always_open, intervals=form.intervals
            )
        except ServiceError as exc:
            form.add_service_error(exc)
        else:
            return _respond(request, "hours", saved="Business hours saved.")
    return _respond(request, "hours", form=form)


# ---------------------------------------------------------------------------------------------------
# Auto-reply rules
# ---------------------------------------------------------------------------------------------------


def _save_rule(request: HttpRequest, rule: AutoReplyRule | None) -> HttpResponseBase:
    form = RuleForm(request.POST)
    if form.is_valid():
        try:
            saved = services.save_auto_reply_rule(rule=rule, **form.cleaned_data)
        except ServiceError as exc:
            form.add_service_error(exc)
        else:
            verb = "saved" if rule else "added"
            return _respond(request, "rules", saved=f"Rule “{saved.keyword}” {verb}.")
    return _respond(request, "rules", form=form, editing=rule)


@require_http_methods(["GET", "POST"])
@member_required("admin")
def rules(request: HttpRequest) -> HttpResponseBase:
    if request.method == "POST":
        return _save_rule(request, None)
    return _respond(request, "rules")


@require_http_methods(["GET", "POST"])
@member_required("admin")
def rule(request: HttpRequest, pk: int) -> HttpResponseBase:
    """GET: the rules with this one's edit form; POST: save it."""
    found = get_object_or_404(AutoReplyRule, pk=pk)
    if request.method == "POST":
        return _save_rule(request, found)
    return _respond(request, "rules", editing=found)


@require_POST
@member_required("admin")
def rule_active(request: HttpRequest, pk: int) -> HttpResponseBase:
    found = get_object_or_404(AutoReplyRule, pk=pk)
    active = request.POST.get("is_active") == "on"
    services.set_auto_reply_rule_active(rule=found, is_active=active)
    state = "on" if active else "off"
    return _respond(request, "rules", saved=f"Rule “{found.keyword}” turned {state}.")


@require_POST
@member_required("admin")
def rule_move(request: HttpRequest, pk: int) -> HttpResponseBase:
    found = get_object_or_404(AutoReplyRule, pk=pk)
    try:
        services.move_auto_reply_rule(rule=found, direction=request.POST.get("direction", ""))
    except ServiceError as exc:
        if _is_htmx(request):
            return _respond(request, "rules", error=exc.message)
        messages.error(request, exc.message)
        return redirect(reverse("inbox:settings-inbox") + "#rules")
    return _respond(request, "rules", saved=f"Rule “{found.keyword}” moved {request.POST['direction']}.")


@require_POST
@member_required("admin")
def rule_delete(request: HttpRequest, pk: int) -> HttpResponseBase:
    found = get_object_or_404(AutoReplyRule, pk=pk)
    services.delete_auto_reply_rule(rule=found)
    return _respond(request, "rules", saved=f"Rule “{found.keyword}” deleted.")


# ---------------------------------------------------------------------------------------------------
# Saved replies
# ---------------------------------------------------------------------------------------------------


def _save_reply(request: HttpRequest, canned: CannedResponse | None) -> HttpResponseBase:
    form = CannedResponseForm(request.POST)
    if form.is_valid():
        try:
            saved = services.save_canned_response(canned=canned, **form.cleaned_data)
        except ServiceError as exc:
            form.add_service_error(exc)
        else:
            verb = "saved" if canned else "added"
            return _respond(request, "replies", saved=f"Saved reply /{saved.shortcut} {verb}.")
    return _respond(request, "replies", form=form, editing=canned)


@require_http_methods(["GET", "POST"])
@member_required("admin")
def replies(request: HttpRequest) -> HttpResponseBase:
    if request.method == "POST":
        return _save_reply(request, None)
    return _respond(request, "replies")


@require_http_methods(["GET", "POST"])
@member_required("admin")
def reply(request: HttpRequest, pk: int) -> HttpResponseBase:
    found = get_object_or_404(CannedResponse, pk=pk)
    if request.method == "POST":
        return _save_reply(request, found)
    return _respond(request, "replies", editing=found)


@require_POST
@member_required("admin")
def reply_delete(request: HttpRequest, pk: int) -> HttpResponseBase:
    found = get_object_or_404(CannedResponse, pk=pk)
    services.delete_canned_response(canned=found)
    return _respond(request, "replies", saved=f"Saved reply /{found.shortcut} deleted.")


# ---------------------------------------------------------------------------------------------------
# Opt-out and opt-in keywords, assignment on reply
# ---------------------------------------------------------------------------------------------------


@require_POST
@member_required("admin")
def save_consent(request: HttpRequest) -> HttpResponseBase:
    form = ConsentForm(request.POST)
    if form.is_valid():
        try:
            services.update_consent_settings(**form.cleaned_data)
        except ServiceError as exc:
            form.add_service_error(exc)
        else:
            return _respond(request, "consent", saved="Opt-out and assignment settings saved.")
    return _respond(request, "consent", form=form)
