"""Campaign writes: create (audience and parameters checked), start, pause, resume, cancel, and the
dispatcher's chunk and progress refresh.

Every message goes out through the one reply path (conversations.services.send_reply) with bulk=True and
the idempotency key `campaign:<id>:<contact>`: a dispatcher that is retried or killed half-way never
creates a second message for a recipient. The channel's delivery sends and paces them.

Pausing holds what was queued and not yet picked up by delivery: those messages are set to `cancelled`
(withdrawn before sending; delivery sends only `queued` rows) with the title HELD_TITLE, by the same
conditional UPDATE delivery's claim races against (status queued, no wamid, no send in progress), so
each message is either sent or held, never both. Resuming puts them back in the queue; cancelling leaves
them cancelled with CANCELLED_TITLE.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import Count, DateTimeField, Exists, ExpressionWrapper, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import TruncSecond
from django.utils import timezone

from campaigns.models import Campaign, CampaignSettings, Recipient
from conversations import bot, channels, events
from conversations.errors import MessageRejected
from conversations.groups import everything_group
from conversations.models import BotSettings, Channel, Conversation, Message
from conversations.services.drafts import Draft, prepare_draft
from conversations.services.reply import send_reply
from conversations.services.sending import check_recipient, enqueue_send
from core.errors import ServiceError
from crm import outgoing_events
from crm.models import Contact, ContactImport
from crm.services.contacts import clean_phone
from crm.services.imports import read_contacts_csv, run_contact_import
from tenants.db import connection
from whatsapp.models import BusinessAccount, MessageTemplate

HELD_TITLE = "Held: the campaign is paused"
CANCELLED_TITLE = "Not sent: the campaign was cancelled"
CHUNK_SIZE = 100
FOLLOW_AFTER_COMPLETION = dt.timedelta(days=3)
TERMINAL = (
    Recipient.Status.SENT,
    Recipient.Status.DELIVERED,
    Recipient.Status.READ,
    Recipient.Status.REPLIED,
    Recipient.Status.FAILED,
    Recipient.Status.SKIPPED,
)
COUNTED = ("total", *Recipient.Status.values)


class CampaignError(ServiceError):
    STATUS = {"not_found": 404, "invalid_state": 409}

    def __init__(self, code: str, message: str, **kwargs: Any) -> None:
        kwargs.setdefault("status", self.STATUS.get(code, 400))
        super().__init__(code, message, **kwargs)


# --- parameters -----------------------------------------------------------------------------------------

PLACEHOLDER_RE = re.compile(r"\{\{\s*contact\.(name|first_name|phone|email|attributes\.([\w.-]+))\s*\}\}")


class MissingValue(Exception):
    def __init__(self, what: str) -> None:
        super().__init__(what)
        self.what = what


def _contact_value(contact: Any, path: str, key: str | None) -> str:
    if key is not None:
        attributes = contact.attributes if contact.attributes is not None else {}
        value = attributes.get(key)
        return "" if value is None else str(value)
    if path == "first_name":
        return (contact.name or "").strip().split(" ")[0] if contact.name else ""
    return str(getattr(contact, path, "") or "")


def resolve_parameters(parameters: Any, contact: Any) -> Any:
    """The campaign's parameters with `{{contact.…}}` placeholders filled from `contact`. MissingValue
    when a placeholder is empty for this contact (a template parameter may not be empty)."""

    def fill(value: Any) -> Any:
        if isinstance(value, str):
            used: list[str] = []

            def sub(match: re.Match[str]) -> str:
                found = _contact_value(contact, match.group(1), match.group(2)).strip()
                if not found:
                    used.append(match.group(0))
                return found

            result = PLACEHOLDER_RE.sub(sub, value)
            if used or (value.strip() and not result.strip()):
                raise MissingValue(used[0] if used else value)
            return result
        if isinstance(value, list):
            return [fill(v) for v in value]
        if isinstance(value, dict):
            # A media header's id/link is a literal; everything else may carry placeholders.
            return {k: fill(v) for k, v in value.items()}
        return value

    return fill(parameters)


class _Sample:
    """A contact with every field filled: the shape of the parameters is checked once, at creation."""

    name = "Sample Name"
    phone = "+10000000000"
    email = "sample@example.com"

    def __init__(self) -> None:
        self.attributes = _AnyAttributes()


class _AnyAttributes(dict[str, str]):
    def get(self, key: Any, default: Any = None) -> str:
        return "sample"


def _prepare(channel: Channel, template: Any, language: str, parameters: Any) -> Any:
    return channels.adapter_for(channel).prepare_template(
        channel=channel, template=template, language=language, parameters=parameters
    )


# --- audience -------------------------------------------------------------------------------------------


@dataclass
class Audience:
    eligible: list[Contact] = field(default_factory=list)
    skipped: list[tuple[Contact, str]] = field(default_factory=list)
    duplicates: int = 0

    def counts(self) -> dict[str, Any]:
        reasons: dict[str, int] = {}
        for _contact, reason in self.skipped:
            reasons[reason] = reasons.get(reason, 0) + 1
        return {
            "total": len(self.eligible) + len(self.skipped),
            "eligible": len(self.eligible),
            "skipped": len(self.skipped),
            "skipped_by_reason": reasons,
            "duplicates_removed": self.duplicates,
        }


def _parse_day(value: Any, name: str) -> dt.datetime | None:
    if value in (None, ""):
        return None
    try:
        parsed = dt.datetime.fromisoformat(str(value))
    except ValueError as exc:
        raise CampaignError(
            "invalid_audience", f"audience.{name} is not an ISO date or date-time.", field="audience"
        ) from exc
    return parsed if timezone.is_aware(parsed) else timezone.make_aware(parsed, dt.UTC)


def audience_queryset(audience: Any) -> tuple[QuerySet[Contact], int]:
    """Contacts matching the audience (tags: any of; attributes: all equal; last inbound between; the
    phones of an uploaded CSV); the number of duplicates the filters' joins would have produced."""
    if not isinstance(audience, dict) or not audience:
        raise CampaignError(
            "invalid_audience",
            "The audience is empty: give tags, attributes, a last-inbound range or a CSV.",
            field="audience",
        )
    unknown = set(audience) - {"tags", "attributes", "last_inbound_after", "last_inbound_before", "phones"}
    if unknown:
        raise CampaignError(
            "invalid_audience", f"Unknown audience filters: {sorted(unknown)}.", field="audience"
        )
    contacts = Contact.objects.all()
    tags = audience.get("tags")
    if tags is not None:
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise CampaignError("invalid_audience", "audience.tags is a list of tag names.", field="audience")
        contacts = contacts.filter(tags__name__in=tags)
    attributes = audience.get("attributes")
    if attributes is not None:
        if not isinstance(attributes, dict):
            raise CampaignError(
                "invalid_audience", "audience.attributes maps keys to values.", field="audience"
            )
        for key, value in attributes.items():
            contacts = contacts.filter(**{f"attributes__{key}": value})
    after = _parse_day(audience.get("last_inbound_after"), "last_inbound_after")
    before = _parse_day(audience.get("last_inbound_before"), "last_inbound_before")
    if after:
        contacts = contacts.filter(last_inbound_at__gte=after)
    if before:
        contacts = contacts.filter(last_inbound_at__lt=before)
    phones = audience.get("phones")
    if phones is not None:
        if not isinstance(phones, list):
            raise CampaignError("invalid_audience", "audience.phones is a list.", field="audience")
        contacts = contacts.filter(phone__in=[str(p) for p in phones])
    matched = contacts.count()
    distinct = contacts.distinct()
    return distinct, matched - distinct.count()


def resolve_audience(*, audience: Any, category: str) -> Audience:
    """Who the campaign reaches and who it skips, with the reason: blocked contacts always; for
    MARKETING templates opted-out contacts, and those with unknown consent unless the workspace allows
    them."""
    contacts, duplicates = audience_queryset(audience)
    marketing = (category or "").upper() == "MARKETING"
    allow_unknown = _settings().marketing_to_unknown
    result = Audience(duplicates=duplicates)
    for contact in contacts.order_by("id"):
        reason = skip_reason(contact, marketing=marketing, allow_unknown=allow_unknown)
        if reason:
            result.skipped.append((contact, reason))
        else:
            result.eligible.append(contact)
    return result


# The skip reasons in words, for the pages (the export and the API keep the codes).
SKIP_LABELS = {
    "blocked": "Blocked",
    "no_address": "No WhatsApp number",
    "opted_out": "Opted out",
    "no_consent": "No marketing consent",
    "missing_parameter": "A parameter is empty",
    "invalid_parameters": "Parameters do not fit the template",
    "cancelled": "Campaign cancelled",
    "no_contact": "Contact deleted",
}


def skip_reason(contact: Contact, *, marketing: bool, allow_unknown: bool) -> str:
    if contact.blocked:
        return "blocked"
    if not (contact.phone or contact.wa_id or contact.whatsapp_user_id):
        return "no_address"
    if marketing:
        if contact.marketing_consent == Contact.MarketingConsent.OPTED_OUT:
            return "opted_out"
        if contact.marketing_consent == Contact.MarketingConsent.UNKNOWN and not allow_unknown:
            return "no_consent"
    return ""


def _settings() -> CampaignSettings:
    return CampaignSettings.objects.get_or_create(pk=1)[0]


def campaign_settings() -> CampaignSettings:
    return _settings()


def update_campaign_settings(*, marketing_to_unknown: bool) -> CampaignSettings:
    """Whether MARKETING campaigns also reach contacts whose consent is unknown (off by default: Meta
    requires opt-in; a workspace that collected consent elsewhere may turn it on)."""
    row = _settings()
    row.marketing_to_unknown = marketing_to_unknown
    row.save(update_fields=["marketing_to_unknown"])
    return row


def read_audience_csv(content: bytes | str) -> tuple[str, list[str], int]:
    """An audience CSV's text, its valid phone numbers (E.164, each once, in file order) and the number
    of rows without a valid one. Reads only: nothing is stored."""
    content, reader = read_contacts_csv(content)
    phones: list[str] = []
    invalid = 0
    for row in reader:
        if not any((v or "").strip() for v in row.values() if isinstance(v, str)):
            continue
        try:
            phones.append(clean_phone((row.get("phone") or "").strip()))
        except ServiceError:
            invalid += 1
    return content, list(dict.fromkeys(phones)), invalid


def import_audience_csv(*, filename: str, content: bytes | str, created_by: Any) -> dict[str, Any]:
    """Create or update the CSV's contacts through the contact import (synchronously: the audience is
    the file's phones, counted right away) and return the audience that selects them."""
    text, phones, _ = read_audience_csv(content)
    job = ContactImport.objects.create(
        filename=filename[:200], content=text, total_rows=len(phones), created_by=created_by
    )
    run_contact_import(contact_import=job)
    return {"phones": phones}


# --- messaging limit and window -------------------------------------------------------------------------

TIERS = {
    "TIER_50": 50,
    "TIER_250": 250,
    "TIER_1K": 1000,
    "TIER_2K": 2000,
    "TIER_10K": 10000,
    "TIER_100K": 100000,
}


def messaging_limit(channel: Channel) -> int | None:
    """Unique recipients per 24 h for the number's business account (None: unlimited or unknown)."""
    tier = (
        BusinessAccount.objects.filter(waba_id=channel.waba_id)
        .values_list("messaging_limit", flat=True)
        .first()
    )
    return TIERS.get((tier or "").upper())


def recipients_last_24h(channel: Channel, now: dt.datetime) -> int:
    """Distinct contacts sent a template by any number of the account in the last 24 hours."""
    return (
        Message.objects.filter(
            direction=Message.Direction.OUTBOUND,
            type=Message.Type.TEMPLATE,
            created_at__gte=now - dt.timedelta(hours=24),
            conversation__channel__waba_id=channel.waba_id,
        )
        .exclude(status__in=[Message.Status.FAILED, Message.Status.CANCELLED])
        .values("conversation__contact")
        .distinct()
        .count()
    )


def tenant_zone() -> ZoneInfo:
    row = BotSettings.objects.filter(pk=1).first()
    return bot.zone_of(row) if row is not None else ZoneInfo("UTC")


def window_opens_at(campaign: Campaign, now: dt.datetime) -> dt.datetime | None:
    """None when `now` is inside the send window (or there is none); else when it opens next."""
    start, end = campaign.window_start, campaign.window_end
    if start is None or end is None or start == end:
        return None
    zone = tenant_zone()
    local = now.astimezone(zone)
    t = local.time()
    inside = start <= t < end if start < end else (t >= start or t < end)
    if inside:
        return None
    day = local.date() if t < start else local.date() + dt.timedelta(days=1)
    return dt.datetime.combine(day, start, tzinfo=zone)


# --- create and state changes ---------------------------------------------------------------------------


def _template_for(channel: Channel, name: str, language: str) -> MessageTemplate:
    template = MessageTemplate.objects.filter(waba_id=channel.waba_id, name=name, language=language).first()
    if template is None:
        raise CampaignError(
            "unknown_template", f"No template '{name}' ({language}) for this number.", field="template"
        )
    if not template.is_approved:
        raise CampaignError(
            "template_not_approved",
            f"The template '{name}' is {template.status or 'not approved'}.",
            field="template",
        )
    return template


def _named_in_order(template: MessageTemplate, parameters: dict[str, Any]) -> dict[str, Any]:
    """A template with named placeholders ({{first_name}}) given its body values as a list (the page's
    one value a line) takes them in the placeholders' order; any other shape is checked as it is."""
    body = parameters.get("body")
    names = template.body_placeholders()
    if template.parameter_format == "NAMED" and isinstance(body, list) and len(body) == len(names):
        return {**parameters, "body": dict(zip(names, body, strict=True))}
    return parameters


@transaction.atomic
def create_campaign(
    *,
    name: str,
    channel: Channel,
    template: str,
    language: str,
    audience: Any,
    parameters: Any = None,
    schedule_at: dt.datetime | None = None,
    window_start: dt.time | None = None,
    window_end: dt.time | None = None,
    created_by: Any = None,
) -> Campaign:
    """A draft campaign: the template must be approved for the number's account, the parameters fit
    it (checked with every contact field filled), the audience filters valid. `total` is the audience's
    size now; it is fixed when the campaign starts."""
    if not (name or "").strip():
        raise CampaignError("invalid_name", "The campaign needs a name.", field="name")
    if (window_start is None) != (window_end is None):
        raise CampaignError(
            "invalid_window", "Give both ends of the send window, or neither.", field="window"
        )
    if not channels.supports(channel, channels.TEMPLATES):
        raise CampaignError(
            "channel_without_templates",
            f"The number {channel} ({channel.get_provider_display()}) has no message templates, and a "
            "campaign sends approved templates: use a WhatsApp Cloud API number.",
            field="channel",
            status=422,
        )
    found = _template_for(channel, template, language)
    parameters = parameters if parameters is not None else {}
    if isinstance(parameters, list):
        parameters = {"body": parameters}
    if not isinstance(parameters, dict):
        raise CampaignError("invalid_parameters", "parameters is an object.", field="parameters")
    parameters = _named_in_order(found, parameters)
    try:
        _prepare(channel, found, language, resolve_parameters(parameters, _Sample()))
    except MessageRejected as exc:
        # Bad input of this request (400), not a send refused by a rule.
        raise CampaignError(exc.code, exc.message, field="parameters", details=exc.details) from exc
    preview = resolve_audience(audience=audience, category=found.category)
    return Campaign.objects.create(
        name=name.strip()[:200],
        channel=channel,
        template=found,
        template_name=found.name,
        language=found.language,
        category=(found.category or "").upper(),
        parameters=parameters,
        audience=audience,
        schedule_at=schedule_at,
        window_start=window_start,
        window_end=window_end,
        total=preview.counts()["total"],
        created_by=created_by if getattr(created_by, "pk", None) else None,
    )


def _locked(campaign: Campaign) -> Campaign:
    return Campaign.objects.select_for_update().get(pk=campaign.pk)


def _require(campaign: Campaign, *states: str) -> None:
    if campaign.status not in states:
        raise CampaignError(
            "invalid_state",
            f"The campaign is {campaign.status}: this cannot be done now.",
            details={"status": campaign.status},
        )


@transaction.atomic
def start_campaign(*, campaign: Campaign, now: dt.datetime | None = None) -> Campaign:
    """Fix the audience (one recipient per contact, skipped ones with their reason), check every
    recipient's parameters against the template, then run now or at schedule_at. Nothing is queued
    here: the dispatcher queues."""
    now = now or timezone.now()
    campaign = _locked(campaign)
    _require(campaign, Campaign.Status.DRAFT)
    channel = campaign.channel
    template = _template_for(channel, campaign.template_name, campaign.language)
    audience = resolve_audience(audience=campaign.audience, category=template.category)
    rows: list[Recipient] = [
        Recipient(campaign=campaign, contact=c, status=Recipient.Status.SKIPPED, skip_reason=reason)
        for c, reason in audience.skipped
    ]
    for contact in audience.eligible:
        row = Recipient(campaign=campaign, contact=contact)
        try:
            row.parameters = resolve_parameters(campaign.parameters, contact)
            _prepare(channel, template, campaign.language, row.parameters)
        except MissingValue as missing:
            row.status, row.skip_reason = Recipient.Status.SKIPPED, "missing_parameter"
            row.error_title = f"Empty for this contact: {missing.what}"[:300]
        except MessageRejected as exc:
            row.status, row.skip_reason = Recipient.Status.SKIPPED, "invalid_parameters"
            row.error_title = exc.message[:300]
        rows.append(row)
    Recipient.objects.bulk_create(rows, batch_size=1000, ignore_conflicts=True)
    campaign.total = len(rows)
    campaign.started_at = now
    scheduled = campaign.schedule_at is not None and campaign.schedule_at > now
    campaign.status = Campaign.Status.SCHEDULED if scheduled else Campaign.Status.RUNNING
    campaign.save(update_fields=["total", "started_at", "status", "updated_at"])
    if not scheduled:
        _kick_on_commit(campaign)
    publish_progress(campaign)
    return campaign


def _held_messages(campaign: Campaign) -> QuerySet[Message]:
    return Message.objects.filter(
        pk__in=Recipient.objects.filter(campaign=campaign, status=Recipient.Status.QUEUED).values(
            "message_id"
        )
    )


def _hold_queued(campaign: Campaign, title: str) -> int:
    """Take back what delivery has not picked up: the same condition as its claim, in one UPDATE."""
    return (
        _held_messages(campaign)
        .filter(status=Message.Status.QUEUED, wamid__isnull=True, send_started_at__isnull=True)
        .update(status=Message.Status.CANCELLED, error_title=title, error_code=None)
    )


@transaction.atomic
def pause_campaign(*, campaign: Campaign, reason: str = "Paused by a user") -> Campaign:
    """Nothing new is queued after this commits, and queued messages not yet being sent are held."""
    campaign = _locked(campaign)
    _require(campaign, Campaign.Status.RUNNING, Campaign.Status.SCHEDULED)
    campaign.status = Campaign.Status.PAUSED
    campaign.pause_reason = reason[:300]
    campaign.save(update_fields=["status", "pause_reason", "updated_at"])
    _hold_queued(campaign, HELD_TITLE)
    publish_progress(campaign)
    return campaign


@transaction.atomic
def resume_campaign(*, campaign: Campaign) -> Campaign:
    """Held messages go back to the queue; the dispatcher carries on with the rest."""
    campaign = _locked(campaign)
    _require(campaign, Campaign.Status.PAUSED)
    channel = campaign.channel
    if not channel.is_active:
        raise CampaignError("channel_inactive", channel.unavailable_reason, status=409)
    template = (
        MessageTemplate.objects.filter(pk=campaign.template_id).first() if campaign.template_id else None
    )
    if template is None or not template.is_approved:
        raise CampaignError("template_not_approved", "The template is not approved.", status=409)
    campaign.status = Campaign.Status.RUNNING
    campaign.pause_reason = ""
    campaign.save(update_fields=["status", "pause_reason", "updated_at"])
    held = list(
        _held_messages(campaign)
        .filter(status=Message.Status.CANCELLED, error_title=HELD_TITLE, wamid__isnull=True)
        .select_related("conversation__channel")
    )
    Message.objects.filter(pk__in=[m.pk for m in held]).update(status=Message.Status.QUEUED, error_title="")
    for message in held:
        message.status = Message.Status.QUEUED
        enqueue_send(message)
    _kick_on_commit(campaign)
    publish_progress(campaign)
    return campaign


@transaction.atomic
def cancel_campaign(*, campaign: Campaign) -> Campaign:
    """Stops for good: pending recipients are skipped (cancelled), queued messages not yet being sent are
    not sent."""
    campaign = _locked(campaign)
    _require(
        campaign,
        Campaign.Status.DRAFT,
        Campaign.Status.SCHEDULED,
        Campaign.Status.RUNNING,
        Campaign.Status.PAUSED,
    )
    _held_messages(campaign).filter(
        Q(status=Message.Status.QUEUED, send_started_at__isnull=True) | Q(error_title=HELD_TITLE),
        wamid__isnull=True,
    ).update(status=Message.Status.CANCELLED, error_title=CANCELLED_TITLE, error_code=None)
    Recipient.objects.filter(
        Q(status=Recipient.Status.PENDING)
        | Q(status=Recipient.Status.QUEUED, message__error_title=CANCELLED_TITLE),
        campaign=campaign,
    ).update(status=Recipient.Status.SKIPPED, skip_reason="cancelled")
    campaign.status = Campaign.Status.CANCELLED
    campaign.finished_at = timezone.now()
    campaign.save(update_fields=["status", "finished_at", "updated_at"])
    outgoing_events.emit("campaign.finished", {"campaign": campaign.pk})
    publish_progress(campaign)
    return campaign


def _kick_on_commit(campaign: Campaign) -> None:
    from campaigns.actors import dispatch_campaign

    pk = campaign.pk
    transaction.on_commit(lambda: dispatch_campaign.send(pk))


# --- dispatch -------------------------------------------------------------------------------------------


def _alert_owners(campaign: Campaign, reason: str) -> None:
    from whatsapp.services.notifications import owner_emails

    recipients = owner_emails()
    if not recipients:
        return
    workspace = str(getattr(connection.tenant, "name", "") or connection.schema_name)
    subject = f"{workspace}: the campaign {campaign.name} is paused"
    body = (
        f"The campaign {campaign.name} stopped sending: {reason}\n\n"
        "Nothing more is sent until it is resumed on its campaign page.\n"
    )
    transaction.on_commit(lambda: send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, recipients))


def blocking_reason(campaign: Campaign) -> str:
    """Why the campaign must pause now ("" when it may send): the number stopped (re-authorisation,
    disabled, Meta's spam limit), the template paused or disabled or recategorised by Meta."""
    channel = Channel.objects.get(pk=campaign.channel_id)
    if not channel.is_active:
        return channel.unavailable_reason or "The number is not active."
    template = (
        MessageTemplate.objects.filter(pk=campaign.template_id).first() if campaign.template_id else None
    )
    if template is None:
        return "The template was deleted."
    if not template.is_approved:
        reason = f": {template.status_reason}" if template.status_reason else ""
        return f"The template '{template.name}' is {template.status or 'not approved'}{reason}."
    if campaign.category and (template.category or "").upper() != campaign.category:
        return f"Meta changed the template's category from {campaign.category} to {template.category}."
    return ""


@dataclass
class ChunkResult:
    outcome: str  # sent_chunk, done, paused, waiting_window, waiting_limit, not_running, busy
    queued: int = 0
    retry_at: dt.datetime | None = None


def dispatch_chunk(
    *, campaign_id: int, now: dt.datetime | None = None, size: int = CHUNK_SIZE
) -> ChunkResult:
    """Queue the next `size` pending recipients, in one transaction that holds the campaign's row: a
    pause waits for the chunk and then holds what it queued; a second dispatcher skips the campaign."""
    now = now or timezone.now()
    with transaction.atomic():
        campaign = Campaign.objects.select_for_update(skip_locked=True).filter(pk=campaign_id).first()
        if campaign is None:
            return ChunkResult("busy")
        if campaign.status != Campaign.Status.RUNNING:
            return ChunkResult("not_running")
        reason = blocking_reason(campaign)
        if reason:
            campaign.status = Campaign.Status.PAUSED
            campaign.pause_reason = reason[:300]
            campaign.save(update_fields=["status", "pause_reason", "updated_at"])
            _hold_queued(campaign, HELD_TITLE)
            _alert_owners(campaign, reason)
            publish_progress(campaign)
            return ChunkResult("paused")
        opens = window_opens_at(campaign, now)
        if opens is not None:
            _set_waiting(campaign, f"Outside the send window: opens {opens.isoformat()}")
            return ChunkResult("waiting_window", retry_at=opens)
        limit = messaging_limit(campaign.channel)
        if limit is not None:
            size = min(size, limit - recipients_last_24h(campaign.channel, now))
            if size <= 0:
                _set_waiting(campaign, f"Messaging limit of {limit} recipients per 24 hours reached")
                return ChunkResult("waiting_limit", retry_at=now + dt.timedelta(minutes=15))
        pending = list(
            Recipient.objects.filter(campaign=campaign, status=Recipient.Status.PENDING)
            .select_related("contact")
            .order_by("id")[:size]
        )
        if campaign.waiting:
            _set_waiting(campaign, "")
        marketing = campaign.category == "MARKETING"
        allow_unknown = _settings().marketing_to_unknown
        queued = _dispatch_many(campaign, pending, marketing=marketing, allow_unknown=allow_unknown)
        if not pending:
            refresh_progress(campaign=campaign)
            return ChunkResult("done")
        publish_progress(campaign)
        return ChunkResult("sent_chunk", queued=queued)


def _set_waiting(campaign: Campaign, waiting: str) -> None:
    if campaign.waiting != waiting:
        campaign.waiting = waiting[:200]
        campaign.save(update_fields=["waiting", "updated_at"])
        publish_progress(campaign)


SKIP_CODES = {"opted_out": "opted_out", "contact_blocked": "blocked"}


def _refused(recipient: Recipient, exc: MessageRejected) -> None:
    if exc.code in SKIP_CODES or exc.message == "skipped":
        recipient.status = Recipient.Status.SKIPPED
        recipient.skip_reason = SKIP_CODES.get(exc.code, exc.code)
    else:
        recipient.status = Recipient.Status.FAILED
        recipient.skip_reason = exc.code[:40]
        recipient.error_title = exc.message[:300]


def _dispatch_many(
    campaign: Campaign, pending: list[Recipient], *, marketing: bool, allow_unknown: bool
) -> int:
    """_dispatch_one for a chunk, set-wise: the rules of the reply path (send_reply) per recipient, in
    Python, and the rows written together (a few statements per chunk instead of a dozen per
    recipient); the queued messages are handed to delivery once per chunk. The caller holds the
    campaign's row, so no other dispatcher writes these recipients meanwhile."""
    if not pending:
        return 0
    channel = Channel.objects.filter(pk=campaign.channel_id).first()
    if channel is None or not channel.is_active:
        # Every recipient is refused the same way: the one-at-a-time path records why.
        return sum(
            _dispatch_one(campaign, r, marketing=marketing, allow_unknown=allow_unknown) for r in pending
        )
    keys = {r.pk: f"campaign:{campaign.pk}:{r.contact_id}" for r in pending}
    existing = dict(
        Message.objects.filter(idempotency_key__in=list(keys.values())).values_list("idempotency_key", "pk")
    )
    # Locks in the inbound round's order (contacts, then conversations): consent and blocks as they are
    # now, and a concurrent inbound message waits instead of being overwritten.
    contact_ids = sorted({r.contact_id for r in pending})
    contacts = {
        c.pk: c for c in Contact.objects.select_for_update().filter(pk__in=contact_ids).order_by("pk")
    }
    conversations: dict[int, Conversation] = {}
    for conversation in (
        Conversation.objects.select_for_update()
        .filter(contact_id__in=contact_ids, channel_id=channel.pk)
        .order_by("contact_id", "-id")
    ):
        conversations.setdefault(conversation.contact_id, conversation)
    now = timezone.now()
    missing = [pk for pk in contact_ids if pk not in conversations and pk in contacts]
    if missing:
        # A campaign opens no inbox work: the conversation starts resolved and a reply reopens it.
        for conversation in Conversation.objects.bulk_create(
            [
                Conversation(
                    contact_id=pk, channel_id=channel.pk, status=Conversation.Status.RESOLVED, resolved_at=now
                )
                for pk in missing
            ]
        ):
            conversations[conversation.contact_id] = conversation
    rows: list[tuple[Recipient, Message]] = []
    for recipient in pending:
        key = keys[recipient.pk]
        if key in existing:
            # Queued before a dispatcher was killed: link it, never send twice.
            recipient.message_id, recipient.status = existing[key], Recipient.Status.QUEUED
            continue
        contact = contacts.get(recipient.contact_id)
        found = conversations.get(recipient.contact_id)
        if contact is None or found is None:
            recipient.status, recipient.skip_reason = Recipient.Status.SKIPPED, "no_contact"
            continue
        conversation = found
        conversation.contact, conversation.channel = contact, channel
        try:
            reason = skip_reason(contact, marketing=marketing, allow_unknown=allow_unknown)
            if reason:
                raise MessageRejected(reason, "skipped")
            outbound = prepare_draft(
                conversation,
                Draft(
                    kind="template",
                    template=campaign.template_id or campaign.template_name,
                    language=campaign.language,
                    parameters=recipient.parameters,
                    idempotency_key=key,
                    bulk=True,
                ),
            )
            check_recipient(conversation, template=outbound.template)
        except MessageRejected as exc:
            _refused(recipient, exc)
            continue
        message = Message(
            conversation=conversation,
            direction=Message.Direction.OUTBOUND,
            type=outbound.type,
            text=outbound.text,
            payload=outbound.payload,
            preview=outbound.preview[:200],
            status=Message.Status.QUEUED,
            idempotency_key=key,
            bulk=True,
            timestamp=now,
        )
        rows.append((recipient, message))
    created = Message.objects.bulk_create([m for _, m in rows])
    for (recipient, _), message in zip(rows, created, strict=True):
        recipient.message, recipient.status = message, Recipient.Status.QUEUED
    touched = list({m.conversation_id: m.conversation for m in created}.values())
    for conversation in touched:
        conversation.last_message_at = now
        conversation.updated_at = now
    Conversation.objects.bulk_update(touched, ["last_message_at", "updated_at"])
    Contact.objects.filter(pk__in=[c.contact_id for c in touched]).update(last_outbound_at=now)
    events.publish_events(
        [events.message_created_event(m) for m in created] + [events.conversation_event(c) for c in touched]
    )
    for recipient in pending:
        recipient.updated_at = now
    Recipient.objects.bulk_update(
        pending, ["message", "status", "skip_reason", "error_title", "updated_at"], batch_size=500
    )
    if created:
        # The Cloud API's delivery sends a number's queued bulk messages in batches, one job per number:
        # one hand-over per chunk is enough there; another provider gets each message.
        per_number = channel.provider == Channel.Provider.CLOUD_API
        for message in created[:1] if per_number else created:
            enqueue_send(message)
    return len(created)


def _dispatch_one(campaign: Campaign, recipient: Recipient, *, marketing: bool, allow_unknown: bool) -> int:
    key = f"campaign:{campaign.pk}:{recipient.contact_id}"
    existing = Message.objects.filter(idempotency_key=key).first()
    if existing is not None:
        # Queued before a dispatcher was killed: link it, never send twice.
        recipient.message = existing
        recipient.status = Recipient.Status.QUEUED
        recipient.save(update_fields=["message", "status", "updated_at"])
        return 0
    try:
        with transaction.atomic():
            contact = Contact.objects.select_for_update().get(pk=recipient.contact_id)
            # Consent as it is now: a contact who opted out since the start is skipped.
            reason = skip_reason(contact, marketing=marketing, allow_unknown=allow_unknown)
            if reason:
                raise MessageRejected(reason, "skipped")
            conversation = (
                Conversation.objects.select_for_update()
                .filter(contact=contact, channel_id=campaign.channel_id)
                .order_by("-id")
                .first()
            )
            if conversation is None:
                # A campaign opens no inbox work: the conversation starts resolved and a reply reopens it.
                conversation = Conversation.objects.create(
                    contact=contact,
                    channel_id=campaign.channel_id,
                    status=Conversation.Status.RESOLVED,
                    resolved_at=timezone.now(),
                )
            conversation.contact = contact
            message = send_reply(
                conversation=conversation,
                draft=Draft(
                    kind="template",
                    template=campaign.template_id or campaign.template_name,
                    language=campaign.language,
                    parameters=recipient.parameters,
                    idempotency_key=key,
                    bulk=True,
                ),
                automated=True,
                locked=True,
            )
    except MessageRejected as exc:
        if exc.code in SKIP_CODES or exc.message == "skipped":
            recipient.status = Recipient.Status.SKIPPED
            recipient.skip_reason = SKIP_CODES.get(exc.code, exc.code)
        else:
            recipient.status = Recipient.Status.FAILED
            recipient.skip_reason = exc.code[:40]
            recipient.error_title = exc.message[:300]
        recipient.save(update_fields=["status", "skip_reason", "error_title", "updated_at"])
        return 0
    recipient.message = message
    recipient.status = Recipient.Status.QUEUED
    recipient.save(update_fields=["message", "status", "updated_at"])
    return 1


# --- progress -------------------------------------------------------------------------------------------

_FOLLOW = [
    (Recipient.Status.SENT, [Recipient.Status.QUEUED], [Message.Status.SENT]),
    (
        Recipient.Status.DELIVERED,
        [Recipient.Status.QUEUED, Recipient.Status.SENT],
        [Message.Status.DELIVERED],
    ),
    (
        Recipient.Status.READ,
        [Recipient.Status.QUEUED, Recipient.Status.SENT, Recipient.Status.DELIVERED],
        [Message.Status.READ, Message.Status.PLAYED],
    ),
]


def refresh_progress(*, campaign: Campaign) -> dict[str, int]:
    """Recipients follow their messages' statuses in a few set-wise UPDATEs (statuses arrive in bulk:
    no per-status hook), replies are found with one EXISTS, counters are one aggregate. Completes a
    running campaign when no recipient is pending or queued."""
    mine = Recipient.objects.filter(campaign=campaign, message__isnull=False)
    for status, before, message_statuses in _FOLLOW:
        mine.filter(status__in=before, message__status__in=message_statuses).update(status=status)
    failed = Message.objects.filter(pk=OuterRef("message_id"))
    mine.filter(status=Recipient.Status.QUEUED, message__status=Message.Status.FAILED).exclude(
        message__error_title__in=[HELD_TITLE, CANCELLED_TITLE]
    ).update(
        status=Recipient.Status.FAILED,
        error_code=Subquery(failed.values("error_code")[:1]),
        error_title=Subquery(failed.values("error_title")[:1]),
    )
    # Meta stamps an inbound message to the second, ours to the microsecond: a reply in the same second as
    # the campaign message counts (compared with its time truncated to the second).
    later_inbound = Message.objects.filter(
        conversation_id=OuterRef("message__conversation_id"),
        direction=Message.Direction.INBOUND,
        timestamp__gte=TruncSecond(ExpressionWrapper(OuterRef("message__timestamp"), DateTimeField())),
    )
    mine.filter(status__in=[Recipient.Status.SENT, Recipient.Status.DELIVERED, Recipient.Status.READ]).filter(
        Exists(later_inbound)
    ).update(status=Recipient.Status.REPLIED)
    counts = counters(campaign)
    if (
        counts["pending"] == 0
        and counts["queued"] == 0
        and Campaign.objects.filter(pk=campaign.pk, status=Campaign.Status.RUNNING).update(
            status=Campaign.Status.COMPLETED, finished_at=timezone.now(), waiting=""
        )
    ):
        campaign.status = Campaign.Status.COMPLETED
        outgoing_events.emit("campaign.finished", {"campaign": campaign.pk})
    publish_progress(campaign, counts)
    return counts


def counters(campaign: Campaign) -> dict[str, int]:
    counts = {name: 0 for name in COUNTED}
    for row in Recipient.objects.filter(campaign=campaign).values("status").annotate(n=Count("id")):
        counts[row["status"]] = row["n"]
    counts["total"] = sum(counts[s] for s in Recipient.Status.values)
    return counts


def publish_progress(campaign: Campaign, counts: dict[str, int] | None = None) -> None:
    """One event to the workspace's owners, admins and supervisors (the campaign page's audience)."""
    counts = counts if counts is not None else counters(campaign)
    events.publish(
        {
            "type": "campaign.progress",
            "campaign": campaign.pk,
            "status": campaign.status,
            "pause_reason": campaign.pause_reason,
            "waiting": campaign.waiting,
            **counts,
        },
        group=everything_group(connection.schema_name),
    )


def run_due_campaigns(*, now: dt.datetime | None = None) -> list[int]:
    """The scheduler's tick: due scheduled campaigns start; every running campaign's progress is
    refreshed and its dispatcher kicked when recipients wait (a killed dispatcher is replaced here)."""
    now = now or timezone.now()
    Campaign.objects.filter(status=Campaign.Status.SCHEDULED, schedule_at__lte=now).update(
        status=Campaign.Status.RUNNING
    )
    kicked = []
    # Statuses and replies keep arriving after the last send: finished campaigns follow them for a while.
    followed = Campaign.objects.filter(
        Q(status__in=[Campaign.Status.RUNNING, Campaign.Status.PAUSED])
        | Q(status=Campaign.Status.COMPLETED, finished_at__gte=now - FOLLOW_AFTER_COMPLETION)
    )
    for campaign in followed:
        counts = refresh_progress(campaign=campaign)
        if campaign.status == Campaign.Status.RUNNING and counts["pending"]:
            kicked.append(campaign.pk)
    return kicked
