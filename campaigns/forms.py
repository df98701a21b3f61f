"""The campaign form: audience, parameters, schedule and window, parsed into create_campaign's shape."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django import forms
from django.utils import timezone

from conversations import channels
from conversations.models import Channel


class CampaignForm(forms.Form):
    name = forms.CharField(max_length=200)
    channel = forms.ModelChoiceField(queryset=Channel.objects.none(), label="Number", empty_label=None)
    template = forms.CharField(
        max_length=540, help_text="An approved template of the number's account: name|language"
    )
    tags = forms.CharField(required=False, help_text="Contacts with any of these tags (comma-separated)")
    attributes = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="One key=value per line: contacts whose attribute equals the value",
    )
    last_inbound_after = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    last_inbound_before = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    csv = forms.FileField(required=False, label="Or upload a CSV (phone, name, … columns)")
    body = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="One body parameter per line: a literal or {{contact.name}}, {{contact.first_name}}, "
        "{{contact.attributes.<key>}}",
    )
    header_link = forms.URLField(required=False, label="Media header link", assume_scheme="https")
    header_media_id = forms.CharField(required=False, max_length=128, label="Or uploaded media id")
    schedule_at = forms.DateTimeField(
        required=False,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
        help_text="Empty: when you start it. In the workspace's time zone",
    )
    window_start = forms.TimeField(required=False, widget=forms.TimeInput(attrs={"type": "time"}))
    window_end = forms.TimeField(required=False, widget=forms.TimeInput(attrs={"type": "time"}))

    def __init__(self, *args: Any, zone: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.zone = zone
        active = Channel.objects.filter(status=Channel.Status.ACTIVE).order_by("id")
        # Only numbers whose provider sends templates can run a campaign (the page says why the others not).
        usable = [c.pk for c in active if channels.supports(c, channels.TEMPLATES)]
        self.fields["channel"].queryset = active.filter(pk__in=usable)  # type: ignore[attr-defined]

    def template_ref(self) -> tuple[str, str]:
        name, _, language = self.cleaned_data["template"].partition("|")
        return name, language

    def audience(self) -> dict[str, Any]:
        data = self.cleaned_data
        audience: dict[str, Any] = {}
        tags = [t.strip() for t in (data.get("tags") or "").split(",") if t.strip()]
        if tags:
            audience["tags"] = tags
        attributes = {}
        for line in (data.get("attributes") or "").splitlines():
            key, sep, value = line.partition("=")
            if sep and key.strip():
                attributes[key.strip()] = value.strip()
        if attributes:
            audience["attributes"] = attributes
        for name in ("last_inbound_after", "last_inbound_before"):
            if data.get(name):
                audience[name] = data[name].isoformat()
        return audience

    def parameters(self) -> dict[str, Any]:
        data = self.cleaned_data
        parameters: dict[str, Any] = {}
        body = [line.strip() for line in (data.get("body") or "").splitlines() if line.strip()]
        if body:
            parameters["body"] = body
        if data.get("header_media_id"):
            parameters["header"] = {"id": data["header_media_id"]}
        elif data.get("header_link"):
            parameters["header"] = {"link": data["header_link"]}
        return parameters

    def schedule(self) -> dt.datetime | None:
        value = self.cleaned_data.get("schedule_at")
        if value is None:
            return None
        naive = timezone.make_naive(value) if timezone.is_aware(value) else value
        return naive.replace(tzinfo=self.zone) if self.zone is not None else value
