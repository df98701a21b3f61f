"""Public-schema rows: signups waiting for their e-mail (and the operator), one-time sign-in links to a
new workspace, and each workspace's first-run checklist state."""

from __future__ import annotations

from django.db import models
from django.db.models.functions import Lower

from tenants.models import Tenant


class Signup(models.Model):
    """A self-service signup. Nothing exists in a tenant schema until the e-mail is verified (and, in
    approval mode, an operator approves): unverified signups cost one row and squat on no subdomain."""

    class Status(models.TextChoices):
        PENDING = "pending", "Waiting for e-mail verification"
        AWAITING_APPROVAL = "awaiting_approval", "Verified, waiting for approval"
        COMPLETED = "completed", "Workspace created"
        REJECTED = "rejected", "Rejected"

    business_name = models.CharField(max_length=200)
    slug = models.CharField("subdomain", max_length=40)
    owner_name = models.CharField(max_length=150)
    email = models.EmailField()
    # Hashed like a user's password; copied onto the owner when the workspace is created.
    password_hash = models.CharField(max_length=256, editable=False)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING, db_index=True)
    # Rotated on every (re)send: only the latest e-mailed link verifies.
    nonce = models.CharField(max_length=32, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    verified_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    tenant = models.ForeignKey(Tenant, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            # One unverified signup per e-mail: a second submission replaces the first.
            models.UniqueConstraint(
                Lower("email"), condition=models.Q(status="pending"), name="onboarding_one_pending_per_email"
            )
        ]

    def __str__(self) -> str:
        return f"{self.business_name} ({self.slug}) by {self.email}"


class LoginToken(models.Model):
    """A one-time sign-in to a new workspace, handed from the public host to the tenant's host (sessions
    are per host and per tenant schema, never shared). Only the token's SHA-256 is stored."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    user_id = models.BigIntegerField()
    token_hash = models.CharField(max_length=64, unique=True)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"Sign-in link to {self.tenant_id} (user {self.user_id})"


class ChecklistState(models.Model):
    """A workspace's first-run checklist: dismissed once, for everyone in it."""

    tenant = models.OneToOneField(Tenant, on_delete=models.CASCADE, related_name="+")
    dismissed_at = models.DateTimeField(null=True, blank=True)
    dismissed_by_email = models.EmailField(blank=True)

    def __str__(self) -> str:
        return f"Checklist of tenant {self.tenant_id}"
