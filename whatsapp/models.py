from __future__ import annotations

from django.db import models


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
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["display_phone", "phone_number_id"]

    def __str__(self) -> str:
        return self.display_phone or self.phone_number_id
