from __future__ import annotations

from django.db import models


class WahaSession(models.Model):
    """A number linked through a self-hosted WAHA (WhatsApp HTTP API) gateway: a WhatsApp-Web session
    rather than Meta's Cloud API. Its Channel has provider "waha" and phone_number_id "waha:<webhook_id>"
    (unique like a Cloud API id; the Channel's waba_id is empty: a WAHA number has no account, no
    templates and no 24-hour window). The public route (tenants.WahaRoute) maps webhook_id to the tenant
    and holds the webhook's HMAC key, since signatures are checked before the tenant schema is known."""

    class Status(models.TextChoices):
        # WAHA's own session statuses (session.status events, GET /api/sessions/{name}).
        STARTING = "STARTING", "Starting"
        SCAN_QR_CODE = "SCAN_QR_CODE", "Waiting for the QR code to be scanned"
        WORKING = "WORKING", "Working"
        FAILED = "FAILED", "Failed"
        STOPPED = "STOPPED", "Stopped"

    channel = models.OneToOneField("conversations.Channel", on_delete=models.CASCADE, related_name="waha")
    # The gateway: blank server_url / api key mean the platform-wide WAHA_URL / WAHA_API_KEY settings.
    server_url = models.URLField(max_length=300, blank=True)
    api_key_encrypted = models.TextField(blank=True, editable=False)
    # WAHA's session name ("default" on WAHA Core); names repeat across tenants, so webhooks are routed
    # by webhook_id, never by the session name.
    session = models.CharField(max_length=100)
    webhook_id = models.CharField(max_length=64, unique=True, editable=False)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.STOPPED)
    status_changed_at = models.DateTimeField(null=True, blank=True)
    # When WAHA's clock says the recorded status held (a session.status event's timestamp, or the Date of
    # the answer it came in): an event older than this is not applied (see waha.sessions.record_status).
    status_at_waha = models.DateTimeField(null=True, blank=True)
    # The linked WhatsApp account (payload "me": "<digits>@c.us" and its display name), once WORKING.
    me_id = models.CharField(max_length=100, blank=True)
    me_name = models.CharField(max_length=200, blank=True)
    # Reconnection with backoff: attempts since the session last worked, when the next one is due, and
    # "needs attention" once the attempts are used up (staff are notified once).
    reconnect_attempts = models.PositiveIntegerField(default=0)
    next_reconnect_at = models.DateTimeField(null=True, blank=True)
    needs_attention = models.BooleanField(default=False)
    last_error = models.CharField(max_length=300, blank=True)
    # The last message in or out: the scheduler stops sessions idle for longer than the expiry.
    last_activity_at = models.DateTimeField(null=True, blank=True)
    groups_enabled = models.BooleanField(default=False, help_text="Receive messages from group chats")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "WAHA session"

    def __str__(self) -> str:
        return f"WAHA session {self.session} ({self.status})"


class WahaEvent(models.Model):
    """A raw WAHA webhook body, stored in its tenant's schema before WAHA hears 200 (the public route named
    the tenant, and the number's own key verified the signature), then processed by a job; the sweeper
    takes what Redis or the workers left pending. Kept in the tenant's schema rather than beside the
    Cloud API's public WebhookEvent: the tenant is known before the body is read, so the customers'
    messages never leave the tenant's schema (export, deletion and schema-based sharding include them)."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        PROCESSED = "processed", "Processed"
        IGNORED = "ignored", "Ignored"  # nothing to do (a group, status@broadcast, an unknown event)
        FAILED = "failed", "Failed"

    received_at = models.DateTimeField(auto_now_add=True, db_index=True)
    webhook_id = models.CharField(max_length=64)
    # WAHA's X-Webhook-Request-Id and the envelope's event name, for inspection.
    request_id = models.CharField(max_length=100, blank=True)
    event = models.CharField(max_length=40, blank=True)
    body = models.BinaryField()
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    # A deferred event (its message is not stored yet: an ack or an echo that overtook it) waits until then.
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    processed_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        verbose_name = "WAHA webhook event"
        ordering = ["-received_at"]
        indexes = [
            models.Index(
                fields=["received_at"], name="waha_event_pending_idx", condition=models.Q(status="pending")
            )
        ]

    def __str__(self) -> str:
        return f"WAHA event {self.pk} {self.event} ({self.status})"
