"""Reads for the inbox: who sees what, the conversation list, a thread, catch-up events, reports."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from django.contrib.auth import get_user_model
from django.contrib.postgres.aggregates import ArrayAgg
from django.db.models import (
    Aggregate,
    Count,
    DurationField,
    Exists,
    ExpressionWrapper,
    F,
    OuterRef,
    Prefetch,
    Q,
    QuerySet,
    Subquery,
)
from django.db.models.functions import JSONObject, Left, TruncDate
from django.http import Http404

from conversations import channels, rules
from conversations.models import (
    BotSettings,
    ByConversationQuerySet,
    CannedResponse,
    Channel,
    Conversation,
    ConversationQuerySet,
    InboxEvent,
    MediaFile,
    Message,
)
from crm import selectors as crm_selectors
from crm.models import Agent, AttributeDefinition, Contact, Deal, Note, Tag, Team
from crm.permissions import integration_key

PAGE_SIZE = 30
THREAD_PAGE_SIZE = 50
SUPERVISING_ROLES = frozenset({Agent.Role.OWNER, Agent.Role.ADMIN, Agent.Role.SUPERVISOR})


# ---------------------------------------------------------------------------------------------------
# Who sees what
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Viewer:
    """Who is looking, as the visibility rule (conversations.models.visibility_q) sees them: one query to
    build (viewer_for), passed to every selector.

    Owners, admins and supervisors see every conversation. An agent sees conversations assigned to them,
    those of their teams, and those with neither an assignee nor a team (the shared queue).

    `user` is None only for an integration API key, which acts as no person and always has a role of
    supervisor or above (crm.models.ApiKey); `key_name` names that key in audit fields.
    """

    user: Any
    role: str
    team_ids: tuple[int, ...] = field(default=())
    key_name: str = ""
    # The workspace itself acting (auto-assignment): named by key_name in the thread's system lines.
    system: bool = False

    @property
    def user_id(self) -> int | None:
        return getattr(self.user, "pk", None)

    @property
    def sees_all(self) -> bool:
        return self.role in SUPERVISING_ROLES

    @property
    def can_supervise(self) -> bool:
        return self.sees_all


def viewer_for(user: Any) -> Viewer:
    row = (
        Agent.objects.filter(user_id=user.pk)
        .annotate(team_ids=ArrayAgg("teams__id", filter=Q(teams__isnull=False), default=[]))
        .values("role", "availability", "team_ids")
        .first()
    )
    crm_selectors.remember_agent(user, *((row["role"], row["availability"]) if row else (None, None)))
    if row is None:
        # A tenant user without an Agent row gets the narrowest view.
        return Viewer(user=user, role=Agent.Role.AGENT)
    return Viewer(user=user, role=row["role"], team_ids=tuple(sorted(row["team_ids"] or ())))


def viewers_for(users: list[Any]) -> dict[int, Viewer]:
    """viewer_for for many users in one query: {user pk: viewer}."""
    rows = (
        Agent.objects.filter(user_id__in=[user.pk for user in users])
        .annotate(team_ids=ArrayAgg("teams__id", filter=Q(teams__isnull=False), default=[]))
        .values("user_id", "role", "team_ids")
    )
    found = {row["user_id"]: row for row in rows}
    out = {}
    for user in users:
        row = found.get(user.pk)
        if row is None:
            out[user.pk] = Viewer(user=user, role=Agent.Role.AGENT)
        else:
            out[user.pk] = Viewer(user=user, role=row["role"], team_ids=tuple(sorted(row["team_ids"] or ())))
    return out


def integration_viewer(*, role: str, key_name: str) -> Viewer:
    """An integration API key: tenant-wide, no person behind it."""
    return Viewer(user=None, role=role, key_name=key_name)


def viewer_for_request(request: Any) -> Viewer:
    """The API's viewer: an integration key's role (supervisor or above: it sees everything), else the
    person behind the request (signed in, or through their personal key), with their role and teams now.
    Built once per request."""
    cached = getattr(request, "_conversation_viewer", None)
    if cached is not None:
        return cached
    key = integration_key(request)
    if key is not None:
        viewer = integration_viewer(role=key.role, key_name=key.name)
    else:
        viewer = viewer_for(request.user)
    request._conversation_viewer = viewer
    return viewer


# The rule itself lives beside the models (Conversation.objects.visible_to, Message.objects.visible_to);
# these names stay for the code that already uses them.


def can_see(viewer: Viewer, conversation: Conversation) -> bool:
    return conversation.is_visible_to(viewer)


def visible_conversations(viewer: Viewer) -> QuerySet[Conversation]:
    return Conversation.objects.visible_to(viewer)


def visible_messages(viewer: Viewer) -> QuerySet[Message]:
    """Messages are visible exactly when their conversation is."""
    return Message.objects.visible_to(viewer)


def _row_key(pk: Any) -> int | None:
    """A primary key from a URL or a body, or None when it cannot be one (not a whole number, or out of
    bigint's range: the database would fail on it rather than find nothing)."""
    try:
        key = int(pk)
    except (TypeError, ValueError, OverflowError):
        return None
    return key if 0 < key < 2**63 else None


def get_visible_conversation(
    viewer: Viewer, pk: Any, *, queryset: ConversationQuerySet | None = None
) -> Conversation:
    """The one way to load a conversation for someone: the row, or Http404 when it does not exist or the
    viewer may not see it (never 403: a refusal must not tell that it exists).

    `queryset` adds joins or annotations (select_related, prefetch...); visibility is applied on top of
    it, so no caller can forget it."""
    base = Conversation.objects.all() if queryset is None else queryset
    key = _row_key(pk)
    if key is None:
        raise Http404("No such conversation.")
    # No ORDER BY for one row by its key: first() would add the model's ordering, and Django's compiler
    # pays for it per selected column (about 90 with the inbox's joins).
    row = next(iter(base.visible_to(viewer).filter(pk=key).order_by()[:1]), None)
    if row is None:
        raise Http404("No such conversation.")
    return row


def get_visible_message(
    viewer: Viewer, pk: Any, *, queryset: ByConversationQuerySet | None = None
) -> Message:
    """A message, or Http404 unless the viewer sees its conversation."""
    base = Message.objects.all() if queryset is None else queryset
    key = _row_key(pk)
    if key is None:
        raise Http404("No such message.")
    row = next(iter(base.visible_to(viewer).filter(pk=key).order_by()[:1]), None)
    if row is None:
        raise Http404("No such message.")
    return row


def get_visible_media(viewer: Viewer, pk: Any) -> MediaFile:
    """A message's media file, or Http404 unless the viewer sees that message (so its conversation): a
    hidden file is answered as a missing one. A file that belongs to no message (an upload not sent
    yet) is nobody's to open this way. Its `message` comes with its conversation."""
    key = _row_key(pk)
    media = MediaFile.objects.filter(pk=key, message__isnull=False).first() if key is not None else None
    if media is None:
        raise Http404("No such file.")
    media.message = get_visible_message(
        viewer, media.message_id, queryset=Message.objects.select_related("conversation")
    )
    return media


# ---------------------------------------------------------------------------------------------------
# The conversation list
# ---------------------------------------------------------------------------------------------------

TABS = ("mine", "unassigned", "all")
STATUS_FILTERS = ("open", "pending", "snoozed", "resolved", "any")


@dataclass(frozen=True)
class ListFilters:
    tab: str = "mine"
    status: str = "open"
    team: int | None = None
    tag: int | None = None
    channel: int | None = None
    q: str = ""

    @classmethod
    def from_query(cls, params: Any) -> ListFilters:
        def as_int(name: str) -> int | None:
            value = params.get(name) or ""
            # isdigit() alone says yes to "²" and "٣", which int() refuses or reads as another number.
            return int(value) if value.isascii() and value.isdigit() and len(value) < 19 else None

        tab = params.get("tab") or "mine"
        status = params.get("status") or "open"
        return cls(
            tab=tab if tab in TABS else "mine",
            status=status if status in STATUS_FILTERS else "open",
            team=as_int("team"),
            tag=as_int("tag"),
            channel=as_int("channel"),
            q=(params.get("q") or "").strip()[:100],
        )

    def as_query(self) -> dict[str, str]:
        out = {"tab": self.tab, "status": self.status}
        for name in ("team", "tag", "channel"):
            if getattr(self, name) is not None:
                out[name] = str(getattr(self, name))
        if self.q:
            out["q"] = self.q
        return out


def _last_message() -> Subquery:
    """The newest message's preview and delivery state in one correlated lookup (index on conversation,
    timestamp), so the list costs one query however long it grows."""
    newest = (
        Message.objects.filter(conversation=OuterRef("pk"))
        .order_by("-timestamp", "-id")
        .values(
            j=JSONObject(
                preview=F("preview"),
                text=Left("text", 120),
                type=F("type"),
                status=F("status"),
                direction=F("direction"),
            )
        )[:1]
    )
    return Subquery(newest)


def _filtered(viewer: Viewer, filters: ListFilters) -> QuerySet[Conversation]:
    qs = visible_conversations(viewer)
    if filters.tab == "mine":
        qs = qs.filter(assignee_id=viewer.user.pk)
    elif filters.tab == "unassigned":
        qs = qs.filter(assignee__isnull=True)
    if filters.status != "any":
        qs = qs.filter(status=filters.status)
    if filters.team is not None:
        qs = qs.filter(team_id=filters.team)
    if filters.tag is not None:
        qs = qs.filter(tags__id=filters.tag)
    if filters.channel is not None:
        qs = qs.filter(channel_id=filters.channel)
    if filters.q:
        text_match = Message.objects.filter(conversation=OuterRef("pk"), text__icontains=filters.q)
        qs = qs.filter(
            Q(contact__name__icontains=filters.q)
            | Q(contact__phone__icontains=filters.q)
            | Exists(text_match)
        )
    return qs


def encode_cursor(conversation: Conversation) -> str:
    stamp = conversation.last_message_at.isoformat() if conversation.last_message_at else ""
    return f"{stamp}|{conversation.pk}"


def _after_cursor(qs: QuerySet[Conversation], cursor: str) -> QuerySet[Conversation]:
    """Keyset pagination on (last_message_at DESC NULLS FIRST, id DESC): stable while rows move."""
    stamp, _, raw_id = cursor.partition("|")
    if not raw_id.isdigit():
        return qs
    last_id = int(raw_id)
    if not stamp:
        return qs.filter(Q(last_message_at__isnull=True, pk__lt=last_id) | Q(last_message_at__isnull=False))
    try:
        when = dt.datetime.fromisoformat(stamp)
    except ValueError:
        return qs
    return qs.filter(Q(last_message_at__lt=when) | Q(last_message_at=when, pk__lt=last_id))


# What a list row shows (templates/inbox/_row.html), and nothing else: a page decodes 50 rows of these.
ROW_FIELDS = (
    "id",
    "status",
    "unread_count",
    "bot_active",
    "last_message_at",
    "contact__name",
    "contact__phone",
    "assignee__first_name",
    "assignee__last_name",
    "assignee__email",
    "team__name",
    # SLA: the row shows time left or a breach.
    "first_response_at",
    "first_response_due_at",
    "resolution_due_at",
    "first_response_breached",
    "resolution_breached",
)


def _rows(qs: QuerySet[Conversation]) -> QuerySet[Conversation]:
    return (
        qs.select_related("contact", "assignee", "team")
        .only(*ROW_FIELDS)
        .prefetch_related(Prefetch("tags", queryset=Tag.objects.only("id", "name", "color")))
        .annotate(last=_last_message())
    )


@dataclass
class ConversationPage:
    rows: list[Any]
    next_cursor: str | None


def conversation_list(
    viewer: Viewer, filters: ListFilters, *, cursor: str = "", limit: int = PAGE_SIZE
) -> ConversationPage:
    qs = _filtered(viewer, filters)
    if cursor:
        qs = _after_cursor(qs, cursor)
    if filters.tag is not None:
        qs = qs.distinct()
    rows = list(_rows(qs).order_by(F("last_message_at").desc(nulls_first=True), "-id")[: limit + 1])
    more = len(rows) > limit
    rows = rows[:limit]
    return ConversationPage(rows=rows, next_cursor=encode_cursor(rows[-1]) if more and rows else None)


def conversation_row(viewer: Viewer, pk: int, filters: ListFilters | None = None) -> Conversation | None:
    """One list row, or None when the viewer may not see it or it no longer matches the filters."""
    qs = _filtered(viewer, filters) if filters else visible_conversations(viewer)
    return next(iter(_rows(qs.filter(pk=pk)).order_by()[:1]), None)


def tab_unread_counts(viewer: Viewer) -> dict[str, int]:
    """Conversations with unread messages per tab, among the viewer's active (open or pending) ones."""
    # unread_count > 0 in the WHERE clause matches conv_unread_idx's condition, and the count reads no column
    # outside it: an index-only scan over the unread conversations.
    counts = (
        visible_conversations(viewer)
        .filter(status__in=(Conversation.Status.OPEN, Conversation.Status.PENDING), unread_count__gt=0)
        .aggregate(
            mine=Count("status", filter=Q(assignee_id=viewer.user.pk)),
            unassigned=Count("status", filter=Q(assignee__isnull=True)),
            all=Count("status"),
        )
    )
    return {name: counts[name] or 0 for name in TABS}


def filter_choices() -> dict[str, Any]:
    return {
        "teams": list(Team.objects.only("id", "name")),
        "tags": list(Tag.objects.only("id", "name", "color")),
        "channels": list(Channel.objects.only("id", "display_phone", "phone_number_id", "name")),
    }


def assignable_agents() -> list[Any]:
    return list(
        get_user_model().objects.filter(agent__isnull=False, is_active=True).order_by("first_name", "email")
    )


# ---------------------------------------------------------------------------------------------------
# A thread
# ---------------------------------------------------------------------------------------------------


THREAD_RELATED = ("contact", "assignee", "team", "channel")


def conversation_for(viewer: Viewer, pk: int) -> Conversation | None:
    """The conversation as the thread shows it, or None (callers that answer 404 use
    get_visible_conversation directly)."""
    try:
        return get_visible_conversation(
            viewer, pk, queryset=Conversation.objects.select_related(*THREAD_RELATED).prefetch_related("tags")
        )
    except Http404:
        return None


def thread_messages(
    conversation: Conversation, *, before: int | None = None, after: int | None = None
) -> tuple[list[Message], bool]:
    """A page of the thread in display order and whether earlier messages exist.

    `after` returns messages stored after that id (new ones, for live updates and catch-up); `before`
    pages back in time.
    """
    qs = (
        Message.objects.filter(conversation=conversation)
        .exclude(type=Message.Type.REACTION)
        .select_related("sender", "reply_to", "media")
    )
    if after is not None:
        return list(qs.filter(pk__gt=after).order_by("timestamp", "id")[:200]), False
    if before is not None:
        anchor = Message.objects.filter(conversation=conversation, pk=before).values("timestamp").first()
        if anchor is not None:
            qs = qs.filter(
                Q(timestamp__lt=anchor["timestamp"]) | Q(timestamp=anchor["timestamp"], pk__lt=before)
            )
    rows = list(qs.order_by("-timestamp", "-id")[: THREAD_PAGE_SIZE + 1])
    more = len(rows) > THREAD_PAGE_SIZE
    rows = rows[:THREAD_PAGE_SIZE]
    rows.reverse()
    return rows, more


def message_for(viewer: Viewer, pk: int) -> Message | None:
    try:
        return get_visible_message(
            viewer, pk, queryset=Message.objects.select_related("sender", "reply_to", "conversation", "media")
        )
    except Http404:
        return None


def message_by_key(key: str | None) -> Message | None:
    return Message.objects.filter(idempotency_key=key).first() if key else None


def approved_templates(conversation: Conversation) -> list[Any]:
    """Approved templates of the conversation's WhatsApp Business Account."""
    return approved_templates_for(conversation.channel)


def number_status(channel: Any) -> str:
    """Why nothing can be sent from the number now, in its provider's words ("" when it can send): a
    Cloud API number that needs re-authorisation, a WhatsApp-Web session waiting for its QR code..."""
    if channel is None:
        return ""
    try:
        return channels.adapter_for(channel).number_status(channel=channel)
    except channels.UnknownProvider as exc:
        return exc.message


def templates_supported(channel: Any) -> bool:
    """Whether the number's provider sends message templates (the composer hides the picker if not)."""
    return channel is not None and channels.supports(channel, channels.TEMPLATES)


def approved_templates_for(channel: Any) -> list[Any]:
    """Approved templates a number can send (none without a number, or when its provider has none)."""
    if channel is None or not channels.supports(channel, channels.TEMPLATES):
        return []
    return channels.adapter_for(channel).approved_templates(channel=channel)


# ---------------------------------------------------------------------------------------------------
# Starting a conversation from a contact (the "Message" action of the contact pages)
# ---------------------------------------------------------------------------------------------------


def contact_for_composer(pk: Any) -> Contact:
    """A contact of this tenant to write to, or Http404. Every role reads every contact (the contact pages
    apply no narrower rule), so there is no viewer filter; the schema keeps other tenants out."""
    key = _row_key(pk)
    contact = Contact.objects.filter(pk=key).first() if key is not None else None
    if contact is None:
        raise Http404("No such contact.")
    return contact


def sending_numbers() -> list[Any]:
    """The tenant's WhatsApp numbers a staff member may pick to write from (inactive ones included:
    the composer says why they cannot send rather than hiding them)."""
    return list(Channel.objects.order_by("display_phone", "phone_number_id"))


def window_applies(channel: Any) -> bool:
    """Whether Meta's 24-hour customer-service window binds this number (its provider's capability; a
    WhatsApp-Web gateway number has none, so free-form messages go any time and the inbox shows no
    window). A conversation without a number is judged as a Cloud API one."""
    return channels.supports(channel, channels.SERVICE_WINDOW)


def window_closes_at(conversation: Conversation) -> dt.datetime | None:
    """End of the 24-hour customer-service window, or None when the contact never wrote."""
    # Meta counts the window per customer, so the contact's last message decides (any conversation).
    last = getattr(conversation.contact, "last_inbound_at", None) or conversation.last_inbound_at
    return rules.window_closes_at(last)


def window_is_open(conversation: Conversation, *, now: dt.datetime | None = None) -> bool:
    if not window_applies(conversation.channel):
        return True
    last = getattr(conversation.contact, "last_inbound_at", None) or conversation.last_inbound_at
    return rules.is_window_open(last, now=now)


def contact_conversations(viewer: Viewer, contact_id: int, *, limit: int = 20) -> list[Conversation]:
    """The contact's conversations the viewer sees, most recent activity first (the CRM's contact page)."""
    return list(
        Conversation.objects.visible_to(viewer)
        .filter(contact_id=contact_id)
        .select_related("assignee")
        .order_by(F("last_message_at").desc(nulls_last=True), "-id")[:limit]
    )


def earlier_conversations(conversation: Conversation, viewer: Viewer) -> list[Conversation]:
    return list(
        visible_conversations(viewer)
        .filter(contact_id=conversation.contact_id)
        .exclude(pk=conversation.pk)
        .order_by("-created_at")[:10]
    )


# ---------------------------------------------------------------------------------------------------
# The contact side panel
# ---------------------------------------------------------------------------------------------------

PANEL_NOTES = 5
PANEL_DEALS = 5


@dataclass(frozen=True)
class ContactField:
    """One editable line of the panel: `name` is the crm.forms.ContactFieldForm field that edits it."""

    name: str
    label: str
    value: str  # as shown; "" when unset


@dataclass
class ContactPanel:
    contact: Contact
    details: list[ContactField]
    attributes: list[ContactField]
    tag_choices: list[str]  # existing tags the contact does not have, offered when adding one
    notes: list[Note]
    more_notes: bool
    deals: list[Deal]
    more_deals: bool
    earlier: list[Conversation]

    @property
    def tags(self) -> list[Tag]:
        return list(self.contact.tags.all())


def _shown(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "Yes" if value else "No"
    return str(value)


def contact_fields(
    contact: Contact, definitions: list[AttributeDefinition]
) -> tuple[list[ContactField], list[ContactField]]:
    """The contact's details and its custom attributes (every definition, set or not), as shown."""
    owner = contact.owner
    details = [
        ContactField("name", "Name", contact.name),
        ContactField("email", "Email", contact.email),
        ContactField("company", "Company", contact.company.name if contact.company else ""),
        ContactField("owner", "Owner", (owner.get_full_name() or owner.email) if owner else ""),
        ContactField("marketing_consent", "Marketing consent", contact.get_marketing_consent_display()),
        ContactField("blocked", "Blocked", _shown(contact.blocked)),
    ]
    attributes = [
        ContactField(f"attr_{d.key}", d.label, _shown(contact.attributes.get(d.key))) for d in definitions
    ]
    return details, attributes


def panel_queryset() -> ConversationQuerySet:
    """Conversations with their contact as the panel shows it (company, owner, tags)."""
    return Conversation.objects.select_related("contact__company", "contact__owner").prefetch_related(
        "contact__tags"
    )


def panel_conversation(viewer: Viewer, pk: int) -> Conversation | None:
    """A conversation the viewer sees, as the contact panel shows it; None when not visible."""
    try:
        return get_visible_conversation(viewer, pk, queryset=panel_queryset())
    except Http404:
        return None


def contact_panel(conversation: Conversation, viewer: Viewer) -> ContactPanel:
    """Everything the panel shows, in a fixed number of queries however many notes, deals or tags.

    `conversation` comes from panel_conversation()."""
    contact = conversation.contact
    details, attributes = contact_fields(contact, list(AttributeDefinition.objects.all()))
    own = {t.pk for t in contact.tags.all()}
    notes = list(crm_selectors.notes_of(contact)[: PANEL_NOTES + 1])
    deals = list(crm_selectors.deals().filter(contact=contact)[: PANEL_DEALS + 1])
    return ContactPanel(
        contact=contact,
        details=details,
        attributes=attributes,
        tag_choices=[name for pk, name in Tag.objects.values_list("pk", "name") if pk not in own],
        notes=notes[:PANEL_NOTES],
        more_notes=len(notes) > PANEL_NOTES,
        deals=deals[:PANEL_DEALS],
        more_deals=len(deals) > PANEL_DEALS,
        earlier=earlier_conversations(conversation, viewer),
    )


def canned_responses(query: str = "") -> list[CannedResponse]:
    qs = CannedResponse.objects.all()
    if query:
        qs = qs.filter(Q(shortcut__istartswith=query) | Q(title__icontains=query))
    return list(qs[:20])


# ---------------------------------------------------------------------------------------------------
# Catch-up for reconnecting sockets
# ---------------------------------------------------------------------------------------------------

# Transactions commit out of id order; replaying a little before the last seen event covers the gap,
# and the browser drops the events it already has by their sequence number.
CATCH_UP_OVERLAP = dt.timedelta(seconds=5)
CATCH_UP_LIMIT = 500


def latest_event_id() -> int:
    return InboxEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0


def events_since(viewer: Viewer, after: int) -> tuple[list[dict[str, Any]], bool]:
    """Events after sequence `after` about conversations the viewer sees now; True when too many to replay
    (the browser then reloads its panes instead)."""
    anchor = InboxEvent.objects.filter(pk=after).values_list("created_at", flat=True).first()
    qs = InboxEvent.objects.visible_to(viewer)
    if anchor is not None:
        qs = qs.filter(Q(pk__gt=after) | Q(created_at__gte=anchor - CATCH_UP_OVERLAP))
    else:
        qs = qs.filter(pk__gt=after)
    rows = list(qs.order_by("id").values("id", "payload")[: CATCH_UP_LIMIT + 1])
    if len(rows) > CATCH_UP_LIMIT:
        return [], True
    return [{**row["payload"], "seq": row["id"]} for row in rows], False


# ---------------------------------------------------------------------------------------------------
# Reports
# ---------------------------------------------------------------------------------------------------


class Median(Aggregate):
    function = "percentile_cont"
    template = "%(function)s(0.5) WITHIN GROUP (ORDER BY %(expressions)s)"
    output_field = DurationField()


def tenant_time_zone() -> ZoneInfo:
    name = BotSettings.objects.values_list("time_zone", flat=True).first() or "UTC"
    try:
        return ZoneInfo(name)
    except (KeyError, ValueError):
        return ZoneInfo("UTC")


@dataclass
class Report:
    start: dt.date
    end: dt.date
    days: list[str]
    opened: list[int]
    resolved: list[int]
    median_first_response: dt.timedelta | None
    median_resolution: dt.timedelta | None
    agents: list[dict[str, Any]]


def conversation_report(*, start: dt.date, end: dt.date) -> Report:
    """Per-day counts and medians over [start, end] (inclusive) in the tenant's time zone."""
    tz = tenant_time_zone()
    since = dt.datetime.combine(start, dt.time.min, tzinfo=tz)
    until = dt.datetime.combine(end + dt.timedelta(days=1), dt.time.min, tzinfo=tz)
    created = Conversation.objects.filter(created_at__gte=since, created_at__lt=until)
    resolved = Conversation.objects.filter(resolved_at__gte=since, resolved_at__lt=until)

    def per_day(qs: QuerySet[Conversation], column: str) -> dict[dt.date, int]:
        return {
            row["day"]: row["n"]
            for row in qs.annotate(day=TruncDate(column, tzinfo=tz)).values("day").annotate(n=Count("pk"))
        }

    opened_by_day = per_day(created, "created_at")
    resolved_by_day = per_day(resolved, "resolved_at")
    days = [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]
    first_response = ExpressionWrapper(F("first_response_at") - F("created_at"), output_field=DurationField())
    resolution = ExpressionWrapper(F("resolved_at") - F("created_at"), output_field=DurationField())
    medians = created.filter(first_response_at__isnull=False).aggregate(m=Median(first_response))
    resolution_median = resolved.aggregate(m=Median(resolution))

    agent_rows = (
        get_user_model()
        .objects.filter(agent__isnull=False)
        .annotate(
            open_now=Count(
                "assigned_conversations",
                filter=Q(assigned_conversations__status=Conversation.Status.OPEN),
                distinct=True,
            ),
            resolved_in_range=Count(
                "assigned_conversations",
                filter=Q(
                    assigned_conversations__resolved_at__gte=since,
                    assigned_conversations__resolved_at__lt=until,
                ),
                distinct=True,
            ),
        )
        .order_by("first_name", "email")
    )
    replies = dict(
        Message.objects.filter(
            sender__isnull=False,
            direction=Message.Direction.OUTBOUND,
            timestamp__gte=since,
            timestamp__lt=until,
        )
        .exclude(type__in=(Message.Type.NOTE, Message.Type.SYSTEM))
        .values("sender_id")
        .annotate(n=Count("pk"))
        .values_list("sender_id", "n")
    )
    # Credited to whoever sent the first reply, not to whoever holds the conversation now.
    first_by_agent = dict(
        created.filter(first_response_at__isnull=False, first_response_by__isnull=False)
        .values("first_response_by_id")
        .annotate(m=Median(first_response))
        .values_list("first_response_by_id", "m")
    )
    agents = [
        {
            "name": user.get_full_name() or user.email,
            "open_now": user.open_now,
            "resolved": user.resolved_in_range,
            "replies": replies.get(user.pk, 0),
            "median_first_response": first_by_agent.get(user.pk),
        }
        for user in agent_rows
    ]
    return Report(
        start=start,
        end=end,
        days=[d.isoformat() for d in days],
        opened=[opened_by_day.get(d, 0) for d in days],
        resolved=[resolved_by_day.get(d, 0) for d in days],
        median_first_response=medians["m"],
        median_resolution=resolution_median["m"],
        agents=agents,
    )
