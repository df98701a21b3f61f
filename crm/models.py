from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.contrib.postgres.indexes import GinIndex, OpClass
from django.contrib.postgres.search import SearchVector, SearchVectorField
from django.db import models
from django.db.models.functions import Lower, Upper
from django.utils import timezone


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
    # Auto-assignment (conversations.services.routing): at most this many open conversations (None: the
    # workspace's default), when they last got one (round robin) and last showed signs of life (idle).
    capacity = models.PositiveIntegerField(null=True, blank=True)
    last_assigned_at = models.DateTimeField(null=True, blank=True)
    last_seen_at = models.DateTimeField(null=True, blank=True)
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
    description = models.CharField(max_length=300, blank=True)
    members = models.ManyToManyField(Agent, related_name="teams", blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Invitation(models.Model):
    """An agent invited by email. The link reuses Django's password-reset tokens: it dies once used."""

    agent = models.OneToOneField(Agent, on_delete=models.CASCADE, related_name="invitation")
    invited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    sent_at = models.DateTimeField(default=timezone.now)
    accepted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-sent_at"]

    def __str__(self) -> str:
        return f"Invitation of {self.agent}"


class Tag(models.Model):
    name = models.CharField(max_length=50, unique=True)
    color = models.CharField(max_length=7, default="#6b7280")

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Company(models.Model):
    name = models.CharField(max_length=200)
    domain = models.CharField(max_length=253, blank=True, help_text="example.com")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "id"]
        verbose_name_plural = "companies"
        constraints = [
            models.UniqueConstraint(
                Lower("domain"), name="company_domain_unique", condition=~models.Q(domain="")
            )
        ]
        indexes = [GinIndex(OpClass(Upper("name"), name="gin_trgm_ops"), name="company_name_upper_trgm")]

    def __str__(self) -> str:
        return self.name


class AttributeDefinition(models.Model):
    """A tenant-defined contact field; values live in Contact.attributes under `key`."""

    class Type(models.TextChoices):
        TEXT = "text", "Text"
        NUMBER = "number", "Number"
        DATE = "date", "Date"
        BOOLEAN = "boolean", "Yes/no"
        CHOICE = "choice", "Choice"

    key = models.SlugField(max_length=50, unique=True)
    label = models.CharField(max_length=100)
    type = models.CharField(max_length=20, choices=Type.choices, default=Type.TEXT)
    choices = models.JSONField(default=list, blank=True, help_text="Allowed values for a choice attribute")
    required = models.BooleanField(default=False)
    position = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["position", "label"]

    def __str__(self) -> str:
        return self.label


class Contact(models.Model):
    class MarketingConsent(models.TextChoices):
        UNKNOWN = "unknown", "Unknown"
        OPTED_IN = "opted_in", "Opted in"
        OPTED_OUT = "opted_out", "Opted out"

    name = models.CharField(max_length=200, blank=True)
    # Empty for a WhatsApp user known only by a business-scoped user id (a username hides the number);
    # unique among the contacts that have one (contact_phone_unique).
    phone = models.CharField(max_length=20, blank=True, help_text="E.164")
    wa_id = models.CharField(max_length=32, blank=True, db_index=True)
    # The latest business-scoped user id (BSUID) seen: a copy of one of `identities`, kept here so lists,
    # search and the contact's label read it without a join. ContactIdentity is what identifies.
    whatsapp_user_id = models.CharField(max_length=140, blank=True, db_index=True)
    # The WhatsApp username, shown instead of the number in the app. Not an identity: a user changes
    # it, and a released username can go to someone else, so nothing is matched or merged by it.
    username = models.CharField(max_length=64, blank=True)
    email = models.EmailField(blank=True)
    company = models.ForeignKey(
        Company, null=True, blank=True, on_delete=models.SET_NULL, related_name="contacts"
    )
    tags = models.ManyToManyField(Tag, related_name="contacts", blank=True)
    attributes = models.JSONField(default=dict, blank=True)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="owned_contacts",
    )
    marketing_consent = models.CharField(
        max_length=20, choices=MarketingConsent.choices, default=MarketingConsent.UNKNOWN
    )
    marketing_consent_at = models.DateTimeField(null=True, blank=True)
    blocked = models.BooleanField(default=False)
    last_inbound_at = models.DateTimeField(null=True, blank=True)
    last_outbound_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    # Whole words of name and email for full-text search; fragments go through the trigram indexes.
    search_vector = models.GeneratedField(
        expression=SearchVector("name", "email", config="simple"),
        output_field=SearchVectorField(),
        db_persist=True,
    )

    class Meta:
        ordering = ["name", "id"]
        indexes = [
            models.Index(fields=["name", "id"], name="contact_name_id_idx"),
            # Django's icontains is UPPER(col) LIKE UPPER(%s): the trigram indexes are on the same expression.
            GinIndex(OpClass(Upper("name"), name="gin_trgm_ops"), name="contact_name_upper_trgm"),
            GinIndex(OpClass(Upper("email"), name="gin_trgm_ops"), name="contact_email_upper_trgm"),
            GinIndex(fields=["phone"], name="contact_phone_trgm", opclasses=["gin_trgm_ops"]),
            GinIndex(fields=["search_vector"], name="contact_search_fts"),
            GinIndex(OpClass(Upper("username"), name="gin_trgm_ops"), name="contact_username_upper_trgm"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["phone"], condition=~models.Q(phone=""), name="contact_phone_unique"
            )
        ]

    def __str__(self) -> str:
        return self.name or self.phone or self.handle

    @property
    def handle(self) -> str:
        """How WhatsApp shows a contact that has no name or number: @username, else a short BSUID label."""
        if self.username:
            return f"@{self.username}"
        if self.whatsapp_user_id:
            return f"WhatsApp user …{self.whatsapp_user_id[-6:]}"
        return f"Contact #{self.pk}" if self.pk else "New contact"


class ContactIdentity(models.Model):
    """A business-scoped WhatsApp user id (BSUID) a contact is known by.

    Meta gives each WhatsApp user one BSUID per business portfolio (a different value in every
    portfolio), and optionally a parent BSUID shared by the portfolios of one enterprise. A value is
    therefore one user's everywhere, and the database holds it unique per kind: two deliveries from the
    same new sender, however concurrent, end up on one contact. `scope` records the WhatsApp Business
    Account the id was seen on (an account belongs to exactly one portfolio): a send picks the BSUID of
    the sending number's account, since Meta accepts a BSUID only from numbers of its portfolio.
    """

    class Kind(models.TextChoices):
        BSUID = "bsuid", "Business-scoped user id"
        PARENT_BSUID = "parent_bsuid", "Parent business-scoped user id"
        # A WhatsApp-Web chat id without a phone number (WAHA: "<id>@lid", or a group's "<id>@g.us"):
        # where a WAHA number sends to this contact. Never a Cloud API recipient.
        WHATSAPP_WEB = "whatsapp_web", "WhatsApp Web chat id"

    # Indexed by contact_identity_contact_idx (contact, kind) (issue 20).
    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="identities", db_index=False)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    value = models.CharField(max_length=140)
    scope = models.CharField(max_length=64, blank=True, help_text="The WhatsApp Business Account id")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["contact", "kind", "-updated_at", "-id"]
        verbose_name = "contact identity"
        verbose_name_plural = "contact identities"
        constraints = [models.UniqueConstraint(fields=["kind", "value"], name="contact_identity_unique")]
        indexes = [models.Index(fields=["contact", "kind"], name="contact_identity_contact_idx")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.value}"


class Note(models.Model):
    # Indexed by note_contact_time_idx (contact, -created_at) (issue 20).
    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="notes", db_index=False)
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    body = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["contact", "-created_at"], name="note_contact_time_idx")]

    def __str__(self) -> str:
        return self.body[:60]


class Pipeline(models.Model):
    name = models.CharField(max_length=100, unique=True)
    position = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["position", "name"]

    def __str__(self) -> str:
        return self.name


class StageManager(models.Manager["Stage"]):
    # A stage's name alone is ambiguous across pipelines; every choice list shows "Pipeline · Stage".
    def get_queryset(self) -> models.QuerySet[Stage]:
        return super().get_queryset().select_related("pipeline")


class Stage(models.Model):
    class Kind(models.TextChoices):
        OPEN = "open", "Open"
        WON = "won", "Won"
        LOST = "lost", "Lost"

    # Indexed by stage_name_unique_in_pipeline (pipeline, name) (issue 20).
    pipeline = models.ForeignKey(Pipeline, on_delete=models.CASCADE, related_name="stages", db_index=False)
    name = models.CharField(max_length=100)
    position = models.PositiveIntegerField(default=0)
    probability = models.PositiveSmallIntegerField(default=0, help_text="Percent, 0 to 100")
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.OPEN)

    objects = StageManager()

    class Meta:
        ordering = ["pipeline", "position", "id"]
        constraints = [
            models.UniqueConstraint(fields=["pipeline", "name"], name="stage_name_unique_in_pipeline"),
            models.CheckConstraint(condition=models.Q(probability__lte=100), name="stage_probability_max"),
        ]

    def __str__(self) -> str:
        return f"{self.pipeline.name} · {self.name}"


class Deal(models.Model):
    class Status(models.TextChoices):
        OPEN = "open", "Open"
        WON = "won", "Won"
        LOST = "lost", "Lost"

    title = models.CharField(max_length=200)
    contact = models.ForeignKey(
        Contact, null=True, blank=True, on_delete=models.SET_NULL, related_name="deals"
    )
    company = models.ForeignKey(
        Company, null=True, blank=True, on_delete=models.SET_NULL, related_name="deals"
    )
    value = models.DecimalField(max_digits=14, decimal_places=2, default=0)
    currency = models.CharField(max_length=3, default="USD")
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="owned_deals"
    )
    # Indexed by deal_board_idx (pipeline, stage) (issue 20).
    pipeline = models.ForeignKey(Pipeline, on_delete=models.PROTECT, related_name="deals", db_index=False)
    stage = models.ForeignKey(Stage, on_delete=models.PROTECT, related_name="deals")
    expected_close_date = models.DateField(null=True, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN, db_index=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["pipeline", "stage"], name="deal_board_idx")]

    def __str__(self) -> str:
        return self.title


class DealStageChange(models.Model):
    deal = models.ForeignKey(Deal, on_delete=models.CASCADE, related_name="stage_history")
    from_stage = models.ForeignKey(Stage, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    to_stage = models.ForeignKey(Stage, null=True, on_delete=models.SET_NULL, related_name="+")
    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    changed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-changed_at", "-id"]

    def __str__(self) -> str:
        return f"{self.deal} → {self.to_stage}"


class Task(models.Model):
    title = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    due_at = models.DateTimeField(null=True, blank=True)
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="crm_tasks"
    )
    contact = models.ForeignKey(
        Contact, null=True, blank=True, on_delete=models.CASCADE, related_name="tasks"
    )
    deal = models.ForeignKey(Deal, null=True, blank=True, on_delete=models.CASCADE, related_name="tasks")
    done = models.BooleanField(default=False)
    done_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["done", "due_at", "id"]
        indexes = [models.Index(fields=["done", "due_at"], name="task_due_idx")]

    def __str__(self) -> str:
        return self.title

    @property
    def is_overdue(self) -> bool:
        return not self.done and self.due_at is not None and self.due_at < timezone.now()


class ApiKey(models.Model):
    """An API key: only a SHA-256 of it is stored; the prefix is what people see and how it is found.

    Keys are random and long, so a fast hash is enough (no dictionary to guess from).

    A key has an identity, one of two kinds:
    - personal: belongs to `user` and acts exactly as that user, with the user's role and teams as they
      are at each request (a key of a deactivated user is refused; a role change applies at once). It has
      no role of its own (`role` is empty).
    - integration: tenant-wide, acts as no person (audit fields record no user), with its own `role`,
      supervisor or above: below that the visibility rule (an agent sees their own, their teams' and the
      shared queue) has no person to apply to.
    The check constraint holds every row to one of these shapes.
    """

    class Kind(models.TextChoices):
        PERSONAL = "personal", "Personal (acts as its user)"
        INTEGRATION = "integration", "Integration (tenant-wide)"

    INTEGRATION_ROLES = (Agent.Role.SUPERVISOR, Agent.Role.ADMIN, Agent.Role.OWNER)

    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, unique=True)
    hashed_key = models.CharField(max_length=64)
    kind = models.CharField(max_length=12, choices=Kind.choices)
    # A personal key dies with its user.
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="api_keys"
    )
    role = models.CharField(
        max_length=20,
        choices=Agent.Role.choices,
        blank=True,
        default="",
        help_text="Integration keys only; a personal key has its user's role",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    rotated_from = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="rotations"
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "API key"
        constraints = [
            models.CheckConstraint(
                condition=(
                    # Equalities, not IN: tenants.cloning copies the constraint through its text, and
                    # PostgreSQL prints an IN list in a form that reads back differently.
                    (
                        models.Q(kind="integration", user__isnull=True)
                        & (models.Q(role="supervisor") | models.Q(role="admin") | models.Q(role="owner"))
                    )
                    # A personal key without a user is only a revoked one (see migration 0005).
                    | (
                        models.Q(kind="personal", role="")
                        & (models.Q(user__isnull=False) | models.Q(revoked_at__isnull=False))
                    )
                ),
                name="apikey_identity",
            )
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_personal(self) -> bool:
        return self.kind == self.Kind.PERSONAL

    def is_usable(self, at: datetime | None = None) -> bool:
        now = at or timezone.now()
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)


class ContactImport(models.Model):
    """A CSV import run by a job; progress and per-row rejections are visible while it runs."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    filename = models.CharField(max_length=200, blank=True)
    content = models.TextField(help_text="The uploaded CSV, kept in the tenant's schema")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    total_rows = models.PositiveIntegerField(default=0)
    processed_rows = models.PositiveIntegerField(default=0)
    created_count = models.PositiveIntegerField(default=0)
    updated_count = models.PositiveIntegerField(default=0)
    rejected_count = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"Import {self.pk} ({self.status})"

    @property
    def percent(self) -> int:
        if not self.total_rows:
            return 100 if self.status == self.Status.DONE else 0
        return min(100, round(100 * self.processed_rows / self.total_rows))


class ImportRejection(models.Model):
    contact_import = models.ForeignKey(ContactImport, on_delete=models.CASCADE, related_name="rejections")
    row_number = models.PositiveIntegerField()
    reason = models.CharField(max_length=300)
    data = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["row_number"]

    def __str__(self) -> str:
        return f"row {self.row_number}: {self.reason}"


class Notification(models.Model):
    """Something a user should know about (an assignment, a mention, an SLA breach, a number to
    re-authorise), written by crm.services.notifications.notify(). One row per recipient; a row is its
    recipient's alone (every read and write filters by user)."""

    class Kind(models.TextChoices):
        ASSIGNMENT = "assignment", "Assigned to you"
        MENTION = "mention", "Mentioned you"
        SLA_BREACH = "sla_breach", "SLA breach"
        NUMBER_REAUTH = "number_reauth", "Number needs re-authorisation"

    # Indexed by crm_notif_user_read (user, read_at) (issue 20).
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications", db_index=False
    )
    kind = models.CharField(max_length=30, choices=Kind.choices)
    title = models.CharField(max_length=200)
    body = models.TextField(blank=True, default="")
    url = models.CharField(max_length=500, blank=True, default="")
    # An id, not a foreign key: conversations sit above crm and their rows may be deleted.
    conversation_id = models.BigIntegerField(null=True, blank=True)
    read_at = models.DateTimeField(null=True, blank=True)
    # Set when an e-mail covered this row (its own or the digest): the digest sends each row once.
    emailed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["user", "read_at"], name="crm_notif_user_read")]

    def __str__(self) -> str:
        return f"{self.kind}: {self.title}"


class NotificationPreference(models.Model):
    """A user's choice to receive one kind of notification by e-mail (in-app is always on). No row means
    the default for that kind (crm.services.notifications.EMAIL_DEFAULTS)."""

    # Indexed by crm_notifpref_user_kind (user, kind) (issue 20).
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="notification_preferences",
        db_index=False,
    )
    # A Notification.Kind, or "digest" (the summary of unread assignments).
    kind = models.CharField(max_length=30)
    email = models.BooleanField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "kind"], name="crm_notifpref_user_kind")]

    def __str__(self) -> str:
        return f"{self.user_id} {self.kind}: {'on' if self.email else 'off'}"


class TwoFactor(models.Model):
    """A user's TOTP second factor (crm.services.two_factor). Until `confirmed_at` it is an enrolment in
    progress and asks nothing at sign-in."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="two_factor")
    secret_encrypted = models.TextField()
    confirmed_at = models.DateTimeField(null=True, blank=True)
    # The time step of the last code accepted: a code seen once is not accepted again (replay).
    last_used_step = models.BigIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"Second factor of {self.user_id}"


class RecoveryCode(models.Model):
    """One single-use recovery code, stored as its SHA-256 (the codes are random, 50 bits each)."""

    two_factor = models.ForeignKey(TwoFactor, on_delete=models.CASCADE, related_name="recovery_codes")
    code_hash = models.CharField(max_length=64)
    used_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"Recovery code {self.pk}"


class SecuritySettings(models.Model):
    """The workspace's sign-in policy (one row)."""

    require_two_factor_for_admins = models.BooleanField(default=False)

    def __str__(self) -> str:
        return "Security settings"
