from __future__ import annotations

from django.db import models
from django_tenants.models import DomainMixin, TenantMixin


class Tenant(TenantMixin):
    """A business. Its slug is its schema name and its subdomain."""

    class Plan(models.TextChoices):
        FREE = "free", "Free"
        STARTER = "starter", "Starter"
        BUSINESS = "business", "Business"
        ENTERPRISE = "enterprise", "Enterprise"

    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=40, unique=True)
    plan = models.CharField(max_length=20, choices=Plan.choices, default=Plan.FREE)
    settings = models.JSONField(default=dict, blank=True)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # Deletion is a suspension with a date (tenants.lifecycle): the schema is dropped when `purge_after`
    # has passed, and until then the tenant can be restored. Both empty: not being deleted.
    deletion_requested_at = models.DateTimeField(null=True, blank=True, editable=False)
    purge_after = models.DateTimeField(null=True, blank=True, editable=False)

    auto_create_schema = True
    # Never drop a schema as a side effect of deleting a row: tenants.lifecycle drops it, after a grace
    # period and an export, or when the platform operator forces it.
    auto_drop_schema = False

    def create_schema(
        self, check_if_exists: bool = False, sync_schema: bool = True, verbosity: int = 1
    ) -> bool:
        """Claim a spare clone of the migrated template schema, or copy the template (tenants.cloning)
        instead of django-tenants' slow clone; a claimed spare is replaced after commit."""
        from django.conf import settings
        from django.db import transaction
        from django_tenants.utils import schema_exists

        from tenants.cloning import claim_spare, clone_template_schema
        from tenants.db import connection

        if check_if_exists and schema_exists(self.schema_name):
            return False
        template = settings.TENANT_BASE_SCHEMA
        if not claim_spare(template=template, schema=self.schema_name):
            clone_template_schema(template=template, schema=self.schema_name)
        if settings.TENANT_SPARE_SCHEMAS:
            from tenants.actors import refill_spare_schemas

            transaction.on_commit(refill_spare_schemas.send)
        connection.set_schema_to_public()
        return True

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.slug})"


class Domain(DomainMixin):
    class Meta:
        ordering = ["domain"]


class NumberRoute(models.Model):
    """Which tenant a WhatsApp phone_number_id belongs to. Unique: one number, one tenant."""

    phone_number_id = models.CharField(max_length=64, unique=True)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="number_routes")
    # The WhatsApp Business Account the Graph API confirmed the number belongs to: account-level
    # webhooks (template status, quality) carry only this id (entry.id) and are routed by it.
    waba_id = models.CharField(max_length=64, blank=True, db_index=True, editable=False)
    # When the Graph API confirmed, with the tenant's token, that the number is in that account. Unset
    # for routes made before the check existed: such a number may not get an app-secret override.
    verified_at = models.DateTimeField(null=True, blank=True, editable=False)
    # The number's app-secret override (Fernet, see whatsapp.crypto), readable without the tenant schema
    # because signatures are checked at the public webhook. It verifies this number's entries only.
    app_secret_encrypted = models.TextField(blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["phone_number_id"]

    def __str__(self) -> str:
        return f"{self.phone_number_id} → {self.tenant.slug}"


class WahaRoute(models.Model):
    """Which tenant a WAHA number's webhook URL (/webhooks/waha/<webhook_id>/) belongs to, and the key
    its HMAC signature is checked with (Fernet, see core.crypto) before anything is parsed or stored."""

    webhook_id = models.CharField(max_length=64, unique=True)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="waha_routes")
    hmac_key_encrypted = models.TextField(editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["webhook_id"]

    def __str__(self) -> str:
        return f"WAHA {self.webhook_id} → {self.tenant.slug}"


class WebhookEvent(models.Model):
    """A raw webhook body, stored before we acknowledge Meta, processed by a job (and the sweeper)."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        PROCESSED = "processed", "Processed"
        UNROUTED = "unrouted", "Unknown number"
        FAILED = "failed", "Failed"

    received_at = models.DateTimeField(auto_now_add=True, db_index=True)
    body = models.BinaryField()
    # What the signature check accepted: the numbers whose own secret verified the body, and the
    # accounts (entry.id) of account-level changes verified with the platform's secret. Processing
    # handles those changes only; any other change in the body is ignored.
    phone_number_ids = models.JSONField(default=list, blank=True)
    waba_ids = models.JSONField(default=list, blank=True)
    tenant = models.ForeignKey(Tenant, null=True, blank=True, on_delete=models.SET_NULL)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    processed_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-received_at"]
        indexes = [
            models.Index(
                fields=["received_at"], name="webhook_pending_idx", condition=models.Q(status="pending")
            )
        ]

    def __str__(self) -> str:
        return f"webhook event {self.pk} ({self.status})"
