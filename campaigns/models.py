"""Campaigns: one approved template sent from one number to an audience of contacts, paced by the send
path, within a daily send window in the tenant's time zone."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class CampaignSettings(models.Model):
    """The workspace's campaign rules (one row)."""

    # Meta requires opt-in for marketing; a workspace whose "unknown" contacts did consent elsewhere may
    # include them (off by default).
    marketing_to_unknown = models.BooleanField(
        default=False, help_text="Send MARKETING templates to contacts whose consent is unknown"
    )

    def __str__(self) -> str:
        return "Campaign settings"


class Campaign(models.Model):
    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        SCHEDULED = "scheduled", "Scheduled"
        RUNNING = "running", "Running"
        PAUSED = "paused", "Paused"
        COMPLETED = "completed", "Completed"
        CANCELLED = "cancelled", "Cancelled"

    name = models.CharField(max_length=200)
    channel = models.ForeignKey("conversations.Channel", on_delete=models.PROTECT, related_name="campaigns")
    template = models.ForeignKey(
        "whatsapp.MessageTemplate", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    template_name = models.CharField(max_length=512)
    language = models.CharField(max_length=15)
    # The category when the campaign was created: Meta recategorising it (UTILITY -> MARKETING) pauses it.
    category = models.CharField(max_length=30, blank=True)
    parameters = models.JSONField(default=dict, blank=True)
    audience = models.JSONField(default=dict, blank=True)
    schedule_at = models.DateTimeField(null=True, blank=True)
    window_start = models.TimeField(null=True, blank=True, help_text="In the workspace's time zone")
    window_end = models.TimeField(null=True, blank=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.DRAFT)
    pause_reason = models.CharField(max_length=300, blank=True)
    # Why a running campaign is not sending right now (outside its window, messaging limit reached).
    waiting = models.CharField(max_length=200, blank=True)
    total = models.PositiveIntegerField(default=0)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["status"], name="campaign_status_idx")]

    def __str__(self) -> str:
        return self.name


class Recipient(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        QUEUED = "queued", "Queued"
        SENT = "sent", "Sent"
        DELIVERED = "delivered", "Delivered"
        READ = "read", "Read"
        REPLIED = "replied", "Replied"
        FAILED = "failed", "Failed"
        SKIPPED = "skipped", "Skipped"

    # Indexed by recipient_campaign_status_idx and the (campaign, contact) unique index (issue 20).
    campaign = models.ForeignKey(
        Campaign, on_delete=models.CASCADE, related_name="recipients", db_index=False
    )
    contact = models.ForeignKey("crm.Contact", on_delete=models.CASCADE, related_name="+")
    parameters = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    skip_reason = models.CharField(max_length=40, blank=True)
    error_code = models.IntegerField(null=True, blank=True)
    error_title = models.CharField(max_length=300, blank=True)
    message = models.ForeignKey(
        "conversations.Message", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["campaign", "contact"], name="recipient_campaign_contact_unique")
        ]
        indexes = [models.Index(fields=["campaign", "status"], name="recipient_campaign_status_idx")]

    def __str__(self) -> str:
        return f"{self.campaign_id}:{self.contact_id}"
