"""Settings → AI (/settings/ai/, owners and admins) and the inbox's AI endpoints: the copilot (text for the
composer, never sent) and "Save as FAQ" under an agent's answer after a handoff. Thin: writes go through
knowledge.ai_settings, knowledge.copilot and knowledge.learning; a ServiceError that escapes is answered by
core.http's middleware (JSON for scripts)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseBase, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from conversations.selectors import viewer_for
from core.errors import ServiceError
from crm.views import member_required
from knowledge import ai_settings, copilot, learning
from knowledge.models import AgentSettings


class AISettingsForm(forms.Form):
    enabled = forms.BooleanField(required=False, label="Answer customers with the AI agent")
    instructions = forms.CharField(
        required=False,
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 3}),
        label="Persona and instructions",
        help_text="Tone and rules for the LLM (used only with an LLM).",
    )
    handoff_message = forms.CharField(
        max_length=1000,
        widget=forms.Textarea(attrs={"rows": 2}),
        label="Handoff message",
        help_text="Sent to the customer when the agent hands the conversation to your team.",
    )
    hours = forms.ChoiceField(choices=AgentSettings.Hours.choices, label="When it answers")
    max_replies = forms.IntegerField(
        min_value=1,
        max_value=ai_settings.MAX_REPLIES_LIMIT,
        label="AI replies per conversation before a person takes over",
    )
    threshold = forms.FloatField(
        required=False,
        min_value=0,
        max_value=1,
        label="Lowest passage score that answers",
        help_text="0 to 1; below it the agent hands over (no answer in the knowledge). Empty: the default.",
    )
    blocked_topics = forms.CharField(
        required=False,
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 3}),
        label="Blocked topics",
        help_text="One per line: a message about one goes straight to a person.",
    )
    llm_enabled = forms.BooleanField(required=False, label="Use an LLM (OpenAI-compatible)")
    llm_base_url = forms.CharField(
        required=False, max_length=500, label="Base URL", help_text="e.g. https://api.openai.com/v1"
    )
    llm_model = forms.CharField(required=False, max_length=100, label="Model")
    llm_api_key = forms.CharField(
        required=False,
        max_length=500,
        label="API key",
        widget=forms.PasswordInput(render_value=False),
        help_text="Stored encrypted and never shown. Leave empty to keep the current key.",
    )
    clear_api_key = forms.BooleanField(required=False, label="Remove the stored API key")

    def add_service_error(self, exc: ServiceError) -> None:
        field = exc.field if exc.field in self.fields else None
        self.add_error(field, exc.message)

    def changes(self) -> dict[str, Any]:
        data = dict(self.cleaned_data)
        clear = data.pop("clear_api_key", False)
        key = data.pop("llm_api_key", "")
        if clear:
            data["llm_api_key"] = ""
        elif key:
            data["llm_api_key"] = key
        return data


def _initial(settings: AgentSettings) -> dict[str, Any]:
    shown = ai_settings.as_dict(settings)
    return {name: shown[name] for name in AISettingsForm.base_fields if name in shown}


@require_http_methods(["GET", "POST"])
@member_required("admin")
def settings_page(request: HttpRequest) -> HttpResponseBase:
    settings = ai_settings.load_agent_settings()
    if request.method == "POST":
        form = AISettingsForm(request.POST)
        if form.is_valid():
            try:
                ai_settings.update_agent_settings(changes=form.changes(), by=request.user)
            except ServiceError as exc:
                form.add_service_error(exc)
            else:
                messages.success(request, "AI agent settings saved.")
                return redirect("ai-settings")
        status = 400
    else:
        form = AISettingsForm(initial=_initial(settings))
        status = 200
    context = {
        "form": form,
        "settings": settings,
        "sandbox_url": _sandbox_url(),
        "reasons": ai_settings_reasons(),
    }
    return render(request, "knowledge/ai_settings.html", context, status=status)


def _sandbox_url() -> str:
    from django.conf import settings as django_settings

    return str(getattr(django_settings, "LLM_SANDBOX_URL", "") or "")


def ai_settings_reasons() -> list[tuple[str, str]]:
    from knowledge.models import AIHandoff

    return list(AIHandoff.Reason.choices)


class CopilotForm(forms.Form):
    action = forms.ChoiceField(choices=[(a, a) for a in copilot.ACTIONS])
    draft = forms.CharField(required=False, max_length=4096)
    message_id = forms.IntegerField(required=False)
    style = forms.ChoiceField(choices=[(s, s) for s in copilot.STYLES], required=False)
    language = forms.CharField(required=False, max_length=20)


@require_POST
@member_required("agent")
def copilot_view(request: HttpRequest, pk: int) -> JsonResponse:
    form = CopilotForm(request.POST)
    if not form.is_valid():
        field, errors = next(iter(form.errors.items()))
        raise ServiceError("invalid", str(errors[0]), field=field)
    data = {k: v for k, v in form.cleaned_data.items() if v not in (None, "")}
    result = copilot.run(viewer=viewer_for(request.user), conversation_id=pk, **data)
    return JsonResponse({"text": result.text, "model": result.model})


@require_POST
@member_required("agent")
def suggest_faq_view(request: HttpRequest, pk: int) -> HttpResponse:
    try:
        message_id = int(request.POST.get("message_id", ""))
    except ValueError:
        raise ServiceError("invalid_message", "Choose an answer to save.", field="message_id") from None
    learning.suggest_faq(viewer=viewer_for(request.user), conversation_id=pk, message_id=message_id)
    return HttpResponse(
        '<p class="ai-learn muted" role="status">Saved as an FAQ suggestion: an admin approves '
        "it in Settings → AI → Knowledge.</p>"
    )
