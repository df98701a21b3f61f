from __future__ import annotations

import re

from django.db import models

PLACEHOLDER_RE = re.compile(r"\{\{\s*([A-Za-z0-9_]+)\s*\}\}")


class MessageTemplate(models.Model):
    """A message template of a WhatsApp Business Account, as last synced from Meta."""

    # Indexed by template_unique_per_waba (waba_id, name, language) (issue 20).
    waba_id = models.CharField(max_length=64)
    meta_id = models.CharField(max_length=64, blank=True)
    name = models.CharField(max_length=512)
    language = models.CharField(max_length=15)
    category = models.CharField(max_length=30, blank=True)
    status = models.CharField(max_length=30, blank=True, help_text="Meta's status, e.g. APPROVED")
    # From the account-level template webhooks: why Meta rejected or paused it, and its quality score.
    status_reason = models.CharField(max_length=300, blank=True)
    quality_score = models.CharField(max_length=20, blank=True, help_text="GREEN, YELLOW, RED or UNKNOWN")
    parameter_format = models.CharField(max_length=20, default="POSITIONAL")
    components = models.JSONField(default=list, blank=True)
    synced_at = models.DateTimeField(null=True, blank=True)
    # template_category_update: a change Meta announced (the category it will apply, and when), and the
    # category a completed change replaced.
    pending_category = models.CharField(max_length=30, blank=True)
    category_change_at = models.DateTimeField(null=True, blank=True)
    previous_category = models.CharField(max_length=30, blank=True)

    class Meta:
        ordering = ["name", "language"]
        constraints = [
            models.UniqueConstraint(fields=["waba_id", "name", "language"], name="template_unique_per_waba")
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.language})"

    @property
    def is_approved(self) -> bool:
        return self.status.upper() == "APPROVED"

    def component(self, kind: str) -> dict | None:
        return next((c for c in self.components if str(c.get("type", "")).upper() == kind), None)

    def body_placeholders(self) -> list[str]:
        body = self.component("BODY") or {}
        return _unique(PLACEHOLDER_RE.findall(body.get("text", "")))

    def header_format(self) -> str | None:
        header = self.component("HEADER")
        return str(header.get("format", "TEXT")).upper() if header else None

    def header_placeholders(self) -> list[str]:
        header = self.component("HEADER") or {}
        if str(header.get("format", "TEXT")).upper() != "TEXT":
            return []
        return _unique(PLACEHOLDER_RE.findall(header.get("text", "")))

    def button_placeholders(self) -> dict[int, list[str]]:
        """Buttons that take a parameter (dynamic URL suffix, copy code), by index."""
        buttons = (self.component("BUTTONS") or {}).get("buttons", [])
        found: dict[int, list[str]] = {}
        for index, button in enumerate(buttons):
            kind = str(button.get("type", "")).upper()
            if kind == "URL" and PLACEHOLDER_RE.search(button.get("url", "")):
                found[index] = _unique(PLACEHOLDER_RE.findall(button["url"]))
            elif kind == "COPY_CODE":
                found[index] = ["code"]
        return found

    def render_body(self, values: list[str] | dict[str, str]) -> str:
        body = (self.component("BODY") or {}).get("text", "")
        return _render(body, values)

    def render_header(self, values: list[str] | dict[str, str]) -> str:
        header = self.component("HEADER") or {}
        return _render(header.get("text", ""), values) if self.header_format() == "TEXT" else ""


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _render(text: str, values: list[str] | dict[str, str]) -> str:
    def replace(match: re.Match[str]) -> str:
        key = match.group(1)
        if isinstance(values, dict):
            return str(values.get(key, match.group(0)))
        if key.isdigit() and 0 < int(key) <= len(values):
            return str(values[int(key) - 1])
        return match.group(0)

    return PLACEHOLDER_RE.sub(replace, text)


class PendingStatus(models.Model):
    """A status webhook for a wamid we do not know yet; applied when the message gets that wamid."""

    wamid = models.CharField(max_length=128, db_index=True)
    status = models.CharField(max_length=20)
    timestamp = models.DateTimeField()
    payload = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["timestamp", "id"]
        verbose_name_plural = "pending statuses"

    def __str__(self) -> str:
        return f"{self.status} for {self.wamid}"


class NumberHealth(models.Model):
    """What Meta last said about a number (quality, throughput, display-name review), read from the Graph
    API by the numbers page or told by the account's webhooks, and which owner alerts were sent for it."""

    channel = models.OneToOneField(
        "conversations.Channel", on_delete=models.CASCADE, primary_key=True, related_name="health"
    )
    quality_rating = models.CharField(max_length=20, blank=True, help_text="GREEN, YELLOW, RED or UNKNOWN")
    # The latest phone_number_quality_update event (FLAGGED, UNFLAGGED, DOWNGRADE, UPGRADE, ...).
    quality_event = models.CharField(max_length=30, blank=True)
    throughput = models.CharField(max_length=30, blank=True, help_text="STANDARD or HIGH")
    # Onboarded to Meta's Marketing Messages API: MARKETING templates are sent to
    # /{phone_number_id}/marketing_messages (whatsapp.delivery).
    marketing_messages_onboarded = models.BooleanField(default=False)
    name_status = models.CharField(max_length=40, blank=True)
    meta_status = models.CharField(max_length=40, blank=True, help_text="Meta's status of the number")
    refreshed_at = models.DateTimeField(null=True, blank=True)
    # The quality owners were last told about: one e-mail per drop, not one per webhook or refresh.
    quality_alerted = models.CharField(max_length=30, blank=True)
    # The two-step verification PIN Embedded Signup registered the number with (encrypted): needed to
    # register it again or move it.
    two_step_pin_encrypted = models.TextField(blank=True, editable=False)

    def __str__(self) -> str:
        return f"{self.channel}: {self.quality_rating or 'unknown'}"


class BusinessAccount(models.Model):
    """A WhatsApp Business Account the tenant's numbers belong to, with the messaging limit Meta sets for
    its business portfolio (since October 2025 one limit for every number of the portfolio)."""

    waba_id = models.CharField(max_length=64, unique=True)
    name = models.CharField(max_length=200, blank=True)
    messaging_limit = models.CharField(max_length=40, blank=True, help_text="e.g. TIER_2K, TIER_UNLIMITED")
    refreshed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["waba_id"]

    def __str__(self) -> str:
        return self.name or self.waba_id
