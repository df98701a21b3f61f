from __future__ import annotations

import datetime as dt
from typing import Any, ClassVar, Protocol

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from conversations.consent import (
    DEFAULT_OPT_IN_REPLY,
    DEFAULT_OPT_OUT_REPLY,
    DEFAULT_START_WORDS,
    DEFAULT_STOP_WORDS,
)

# ---------------------------------------------------------------------------------------------------
# Who sees which conversation: THE rule. Every surface (inbox pages, API, CRM pages, search, exports,
# media, sockets' catch-up) reads conversations and messages through the `visible_to` querysets below,
# and loads one through conversations.selectors.get_visible_conversation (404 when not visible).
# Owners, admins and supervisors see every conversation; an agent sees those assigned to them, those of
# their teams, the shared queue (neither an assignee nor a team), and those they were @mentioned in
# (ConversationMention; the realtime groups below do not carry mentions). The realtime fan-out encodes the
# same rule as channel-layer groups (conversations.events.audience / InboxConsumer's groups); a property
# test holds the three forms (this Q, is_visible_to, the groups) equal.
# ---------------------------------------------------------------------------------------------------


class ViewerLike(Protocol):
    """What the rule needs of a viewer (conversations.selectors.Viewer)."""

    @property
    def sees_all(self) -> bool: ...

    @property
    def user_id(self) -> int | None: ...

    @property
    def team_ids(self) -> tuple[int, ...]: ...


def visibility_q(viewer: ViewerLike, prefix: str = "") -> Q:
    """The rule as a filter on Conversation, or on a model reaching it through `prefix` ("conversation__")."""
    if viewer.sees_all:
        return Q()
    shared_queue = Q(**{f"{prefix}assignee__isnull": True, f"{prefix}team__isnull": True})
    rule = shared_queue
    # A viewer without a user (an integration key below supervisor cannot exist, but never let a None id
    # turn into `assignee IS NULL`) gets no "assigned to me" clause.
    if viewer.user_id is not None:
        rule |= Q(**{f"{prefix}assignee_id": viewer.user_id})
    if viewer.team_ids:
        rule |= Q(**{f"{prefix}team_id__in": viewer.team_ids})
    if viewer.user_id is not None:
        # An agent @mentioned in a private note may open that conversation (ConversationMention).
        mentioned = ConversationMention.objects.filter(user_id=viewer.user_id).values("conversation_id")
        rule |= Q(**{f"{prefix}pk__in": mentioned})
    return rule


class ConversationQuerySet(models.QuerySet["Conversation"]):
    def visible_to(self, viewer: ViewerLike) -> ConversationQuerySet:
        return self.filter(visibility_q(viewer))


class ByConversationQuerySet(models.QuerySet[Any]):
    """Rows that belong to a conversation (messages, inbox events): visible exactly when it is."""

    def visible_to(self, viewer: ViewerLike) -> ByConversationQuerySet:
        return self.filter(visibility_q(viewer, prefix="conversation__"))


class Conversation(models.Model):
    class Status(models.TextChoices):
        OPEN = "open", "Open"
        PENDING = "pending", "Pending"
        SNOOZED = "snoozed", "Snoozed"
        RESOLVED = "resolved", "Resolved"

    contact = models.ForeignKey("crm.Contact", on_delete=models.CASCADE, related_name="conversations")
    channel = models.ForeignKey(
        "conversations.Channel",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="conversations",
    )
    # status and assignee lead the list's composite indexes below, which serve their lookups too.
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.OPEN, db_index=False)
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="assigned_conversations",
        db_index=False,
    )
    team = models.ForeignKey(
        "crm.Team", null=True, blank=True, on_delete=models.SET_NULL, related_name="conversations"
    )
    tags = models.ManyToManyField("crm.Tag", related_name="conversations", blank=True)
    snoozed_until = models.DateTimeField(null=True, blank=True)
    bot_active = models.BooleanField(default=True)
    unread_count = models.PositiveIntegerField(default=0)
    last_message_at = models.DateTimeField(null=True, blank=True)
    last_inbound_at = models.DateTimeField(null=True, blank=True)
    first_response_at = models.DateTimeField(null=True, blank=True)
    # Who sent the first human reply: reports credit the first response to them, not to whoever holds
    # the conversation later. No index: reports scan by creation time, and every inbound UPDATE pays
    # for each index of this table.
    first_response_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,
    )
    resolved_at = models.DateTimeField(null=True, blank=True)
    # SLA (conversations.sla): when the first human reply and the resolution are due, in real time
    # (computed in business hours), and whether each was missed (set once, by the breach sweep).
    first_response_due_at = models.DateTimeField(null=True, blank=True)
    resolution_due_at = models.DateTimeField(null=True, blank=True)
    first_response_breached = models.BooleanField(default=False)
    resolution_breached = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ConversationQuerySet.as_manager()

    class Meta:
        ordering = ["-last_message_at", "-id"]
        # The list reads its first page straight off an index in its exact order (last activity, then id,
        # both descending), so a page costs the same at 100 or 100,000 conversations; every index here is
        # also paid on each inbound message's UPDATE, hence no single-column ones beside them.
        indexes = [
            models.Index(fields=["-last_message_at", "-id"], name="conv_activity_idx"),
            models.Index(fields=["status", "-last_message_at", "-id"], name="conv_status_activity_idx"),
            models.Index(
                fields=["assignee", "status", "-last_message_at", "-id"], name="conv_assignee_activity_idx"
            ),
            # The unread badges count only conversations with unread messages, from the index alone (team:
            # an agent sees their teams' conversations).
            models.Index(
                fields=["status", "assignee", "team"], condition=Q(unread_count__gt=0), name="conv_unread_idx"
            ),
        ]

    def __str__(self) -> str:
        return f"Conversation {self.pk} with {self.contact}"

    def is_visible_to(self, viewer: ViewerLike) -> bool:
        """visibility_q() evaluated on this row as loaded (e.g. locked for update), without a query unless
        only a mention could let the viewer see it."""
        if viewer.sees_all:
            return True
        if self.assignee_id is None and self.team_id is None:
            return True
        if viewer.user_id is not None and self.assignee_id == viewer.user_id:
            return True
        if self.team_id is not None and self.team_id in viewer.team_ids:
            return True
        # The one clause that needs a query, asked only when nothing else lets the viewer see the row.
        return (
            viewer.user_id is not None
            and self.pk is not None
            and ConversationMention.objects.filter(conversation_id=self.pk, user_id=viewer.user_id).exists()
        )


class Message(models.Model):
    class Direction(models.TextChoices):
        INBOUND = "in", "Inbound"
        OUTBOUND = "out", "Outbound"

    class Type(models.TextChoices):
        TEXT = "text", "Text"
        IMAGE = "image", "Image"
        VIDEO = "video", "Video"
        AUDIO = "audio", "Audio"
        DOCUMENT = "document", "Document"
        STICKER = "sticker", "Sticker"
        LOCATION = "location", "Location"
        CONTACTS = "contacts", "Contacts"
        INTERACTIVE = "interactive", "Interactive"
        BUTTON = "button", "Button"
        REACTION = "reaction", "Reaction"
        ORDER = "order", "Order"
        TEMPLATE = "template", "Template"
        SYSTEM = "system", "System"
        NOTE = "note", "Private note"
        UNSUPPORTED = "unsupported", "Unsupported"

    class Status(models.TextChoices):
        # Outbound statuses only move forward by STATUS_RANK: read never goes back to delivered, and
        # failed beats queued/sent but not delivered/read/played (Meta never fails a delivered message).
        QUEUED = "queued", "Queued"
        SENT = "sent", "Sent"
        DELIVERED = "delivered", "Delivered"
        READ = "read", "Read"
        PLAYED = "played", "Played"
        FAILED = "failed", "Failed"
        RECEIVED = "received", "Received"
        # Withdrawn before it was sent (a campaign cancelled or its recipient skipped): never sent.
        CANCELLED = "cancelled", "Cancelled"

    class Origin(models.TextChoices):
        APP = "", "This app"
        BUSINESS_APP = "business_app", "Sent from the WhatsApp Business app"
        HISTORY = "history", "Imported from the WhatsApp Business app"

    STATUS_RANK: ClassVar[dict[str, int]] = {
        "queued": 0,
        "sent": 1,
        "failed": 2,
        "delivered": 3,
        "read": 4,
        "played": 5,
        "received": 0,
        "cancelled": 2,
    }

    # Served by msg_conv_time_idx, which leads with the conversation.
    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="messages", db_index=False
    )
    direction = models.CharField(max_length=3, choices=Direction.choices)
    type = models.CharField(max_length=20, choices=Type.choices, default=Type.TEXT)
    text = models.TextField(blank=True)
    payload = models.JSONField(default=dict, blank=True)
    preview = models.CharField(max_length=200, blank=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.QUEUED)
    # Unique by constraint rather than unique=True: the latter adds a second, LIKE-pattern index that
    # no query uses and every insert pays for.
    wamid = models.CharField(max_length=128, null=True, blank=True)
    reply_to = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="replies"
    )
    sender = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="sent_messages",
    )
    error_code = models.IntegerField(null=True, blank=True)
    error_title = models.CharField(max_length=300, blank=True)
    error_details = models.TextField(blank=True)
    timestamp = models.DateTimeField(
        db_index=True, help_text="Meta's timestamp for inbound, creation for outbound"
    )
    is_forwarded = models.BooleanField(default=False)
    # Current reactions on this message by side ("contact", "business") -> emoji.
    reactions = models.JSONField(default=dict, blank=True)
    # A client-chosen key: the same key never creates a second message (double clicks, resends).
    idempotency_key = models.CharField(max_length=100, null=True, blank=True)
    # Bulk traffic (campaigns) goes to its own queue and leaves headroom for agent replies.
    bulk = models.BooleanField(default=False)
    send_attempts = models.PositiveIntegerField(default=0)
    # Set while a send is in flight: a job that finds it set (worker killed mid-send) never resends.
    send_started_at = models.DateTimeField(null=True, blank=True)
    # When a queued message's next send attempt is due (backoff); the requeue sweeper relies on it.
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    read_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # Where an outbound message came from when not from this app: the WhatsApp Business app on the
    # number's phone (a coexistence number's echoes), or imported from its chat history (either direction).
    origin = models.CharField(max_length=20, choices=Origin.choices, blank=True, default="")
    # What Meta charges for it, from its status webhooks' `pricing` (per-message pricing, PMP): only a
    # billable message of type "regular" costs money; the market is the recipient's country (ISO 3166).
    pricing_model = models.CharField(max_length=20, blank=True)
    pricing_category = models.CharField(max_length=40, blank=True)
    pricing_type = models.CharField(max_length=40, blank=True)
    billable = models.BooleanField(null=True, blank=True)
    pricing_market = models.CharField(max_length=2, blank=True)

    objects = ByConversationQuerySet.as_manager()

    class Meta:
        ordering = ["timestamp", "id"]
        indexes = [
            models.Index(fields=["conversation", "timestamp", "id"], name="msg_conv_time_idx"),
            # The bulk sender claims a number's queued messages by this (whatsapp.delivery.deliver_bulk):
            # small, as messages are queued only until sent.
            models.Index(fields=["conversation", "id"], condition=Q(status="queued"), name="msg_queued_idx"),
        ]
        constraints = [
            models.UniqueConstraint(fields=["wamid"], name="msg_wamid_uniq"),
            models.UniqueConstraint(fields=["idempotency_key"], name="msg_idempotency_key_uniq"),
        ]

    def __str__(self) -> str:
        return f"{self.direction} {self.type} {self.pk}"


# ---------------------------------------------------------------------------------------------------
# Inbox models (the inbox's side) go below this line.
# ---------------------------------------------------------------------------------------------------


# --- Inbox models ---


class CannedResponse(models.Model):
    """A saved reply an agent inserts by typing `/` and its shortcut in the composer."""

    shortcut = models.SlugField(max_length=40, unique=True)
    title = models.CharField(max_length=100, blank=True)
    text = models.TextField(max_length=4096)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["shortcut"]

    def __str__(self) -> str:
        return f"/{self.shortcut}"


class AutoReplyRule(models.Model):
    """Keyword → reply, answered by the bot while it is on for a conversation."""

    class Match(models.TextChoices):
        CONTAINS = "contains", "Message contains the keyword"
        EXACT = "exact", "Message is exactly the keyword"

    keyword = models.CharField(max_length=100)
    match = models.CharField(max_length=10, choices=Match.choices, default=Match.CONTAINS)
    reply = models.TextField(max_length=4096)
    is_active = models.BooleanField(default=True)
    position = models.PositiveIntegerField(default=0, help_text="Lower positions are tried first")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["position", "id"]

    def __str__(self) -> str:
        return f"{self.keyword} → {self.reply[:40]}"


def _default_stop_words() -> str:
    return "\n".join(DEFAULT_STOP_WORDS)


def _default_start_words() -> str:
    return "\n".join(DEFAULT_START_WORDS)


def _default_opt_out_reply() -> str:
    return DEFAULT_OPT_OUT_REPLY


def _default_opt_in_reply() -> str:
    return DEFAULT_OPT_IN_REPLY


class BotSettings(models.Model):
    """The tenant's bot: one row per tenant schema (pk 1)."""

    welcome_enabled = models.BooleanField(default=False)
    welcome_text = models.TextField(max_length=4096, blank=True)
    away_enabled = models.BooleanField(default=False)
    away_text = models.TextField(max_length=4096, blank=True)
    time_zone = models.CharField(max_length=64, default="UTC", help_text="IANA name, e.g. Europe/Berlin")
    # Opt-out keywords (conversations.consent): a customer's whole message equal to one of these words,
    # ignoring case and accents, opts them out of marketing; one of the start words opts them back in.
    # One word or phrase per line. Defaults: conversations.consent.DEFAULT_STOP_WORDS / _START_WORDS.
    stop_words = models.TextField(blank=True, default=_default_stop_words)
    start_words = models.TextField(blank=True, default=_default_start_words)
    opt_out_reply = models.TextField(max_length=4096, blank=True, default=_default_opt_out_reply)
    opt_in_reply = models.TextField(max_length=4096, blank=True, default=_default_opt_in_reply)
    # An agent's reply to an unassigned conversation assigns it to them (they are now handling it).
    assign_on_reply = models.BooleanField(default=True)

    class Meta:
        verbose_name = "bot settings"
        verbose_name_plural = "bot settings"

    def __str__(self) -> str:
        return "Bot settings"


class BusinessHours(models.Model):
    """An opening interval on a weekday (0 = Monday) in BotSettings.time_zone; several per day allowed."""

    weekday = models.PositiveSmallIntegerField(
        choices=[
            (0, "Monday"),
            (1, "Tuesday"),
            (2, "Wednesday"),
            (3, "Thursday"),
            (4, "Friday"),
            (5, "Saturday"),
            (6, "Sunday"),
        ]
    )
    opens = models.TimeField()
    closes = models.TimeField()

    class Meta:
        ordering = ["weekday", "opens"]
        verbose_name_plural = "business hours"

    def __str__(self) -> str:
        return f"{self.get_weekday_display()} {self.opens:%H:%M}-{self.closes:%H:%M}"


class InboxEvent(models.Model):
    """Every realtime event, kept for a while so a reconnecting browser can catch up on what it missed.

    Written in the same transaction as the change it describes: an event is durable exactly when the
    change is.
    """

    conversation = models.ForeignKey(
        Conversation, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+"
    )
    payload = models.JSONField()
    created_at = models.DateTimeField(db_index=True)

    objects = ByConversationQuerySet.as_manager()

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"event {self.pk} {self.payload.get('type')}"


# ---------------------------------------------------------------------------------------------------
# Numbers and media files: what every channel has. A provider's own settings (the Cloud API's ids,
# encrypted token and app secret, template sync time) are columns the channel app alone reads and writes;
# conversations reaches the provider through conversations.channels.
# ---------------------------------------------------------------------------------------------------


# Meta's throughput for a number also used in the WhatsApp Business app (coexistence), messages per second.
COEXISTENCE_THROUGHPUT_CAP = 20


class Channel(models.Model):
    """A business number of this tenant, served by one provider (conversations.channels)."""

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        NEEDS_REAUTH = "needs_reauth", "Needs re-authorisation"
        DISABLED = "disabled", "Disabled"

    class Provider(models.TextChoices):
        CLOUD_API = "cloud_api", "WhatsApp Cloud API"
        WAHA = "waha", "WhatsApp Web gateway (WAHA)"

    provider = models.CharField(max_length=20, choices=Provider.choices, default=Provider.CLOUD_API)
    name = models.CharField(max_length=100, blank=True)
    display_phone = models.CharField(max_length=32, blank=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.ACTIVE)
    status_reason = models.CharField(max_length=300, blank=True)
    throughput_cap = models.PositiveIntegerField(default=80, help_text="Messages per second")
    created_at = models.DateTimeField(auto_now_add=True)
    # The Cloud API's settings, kept by whatsapp (whatsapp.services.channels writes them; the webhook
    # routes by the unique phone_number_id). On the row itself rather than a one-to-one table: the send
    # path, the webhook and template lookups read them with the number, and a join would cost every one.
    phone_number_id = models.CharField(max_length=64, unique=True)
    waba_id = models.CharField(max_length=64)
    access_token_encrypted = models.TextField(blank=True, editable=False)
    app_secret_encrypted = models.TextField(blank=True, editable=False)
    templates_synced_at = models.DateTimeField(null=True, blank=True)
    # The same number is also used in the WhatsApp Business app ("coexistence"): Meta caps its throughput
    # at COEXISTENCE_THROUGHPUT_CAP whatever throughput_cap says. Set when its first coexistence webhook
    # (an echo, history, app state sync) arrives, or in the admin.
    coexistence = models.BooleanField(default=False)

    class Meta:
        ordering = ["display_phone", "phone_number_id"]
        # What the people using it call it (the auto name was "whats app channel").
        verbose_name = "WhatsApp number"
        verbose_name_plural = "WhatsApp numbers"

    def __str__(self) -> str:
        return self.display_phone or self.phone_number_id

    @property
    def is_active(self) -> bool:
        return self.status == self.Status.ACTIVE

    @property
    def send_rate_cap(self) -> int:
        """Messages per second the limiter allows for this number."""
        if self.coexistence:
            return min(self.throughput_cap, COEXISTENCE_THROUGHPUT_CAP)
        return self.throughput_cap

    @property
    def unavailable_reason(self) -> str:
        """Why nothing can be sent from this number now, as shown to staff ("" when it is active)."""
        if self.is_active:
            return ""
        state = "needs re-authorisation" if self.status == self.Status.NEEDS_REAUTH else "is disabled"
        return f"The WhatsApp number {self} {state}" + (
            f": {self.status_reason}" if self.status_reason else "."
        )


# Dramatiq's retries of a download (8, backing off up to 10 minutes) end well within this.
MEDIA_DOWNLOAD_STALE_AFTER = dt.timedelta(hours=1)


class MediaFile(models.Model):
    """A media object: downloaded from the provider for inbound messages, uploaded to it for outbound ones."""

    class Direction(models.TextChoices):
        INBOUND = "in", "Inbound"
        OUTBOUND = "out", "Outbound"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        READY = "ready", "Ready"
        FAILED = "failed", "Failed"

    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="media")
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


# ---------------------------------------------------------------------------------------------------
# What messages cost: the owners' rate card (price per pricing category per market, one currency).
# ---------------------------------------------------------------------------------------------------


class RateCard(models.Model):
    """The rate card's currency (one row). Prices are what the owners pay Meta or their provider."""

    currency = models.CharField(max_length=3, default="USD", help_text="ISO 4217, e.g. EUR")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "rate card"

    def __str__(self) -> str:
        return f"Rate card ({self.currency})"


class MessageRate(models.Model):
    """The price of one billable message of a pricing category to a market (the recipient's country,
    ISO 3166 alpha-2); the market DEFAULT_MARKET prices every market without rates of its own."""

    DEFAULT_MARKET = "*"

    market = models.CharField(max_length=2)
    category = models.CharField(max_length=40)
    price = models.DecimalField(max_digits=12, decimal_places=6)

    class Meta:
        ordering = ["market", "category"]
        constraints = [models.UniqueConstraint(fields=["market", "category"], name="message_rate_unique")]

    def __str__(self) -> str:
        return f"{self.market} {self.category}: {self.price}"


# ---------------------------------------------------------------------------------------------------
# Team operations: auto-assignment (conversations.services.routing) and SLA policies (conversations.sla).
# ---------------------------------------------------------------------------------------------------


class RoutingSettings(models.Model):
    """How conversations entering the queue find an agent (one row per workspace)."""

    class Mode(models.TextChoices):
        MANUAL = "manual", "Manual"
        ROUND_ROBIN = "round_robin", "Round robin"
        LEAST_BUSY = "least_busy", "Least busy"

    mode = models.CharField(max_length=20, choices=Mode.choices, default=Mode.MANUAL)
    default_capacity = models.PositiveIntegerField(
        default=10, help_text="Most open conversations an agent holds, unless the agent has their own"
    )
    # Only this team's members receive conversations (None: every agent). A conversation that already
    # has a team goes to that team's members.
    team = models.ForeignKey("crm.Team", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    idle_minutes = models.PositiveIntegerField(
        default=30, help_text="Online agents with no activity this long go offline (0: never)"
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "routing settings"
        verbose_name_plural = "routing settings"

    def __str__(self) -> str:
        return f"Routing: {self.get_mode_display()}"

    @classmethod
    def load(cls) -> RoutingSettings:
        return cls.objects.get_or_create(pk=1)[0]


class SlaPolicy(models.Model):
    """First-response and resolution targets, in business seconds. The most specific policy applies:
    the number's, then the team's, then the default (neither)."""

    name = models.CharField(max_length=100)
    team = models.ForeignKey("crm.Team", null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    channel = models.ForeignKey(Channel, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    first_response_minutes = models.PositiveIntegerField(null=True, blank=True)
    resolution_minutes = models.PositiveIntegerField(null=True, blank=True)
    business_hours_only = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        verbose_name = "SLA policy"
        verbose_name_plural = "SLA policies"

    def __str__(self) -> str:
        return self.name


# --- Team operations: CSAT, @mentions in private notes, macros ---


def _default_csat_question() -> str:
    return "How would you rate the help you received? Tap below and choose 1 (poor) to 5 (excellent)."


class CsatSettings(models.Model):
    """The tenant's customer-satisfaction survey, sent when a conversation is resolved (one row, pk 1)."""

    enabled = models.BooleanField(default=False)
    question = models.TextField(max_length=1024, default=_default_csat_question)
    ask_comment = models.BooleanField(default=False)
    comment_prompt = models.TextField(
        max_length=1024, default="Thank you! Anything you would like to add? Just reply with a message."
    )
    comment_minutes = models.PositiveIntegerField(default=15)
    thanks_text = models.TextField(max_length=1024, default="Thank you for your feedback!")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "CSAT settings"
        verbose_name_plural = "CSAT settings"

    def __str__(self) -> str:
        return "CSAT settings"

    @classmethod
    def load(cls) -> CsatSettings:
        return cls.objects.get_or_create(pk=1)[0]


class CsatResponse(models.Model):
    """One survey per resolution of a conversation: asked (score empty) and then answered."""

    # Indexed by csat_one_per_resolution (conversation, resolution) (issue 20).
    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="csat_responses", db_index=False
    )
    # Which resolution asked: the conversation's resolved_at then (never twice for the same one).
    resolution = models.CharField(max_length=40)
    message = models.ForeignKey(Message, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    agent = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    team = models.ForeignKey("crm.Team", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    score = models.PositiveSmallIntegerField(null=True, blank=True)
    comment = models.TextField(blank=True)
    answered_at = models.DateTimeField(null=True, blank=True)
    comment_until = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["conversation", "resolution"], name="csat_one_per_resolution"),
        ]

    def __str__(self) -> str:
        return f"CSAT {self.score or '-'} for conversation {self.conversation_id}"


class ConversationMention(models.Model):
    """An agent @mentioned in a private note: notified, and may open the conversation (visibility_q)."""

    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="mentions")
    # Both indexed by a composite index they start (mention_once_per_note, mention_user_conv_idx).
    note = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="mentions", db_index=False)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    mentioned_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["user", "conversation"], name="mention_user_conv_idx")]
        constraints = [models.UniqueConstraint(fields=["note", "user"], name="mention_once_per_note")]

    def __str__(self) -> str:
        return f"@{self.user_id} in conversation {self.conversation_id}"


class Macro(models.Model):
    """A named sequence of actions run from the composer (conversations.macros.run_macro). `actions` is a
    list of {"type": "reply", "canned": id} | {"type": "tags", "tags": [names]} |
    {"type": "team", "team": id} | {"type": "status", "status": "open|pending|resolved"} |
    {"type": "snooze", "minutes": n}, run in order."""

    name = models.CharField(max_length=100, unique=True)
    actions = models.JSONField(default=list)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name
