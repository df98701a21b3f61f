from __future__ import annotations

from django.conf import settings
from django.db import models


class Agent(models.Model):
    """A tenant user's role and availability. Users live in the tenant's schema, so agents do too."""

    class Role(models.TextChoices):
        OWNER = "owner", "Owner"
        ADMIN = "admin", "Admin"
        SUPERVISOR = "supervisor", "Supervisor"
        AGENT = "agent", "Agent"

    class Availability(models.TextChoices):
        ONLINE = "online", "Online"
        BUSY = "busy", "Busy"
        OFFLINE = "offline", "Offline"

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="agent")
    role = models.CharField(max_length=20, choices=Role.choices, default=Role.AGENT)
    availability = models.CharField(max_length=20, choices=Availability.choices, default=Availability.OFFLINE)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["user__first_name", "user__email"]

    def __str__(self) -> str:
        return self.user.get_full_name() or self.user.email

    @property
    def is_admin(self) -> bool:
        return self.role in (self.Role.OWNER, self.Role.ADMIN)


class Team(models.Model):
    name = models.CharField(max_length=100, unique=True)
    members = models.ManyToManyField(Agent, related_name="teams", blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Tag(models.Model):
    name = models.CharField(max_length=50, unique=True)
    color = models.CharField(max_length=7, default="#6b7280")

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Contact(models.Model):
    name = models.CharField(max_length=200, blank=True)
    phone = models.CharField(max_length=20, unique=True, help_text="E.164")
    wa_id = models.CharField(max_length=32, blank=True, db_index=True)
    # WhatsApp's business-scoped user id, when Meta sends one.
    whatsapp_user_id = models.CharField(max_length=64, blank=True, db_index=True)
    email = models.EmailField(blank=True)
    tags = models.ManyToManyField(Tag, related_name="contacts", blank=True)
    last_inbound_at = models.DateTimeField(null=True, blank=True)
    last_outbound_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return self.name or self.phone
