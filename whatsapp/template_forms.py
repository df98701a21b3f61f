"""The templates page's form: its fields become a draft (whatsapp.template_rules) and each problem the rules
or the service find is shown next to the field it is about."""

from __future__ import annotations

import re
from typing import Any

from django import forms

from core.errors import ServiceError
from whatsapp import template_rules

BUTTON_ROWS = 10
LANGUAGE_CHOICES = sorted(template_rules.LANGUAGES.items(), key=lambda item: item[1])
BUTTON_CHOICES = [
    ("", "—"),
    ("QUICK_REPLY", "Quick reply"),
    ("URL", "Visit website"),
    ("PHONE_NUMBER", "Call phone number"),
    ("COPY_CODE", "Copy code"),
]
NAMED_EXAMPLE_RE = re.compile(r"^\s*\{*\s*([a-z][a-z0-9_]*)\s*\}*\s*[=:]\s*(.*)$")


class TemplateForm(forms.Form):
    waba_id = forms.ChoiceField(label="WhatsApp Business Account")
    name = forms.CharField(
        max_length=600, help_text="Lowercase letters, digits and underscores, e.g. shipping_update"
    )
    language = forms.ChoiceField(choices=LANGUAGE_CHOICES)
    category = forms.ChoiceField(choices=[(c, c.title()) for c in template_rules.CATEGORIES])
    header_format = forms.ChoiceField(
        label="Header",
        required=False,
        choices=[
            ("NONE", "None"),
            ("TEXT", "Text"),
            ("IMAGE", "Image"),
            ("VIDEO", "Video"),
            ("DOCUMENT", "Document"),
        ],
    )
    header_text = forms.CharField(label="Header text", required=False, max_length=200)
    header_example = forms.CharField(
        label="Example for the header's variable", required=False, max_length=300
    )
    header_media = forms.CharField(
        label="Example media",
        required=False,
        max_length=4096,
        help_text="An upload handle or an https:// URL",
    )
    body = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 5}),
        required=False,
        max_length=4000,
        help_text="Variables as {{1}}, {{2}} … or by name, {{first_name}} (one kind per template)",
    )
    body_examples = forms.CharField(
        label="Examples for the body's variables",
        widget=forms.Textarea(attrs={"rows": 3}),
        required=False,
        max_length=4000,
        help_text="One per line, in order; for named variables: first_name=Maria",
    )
    footer = forms.CharField(required=False, max_length=200)
    add_security_recommendation = forms.BooleanField(
        required=False, label="Add “For your security, do not share this code.” (authentication)"
    )
    code_expiration_minutes = forms.CharField(
        required=False, max_length=5, label="Code expires after (minutes, authentication)"
    )
    otp_button_text = forms.CharField(
        required=False, max_length=100, label="Copy-code button text (authentication)"
    )

    def __init__(self, *args: Any, accounts: list[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        account_field = self.fields["waba_id"]
        assert isinstance(account_field, forms.ChoiceField)
        account_field.choices = [(a, a) for a in accounts]
        for index in range(BUTTON_ROWS):
            self.fields[f"button_{index}_type"] = forms.ChoiceField(
                choices=BUTTON_CHOICES, required=False, label=f"Button {index + 1}"
            )
            self.fields[f"button_{index}_text"] = forms.CharField(
                required=False, max_length=100, label="Text"
            )
            self.fields[f"button_{index}_value"] = forms.CharField(
                required=False, max_length=2100, label="URL, phone number or example code"
            )
            self.fields[f"button_{index}_example"] = forms.CharField(
                required=False, max_length=2100, label="Example URL (for a URL with {{1}})"
            )

    def button_rows(self) -> list[dict[str, Any]]:
        return [
            {
                "number": index + 1,
                "type": self[f"button_{index}_type"],
                "text": self[f"button_{index}_text"],
                "value": self[f"button_{index}_value"],
                "example": self[f"button_{index}_example"],
            }
            for index in range(BUTTON_ROWS)
        ]

    def draft(self) -> dict[str, Any]:
        data = self.cleaned_data
        buttons: list[dict[str, Any]] = []
        self._button_index: dict[int, int] = {}  # the draft's button → its row
        for index in range(BUTTON_ROWS):
            kind = data.get(f"button_{index}_type") or ""
            if not kind:
                continue
            value = (data.get(f"button_{index}_value") or "").strip()
            button: dict[str, Any] = {"type": kind, "text": data.get(f"button_{index}_text") or ""}
            if kind == "URL":
                button["url"] = value
                button["example"] = data.get(f"button_{index}_example") or ""
            elif kind == "PHONE_NUMBER":
                button["phone_number"] = value
            elif kind == "COPY_CODE":
                button["example"] = value
            self._button_index[len(buttons)] = index
            buttons.append(button)
        draft: dict[str, Any] = {
            "name": data.get("name", ""),
            "language": data.get("language", ""),
            "category": data.get("category", ""),
            "header": {
                "format": data.get("header_format") or "NONE",
                "text": data.get("header_text", ""),
                "example": data.get("header_example", ""),
                "media": data.get("header_media", ""),
            },
            "body": data.get("body", ""),
            "footer": data.get("footer", ""),
            "buttons": buttons,
            "add_security_recommendation": data.get("add_security_recommendation", False),
            "code_expiration_minutes": (data.get("code_expiration_minutes") or "").strip() or None,
            "otp_button_text": data.get("otp_button_text", ""),
        }
        lines = [line for line in (data.get("body_examples") or "").splitlines() if line.strip()]
        if template_rules.variable_format(draft) == "NAMED":
            named = {}
            for line in lines:
                if match := NAMED_EXAMPLE_RE.match(line):
                    named[match.group(1)] = match.group(2).strip()
            draft["body_examples"] = named
        else:
            draft["body_examples"] = [line.strip() for line in lines]
        return draft

    def _field_for(self, problem_field: str) -> str | None:
        simple = {
            "name": "name",
            "language": "language",
            "category": "category",
            "header": "header_format",
            "header.format": "header_format",
            "header.text": "header_text",
            "header.example": "header_example",
            "header.media": "header_media",
            "body": "body",
            "body_examples": "body_examples",
            "footer": "footer",
            "code_expiration_minutes": "code_expiration_minutes",
            "otp_button_text": "otp_button_text",
            "waba_id": "waba_id",
        }
        if problem_field in simple:
            return simple[problem_field]
        parts = problem_field.split(".")
        if parts[0] == "buttons" and len(parts) >= 2 and parts[1].isdigit():
            row = getattr(self, "_button_index", {}).get(int(parts[1]), int(parts[1]))
            if row >= BUTTON_ROWS:
                return None
            kind = self.cleaned_data.get(f"button_{row}_type") or ""
            part = parts[2] if len(parts) > 2 else "type"
            if part == "text":
                return f"button_{row}_text"
            if part in ("url", "phone_number") or (part == "example" and kind == "COPY_CODE"):
                return f"button_{row}_value"
            if part == "example":
                return f"button_{row}_example"
            return f"button_{row}_type"
        return None

    def add_service_error(self, error: ServiceError) -> None:
        problems = (error.details or {}).get("problems") if error.code == "invalid_template" else None
        if not problems:
            field = self._field_for(error.field or "")
            self.add_error(field, forms.ValidationError(error.message, code=error.code))
            return
        self.buttons_errors: list[str] = []
        for problem in problems:
            field = self._field_for(problem["field"])
            if field is None and problem["field"] == "buttons":
                self.buttons_errors.append(problem["message"])
                continue
            self.add_error(field, forms.ValidationError(problem["message"], code=problem["code"]))
