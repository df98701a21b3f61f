from __future__ import annotations

import datetime as dt
import re

from django.db import models
from django.utils import timezone

from whatsapp import crypto


class WhatsAppChannel(models.Model):
    """A WhatsApp business number of this tenant."""

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        NEEDS_REAUTH = "needs_reauth", "Needs re-authorisation"
        DISABLED = "disabled", "Disabled"

    name = models.CharField(max_length=100, blank=True)
    phone_number_id = models.CharField(max_length=64, unique=True)
    waba_id = models.CharField(max_length=64)
    display_phone = models.CharField(max_length=32, blank=True)
    access_token_encrypted = models.TextField(blank=True, editable=False)
    app_secret_encrypted = models.TextField(blank=True, editable=False)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.ACTIVE)
    status_reason = models.CharField(max_length=300, blank=True)
    throughput_cap = models.PositiveIntegerField(default=80, help_text="Messages per second")
    templates_synced_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["display_phone", "phone_number_id"]
        # What the people using it call it (the auto name was "whats app channel").
        verbose_name = "WhatsApp number"
        verbose_name_plural = "WhatsApp numbers"

    def __str__(self) -> str:
        return self.display_phone or self.phone_number_id

    @property
    def access_token(self) -> str:
        return crypto.decrypt(self.access_token_encrypted)

    @property
    def app_secret(self) -> str:
        return crypto.decrypt(self.app_secret_encrypted)

    @property
    def is_active(self) -> bool:
        return self.status == self.Status.ACTIVE

    @property
    def unavailable_reason(self) -> str:
        """Why nothing can be sent from this number now, as shown to staff ("" when it is active)."""
        if self.is_active:
            return ""
        state = "needs re-authorisation" if self.status == self.Status.NEEDS_REAUTH else "is disabled"
        return f"The WhatsApp number {self} {state}" + (
            f": {self.status_reason}" if self.status_reason else "."
        )


PLACEHOLDER_RE = re.compile(r"\{\{\s*([A-Za-z0-9_]+)\s*\}\}")


class MessageTemplate(models.Model):
    """A message template of a WhatsApp Business Account, as last synced from Meta."""

    waba_id = models.CharField(max_length=64, db_index=True)
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


# Dramatiq's retries of a download (8, backing off up to 10 minutes) end well within this.
MEDIA_DOWNLOAD_STALE_AFTER = dt.timedelta(hours=1)


class MediaFile(models.Model):
    """A media object: downloaded from Meta for inbound messages, uploaded to Meta for outbound ones."""

    class Direction(models.TextChoices):
        INBOUND = "in", "Inbound"
        OUTBOUND = "out", "Outbound"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        READY = "ready", "Ready"
        FAILED = "failed", "Failed"

    channel = models.ForeignKey(WhatsAppChannel, on_delete=models.CASCADE, related_name="media")
    message = models.OneToOneField(
        "conversations.Message", null=True, blank=True, on_delete=models.CASCADE, related_name="media"
    )
    direction = models.CharField(max_length=3, choices=Direction.choices)
    kind = models.CharField(max_length=20, help_text="image, video, audio, document or sticker")
    media_id = models.CharField(max_length=128, blank=True, db_index=True, help_text="Meta's media id")
    file = models.FileField(upload_to="whatsapp/", max_length=300, blank=True)
    filename = models.CharField(max_length=255, blank=True)
    mime_type = models.CharField(max_length=120, blank=True)
    size = models.PositiveBigIntegerField(null=True, blank=True)
    sha256 = models.CharField(max_length=128, blank=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    error = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.kind} {self.media_id or self.pk} ({self.status})"

    @property
    def can_retry_download(self) -> bool:
        """Failed, or pending for so long that its job was surely lost (the broker was down): "Downloading…"
        must end in the file or in a way to try again."""
        if self.direction != self.Direction.INBOUND:
            return False
        if self.status == self.Status.FAILED:
            return True
        stale = timezone.now() - MEDIA_DOWNLOAD_STALE_AFTER
        return self.status == self.Status.PENDING and self.created_at is not None and self.created_at < stale


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
