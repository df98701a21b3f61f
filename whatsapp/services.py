"""Writes of the WhatsApp channel: numbers, webhook events and their processing, media, templates."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import mimetypes
import time
import uuid
from dataclasses import dataclass
from typing import Any

import psycopg
import structlog
from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django_tenants.utils import get_public_schema_name, schema_context

from conversations import bot, events
from conversations.models import Message
from conversations.services import (
    InboundDraft,
    apply_message_status,
    set_reaction,
    store_inbound_messages,
)
from crm.models import Agent, Contact
from crm.phones import InvalidPhoneNumber, normalize_phone
from tenants.db import connection, update_rows
from tenants.models import NumberRoute, Tenant, WebhookEvent
from whatsapp import crypto, metrics, parsing
from whatsapp.client import GraphClient, GraphError, RetryClass, client_for, is_graph_id
from whatsapp.models import MediaFile, MessageTemplate, PendingStatus, WhatsAppChannel
from whatsapp.webhook import Accepted, Secrets

log = structlog.get_logger("whatsapp")


class ChannelError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# ---------------------------------------------------------------------------------------------------
# Numbers
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VerifiedNumber:
    """What the Graph API confirmed with the tenant's token: the number is one of the account's."""

    phone_number_id: str
    waba_id: str
    display_phone: str = ""
    verified_name: str = ""


def verify_number(
    *, phone_number_id: str, waba_id: str, access_token: str, tenant: Tenant | None = None
) -> VerifiedNumber:
    """Before a number is routed to a tenant (its webhooks, its customers), Meta must confirm with the
    token the tenant gave that the token may read the number (GET /{phone_number_id}) and that the number
    is one of the account's (GET /{waba_id}/phone_numbers): anyone could type someone else's id. With
    `tenant`, a number routed to another tenant is then refused (number_taken): only someone who has
    shown the number is theirs learns that. Raises ChannelError: invalid_ids, missing_token,
    token_invalid, number_not_verified, graph_unavailable, number_taken."""
    phone_number_id, waba_id, access_token = phone_number_id.strip(), waba_id.strip(), access_token.strip()
    if not parsing.ID_RE.match(phone_number_id) or not parsing.ID_RE.match(waba_id):
        raise ChannelError("invalid_ids", "phone_number_id and waba_id are Meta's numeric ids.")
    if not access_token:
        raise ChannelError("missing_token", "An access token is required.")
    graph = GraphClient(access_token=access_token)
    try:
        number = graph.get_phone_number(phone_number_id=phone_number_id)
        listed = any(n.id == phone_number_id for n in graph.iter_phone_numbers(waba_id=waba_id))
    except GraphError as error:
        raise _verification_error(error, phone_number_id, waba_id) from error
    if number.id != phone_number_id or not listed:
        raise ChannelError(
            "number_not_verified",
            f"Meta does not list the number {phone_number_id} among the numbers of the WhatsApp Business "
            f"Account {waba_id}.",
        )
    if tenant is not None and _routed_elsewhere(phone_number_id, tenant):
        raise _number_taken(phone_number_id)
    return VerifiedNumber(
        phone_number_id=phone_number_id,
        waba_id=waba_id,
        display_phone=number.display_phone_number[:32],
        verified_name=number.verified_name[:100],
    )


def _verification_error(error: GraphError, phone_number_id: str, waba_id: str) -> ChannelError:
    if error.retry_class == RetryClass.AUTH:
        return ChannelError(
            "token_invalid",
            f"Meta refused the access token ({error.code or ''} {error.title}). Use a system-user token "
            "with the whatsapp_business_management permission for this account.",
        )
    if error.retry_class in (RetryClass.RETRY, RetryClass.UNCERTAIN):
        return ChannelError(
            "graph_unavailable", "Meta could not be reached to verify the number; try again in a moment."
        )
    return ChannelError(
        "number_not_verified",
        f"Meta does not confirm that this token may manage the number {phone_number_id} of the WhatsApp "
        f"Business Account {waba_id}.",
    )


def _routed_elsewhere(phone_number_id: str, tenant: Tenant) -> bool:
    return NumberRoute.objects.filter(phone_number_id=phone_number_id).exclude(tenant=tenant).exists()


def _number_taken(phone_number_id: str) -> ChannelError:
    # Nothing about the other workspace: the platform operator resolves it (public admin, number routes).
    return ChannelError(
        "number_taken",
        f"The number {phone_number_id} is connected to another workspace. Contact the platform operator, "
        "who can release it once you have shown it is yours.",
    )


def _check_may_set_app_secret(by_role: str | None) -> None:
    # A number's own secret verifies webhooks for it: the workspace owner's decision alone. None is the
    # platform operator (management commands).
    if by_role is not None and by_role != Agent.Role.OWNER:
        raise ChannelError("owner_only", "Only the workspace owner can set a number's app secret.")


def connect_channel(
    *,
    tenant: Tenant,
    phone_number_id: str,
    waba_id: str,
    access_token: str,
    display_phone: str = "",
    app_secret: str = "",
    name: str = "",
    throughput_cap: int | None = None,
    by_role: str | None = None,
    verified: VerifiedNumber | None = None,
) -> WhatsAppChannel:
    """Add (or re-authorise) a number of the tenant and route its webhooks to the tenant, once Meta has
    confirmed it is the account's (verify_number; `verified` is its result when the caller, the admin
    form, already asked). `by_role`: the acting user's role (None: the platform operator); only an
    owner gives a number its own app secret. An empty app_secret keeps the stored one."""
    phone_number_id, waba_id = phone_number_id.strip(), waba_id.strip()
    if app_secret:
        _check_may_set_app_secret(by_role)
    if verified is None or (verified.phone_number_id, verified.waba_id) != (phone_number_id, waba_id):
        # Outside the transaction: no row lock is held while Meta answers.
        verified = verify_number(
            phone_number_id=phone_number_id, waba_id=waba_id, access_token=access_token, tenant=tenant
        )
    channel = _store_channel(
        tenant=tenant,
        verified=verified,
        access_token=access_token.strip(),
        display_phone=display_phone,
        app_secret=app_secret,
        name=name,
        throughput_cap=throughput_cap,
    )
    _app_secrets_cache.clear()
    return channel


@transaction.atomic
def _store_channel(
    *,
    tenant: Tenant,
    verified: VerifiedNumber,
    access_token: str,
    display_phone: str,
    app_secret: str,
    name: str,
    throughput_cap: int | None,
) -> WhatsAppChannel:
    phone_number_id = verified.phone_number_id
    route = NumberRoute.objects.select_for_update().filter(phone_number_id=phone_number_id).first()
    if route is not None and route.tenant_id != tenant.pk:
        raise _number_taken(phone_number_id)
    display_phone = display_phone or verified.display_phone
    if display_phone:
        # Shown to staff only; Meta's test numbers (555 ranges) are not "valid" to phonenumbers.
        try:
            display_phone = normalize_phone(display_phone)
        except InvalidPhoneNumber:
            display_phone = display_phone.strip()[:32]
    route_fields: dict[str, Any] = {
        "tenant": tenant,
        "waba_id": verified.waba_id,
        "verified_at": timezone.now(),
    }
    if app_secret:
        route_fields["app_secret_encrypted"] = crypto.encrypt(app_secret)
    NumberRoute.objects.update_or_create(phone_number_id=phone_number_id, defaults=route_fields)
    with schema_context(tenant.schema_name):
        defaults: dict[str, Any] = {
            "waba_id": verified.waba_id,
            "access_token_encrypted": crypto.encrypt(access_token),
            "status": WhatsAppChannel.Status.ACTIVE,
            "status_reason": "",
        }
        if app_secret:
            defaults["app_secret_encrypted"] = route_fields["app_secret_encrypted"]
        if display_phone:
            defaults["display_phone"] = display_phone
        if name or verified.verified_name:
            defaults["name"] = name or verified.verified_name
        if throughput_cap:
            defaults["throughput_cap"] = throughput_cap
        channel, _ = WhatsAppChannel.objects.update_or_create(
            phone_number_id=phone_number_id, defaults=defaults
        )
    return channel


def number_is_verified(*, phone_number_id: str) -> bool:
    """Whether Meta confirmed this number for the current tenant (its route, in the public schema)."""
    return NumberRoute.objects.filter(
        phone_number_id=phone_number_id, tenant__schema_name=connection.schema_name, verified_at__isnull=False
    ).exists()


def update_channel_credentials(
    *,
    channel: WhatsAppChannel,
    access_token: str = "",
    app_secret: str | None = None,
    by_role: str | None = None,
) -> WhatsAppChannel:
    """From the tenant admin: a new token re-activates a number that needed re-authorisation. A new app
    secret (`by_role`: only an owner; None is the platform operator) only for a number Meta confirmed
    as the tenant's: the secret then verifies that number's webhooks, and only them."""
    if app_secret is not None:
        _check_may_set_app_secret(by_role)
        if not number_is_verified(phone_number_id=channel.phone_number_id):
            raise ChannelError(
                "number_not_verified",
                "Connect the number again (Meta confirms it is yours) before giving it its own app secret.",
            )
    fields = []
    if access_token.strip():
        channel.access_token_encrypted = crypto.encrypt(access_token.strip())
        channel.status = WhatsAppChannel.Status.ACTIVE
        channel.status_reason = ""
        fields += ["access_token_encrypted", "status", "status_reason"]
    if app_secret is not None:
        channel.app_secret_encrypted = crypto.encrypt(app_secret)
        fields.append("app_secret_encrypted")
        NumberRoute.objects.filter(phone_number_id=channel.phone_number_id).update(
            app_secret_encrypted=channel.app_secret_encrypted
        )
        _app_secrets_cache.clear()
    if fields:
        channel.save(update_fields=fields)
    return channel


def set_channel_status(*, channel: WhatsAppChannel, status: str, reason: str = "") -> None:
    """Auth errors → needs re-authorisation; account-level errors → disabled (and an alert in the logs)."""
    WhatsAppChannel.objects.filter(pk=channel.pk).update(status=status, status_reason=reason[:300])
    channel.status, channel.status_reason = status, reason[:300]
    level = log.error if status == WhatsAppChannel.Status.DISABLED else log.warning
    level("whatsapp_channel_status", phone_number_id=channel.phone_number_id, status=status, reason=reason)


# ---------------------------------------------------------------------------------------------------
# Webhook events
# ---------------------------------------------------------------------------------------------------

_app_secrets_cache: dict[str, tuple[float, dict[str, str]]] = {}


def cached_webhook_secrets() -> Secrets | None:
    """The secrets while the cache is fresh, else None (the async ingress then loads them in a thread)."""
    cached = _app_secrets_cache.get("own")
    if cached is None or cached[0] <= time.monotonic():
        return None
    return Secrets(platform=settings.WHATSAPP_APP_SECRET or "", own=cached[1])


def webhook_secrets() -> Secrets:
    """WHATSAPP_APP_SECRET, and each number's own secret where it has one (cached briefly: read on every
    POST; a number connected or changed in another process is seen within 30 s)."""
    cached = cached_webhook_secrets()
    if cached is not None:
        return cached
    own: dict[str, str] = {}
    for phone_number_id, token in NumberRoute.objects.exclude(app_secret_encrypted="").values_list(
        "phone_number_id", "app_secret_encrypted"
    ):
        try:
            secret = crypto.decrypt(token)
        except crypto.DecryptionError:
            # Its webhooks fail (403, Meta retries) until the key is fixed: never fall back to another secret.
            log.error("whatsapp_app_secret_unreadable", phone_number_id=phone_number_id)
            secret = ""
        own[phone_number_id] = secret
    _app_secrets_cache["own"] = (time.monotonic() + 30, own)
    return Secrets(platform=settings.WHATSAPP_APP_SECRET or "", own=own)


def record_webhook_events(*, accepted: list[Accepted]) -> list[int]:
    """Store verified bodies in one INSERT and one commit (the ingress batches concurrent POSTs). Plain
    SQL with binary parameters on the connection's own psycopg cursor: the ORM's bulk_create took a fifth
    of the web process's CPU at 200 webhooks a second, and Django's client-side binding then spent as
    much again quoting each body into the statement's text."""
    table = f"{connection.ops.quote_name(get_public_schema_name())}.{WebhookEvent._meta.db_table}"
    with transaction.atomic():
        connection.ensure_connection()
        with psycopg.Cursor(connection.connection) as cursor:
            # The body stays bytes (bytea takes anything); the ids are digits (parsing.targets), so nothing
            # a body holds can make this statement, and with it the whole batch, fail.
            cursor.execute(
                f"INSERT INTO {table} "
                "(received_at, body, phone_number_ids, waba_ids, status, attempts, error) "
                "SELECT now(), body, ids::jsonb, accounts::jsonb, %s, 0, '' "
                "FROM unnest(%s::bytea[], %s::text[], %s::text[]) AS t(body, ids, accounts) "
                "RETURNING id",
                [
                    WebhookEvent.Status.PENDING,
                    [a.body for a in accepted],
                    [json.dumps(a.phone_number_ids) for a in accepted],
                    [json.dumps(a.waba_ids) for a in accepted],
                ],
                binary=True,
            )
            return [row[0] for row in cursor.fetchall()]


MAX_EVENT_ATTEMPTS = 10


@dataclass
class RouteCache:
    """Routes and numbers looked up by the events of one call, or of a drain's rounds for a few seconds
    (they rarely change, and looking them up was two of a round's dozen statements). Only numbers found
    are kept: one connected a moment ago is routed at once."""

    def __init__(self) -> None:
        self.routes: dict[str, Tenant] = {}
        self.accounts: dict[str, list[Tenant]] = {}
        self.channels: dict[tuple[str, str], WhatsAppChannel] = {}

    def route(self, phone_number_id: str) -> Tenant | None:
        if phone_number_id not in self.routes:
            found = (
                NumberRoute.objects.select_related("tenant").filter(phone_number_id=phone_number_id).first()
            )
            if found is None:
                return None
            self.routes[phone_number_id] = found.tenant
        return self.routes[phone_number_id]

    def account(self, waba_id: str) -> list[Tenant]:
        """The tenants with a number of this WhatsApp Business Account (account-level webhooks)."""
        if waba_id not in self.accounts:
            found = {
                route.tenant_id: route.tenant
                for route in NumberRoute.objects.select_related("tenant").filter(waba_id=waba_id)
            }
            if not found:
                return []
            self.accounts[waba_id] = list(found.values())
        return self.accounts[waba_id]

    def channel(self, phone_number_id: str) -> WhatsAppChannel | None:
        key = (connection.schema_name, phone_number_id)
        if key not in self.channels:
            found = WhatsAppChannel.objects.filter(phone_number_id=phone_number_id).first()
            if found is None:
                return None
            self.channels[key] = found
        return self.channels[key]


@dataclass
class EventsOutcome:
    taken: list[int]  # the events this call processed or tried
    failed: list[int]


def process_webhook_events(
    *, event_ids: list[int], fresh: int = 0, cache: RouteCache | None = None
) -> EventsOutcome:
    """The given events, and up to `fresh` other pending events never tried, in one transaction: one
    commit and one schema switch per tenant instead of one per event. Events another worker holds are
    skipped (it is processing them). If anything fails, each event is processed again in a transaction
    of its own, so a bad event holds up none of the others. Safe to run twice: messages are keyed by
    wamid and statuses merge monotonically."""
    cache = cache or RouteCache()
    taken: list[int] = []
    try:
        with bot.settings_cached_for_batch(), transaction.atomic():
            events = _claim_events(event_ids, fresh)
            taken = [event.pk for event in events]
            _process_events(events, cache)
        return EventsOutcome(taken, [])
    except Exception as exc:
        connection.set_schema_to_public()
        if len(taken) == 1:
            log.exception("webhook_event_failed", event_id=taken[0])
            record_event_failure(event_id=taken[0], error=exc)
            return EventsOutcome(taken, taken)
        log.warning("webhook_batch_failed", events=len(taken), exc_info=True)
    taken = taken or event_ids
    cache = RouteCache()  # in case a number the drain cached changed and is what failed
    failed = []
    for event_id in taken:
        try:
            with bot.settings_cached_for_batch(), transaction.atomic():
                _process_events(_claim_events([event_id], 0), cache)
        except Exception as exc:
            connection.set_schema_to_public()
            log.exception("webhook_event_failed", event_id=event_id)
            record_event_failure(event_id=event_id, error=exc)
            failed.append(event_id)
    return EventsOutcome(taken, failed)


def _claim_events(event_ids: list[int], fresh: int) -> list[WebhookEvent]:
    """The events to process, locked for this transaction, oldest first. `fresh`: also up to that many
    pending events never tried (one that failed waits for its job's retry or the sweeper instead)."""
    # Plain SQL, like the round's other statements: the ORM compiled each for longer than it ran.
    return list(
        WebhookEvent.objects.raw(
            f"SELECT id, received_at, body, phone_number_ids, waba_ids FROM {WebhookEvent._meta.db_table} "
            "WHERE (id = ANY(%s::bigint[]) AND status IN (%s, %s)) OR (%s AND status = %s AND attempts = 0) "
            "ORDER BY received_at, id LIMIT %s FOR UPDATE SKIP LOCKED",
            [
                event_ids,
                WebhookEvent.Status.PENDING,
                WebhookEvent.Status.UNROUTED,
                fresh > 0,
                WebhookEvent.Status.PENDING,
                len(event_ids) + fresh,
            ],
        )
    )


def _process_events(events: list[WebhookEvent], cache: RouteCache) -> None:
    """Route each change to its tenant (by phone_number_id; account-level changes by the account, to
    every tenant with a number of it) and process it in the tenant's schema. Only changes the signature
    check accepted are processed: a number in the event's phone_number_ids (its own secret verified the
    body), an account in its waba_ids. Whatever else a body names is ignored, so a body signed with one
    number's secret can never touch another number's tenant."""
    missing: dict[int, set[str]] = {event.pk: set() for event in events}
    unreadable: dict[int, str] = {}
    tenant_of: dict[int, Tenant] = {}
    by_schema: dict[str, list[tuple[WebhookEvent, parsing.Change]]] = {}
    for event in events:
        try:
            changes = parsing.load_body(parsing.loads(bytes(event.body)))
        except (ValueError, RecursionError) as exc:
            # Only a row stored before bodies were checked: no retry would make it a webhook.
            log.warning("webhook_event_unreadable", event_id=event.pk, error=repr(exc)[:200])
            unreadable[event.pk] = f"Not a WhatsApp webhook body: {exc!r}"[:2000]
            continue
        numbers, accounts = set(_ids(event.phone_number_ids)), set(_ids(event.waba_ids))
        for change in changes:
            if change.phone_number_id:
                if change.phone_number_id not in numbers:
                    continue
                route = cache.route(change.phone_number_id)
                tenants = [route] if route is not None else []
                unknown = f"phone_number_id {change.phone_number_id}"
            elif change.waba_id and change.waba_id in accounts:
                tenants = cache.account(change.waba_id)
                unknown = f"WhatsApp Business Account {change.waba_id}"
            else:
                continue
            if not tenants:
                missing[event.pk].add(unknown)
            for routed_to in tenants:
                by_schema.setdefault(routed_to.schema_name, []).append((event, change))
                tenant_of.setdefault(event.pk, routed_to)
    for schema, items in by_schema.items():
        with schema_context(schema):
            known = []
            account_changes = []
            for event, change in items:
                if not change.phone_number_id:
                    account_changes.append(change)
                elif (channel := cache.channel(change.phone_number_id)) is None:
                    missing[event.pk].add(f"phone_number_id {change.phone_number_id}")
                else:
                    known.append((channel, change))
            process_changes(known)
            process_account_changes(account_changes)
    # One UPDATE per outcome (nearly always one): bulk_update's CASE per row and field cost more.
    outcomes: dict[tuple[str, int | None, str], list[int]] = {}
    for event in events:
        gaps = missing[event.pk]
        tenant = tenant_of.get(event.pk)
        if event.pk in unreadable:
            status, error = WebhookEvent.Status.FAILED, unreadable[event.pk]
        else:
            routed = tenant is not None or not gaps
            status = WebhookEvent.Status.PROCESSED if routed else WebhookEvent.Status.UNROUTED
            error = f"Unknown {', '.join(sorted(gaps))}" if gaps else ""
        outcomes.setdefault((status, tenant.pk if tenant else None, error), []).append(event.pk)
    now = timezone.now()
    with connection.cursor() as cursor:
        for (outcome, tenant_id, reason), ids in outcomes.items():
            cursor.execute(
                f"UPDATE {WebhookEvent._meta.db_table} SET attempts = attempts + 1, status = %s, "
                "tenant_id = %s, error = %s, processed_at = %s WHERE id = ANY(%s::bigint[])",
                [outcome, tenant_id, reason, now, ids],
            )


def _ids(stored: Any) -> list[str]:
    return [item for item in stored if isinstance(item, str)] if isinstance(stored, list) else []


def record_event_failure(*, event_id: int, error: BaseException) -> None:
    event = WebhookEvent.objects.filter(pk=event_id).first()
    if event is None:
        return
    event.attempts += 1
    event.error = repr(error)[:2000]
    if event.attempts >= MAX_EVENT_ATTEMPTS:
        event.status = WebhookEvent.Status.FAILED
    event.save(update_fields=["attempts", "error", "status"])


@dataclass(frozen=True)
class Replay:
    """What a replay did: queued, and which of the event's numbers or accounts are still unknown."""

    queued: bool
    unknown: list[str]


def replay_webhook_event(*, event: WebhookEvent) -> Replay:
    """From the platform admin: process the raw event again (idempotent: nothing is duplicated).

    An event none of whose numbers is known yet is left as it is: processing it again would only mark it
    "Unknown number" again, and the operator needs to hear which number to connect first."""
    targets = [f"phone_number_id {pnid}" for pnid in _ids(event.phone_number_ids)]
    targets += [f"WhatsApp Business Account {waba}" for waba in _ids(event.waba_ids)]
    unknown = [
        f"phone_number_id {pnid}" for pnid in _ids(event.phone_number_ids) if not _number_is_connected(pnid)
    ]
    unknown += [
        f"WhatsApp Business Account {waba}"
        for waba in _ids(event.waba_ids)
        if not NumberRoute.objects.filter(waba_id=waba).exists()
    ]
    if targets and len(unknown) == len(targets):
        return Replay(queued=False, unknown=unknown)
    WebhookEvent.objects.filter(pk=event.pk).update(status=WebhookEvent.Status.PENDING, error="")
    from whatsapp.actors import enqueue_webhook_events

    event_id = event.pk
    transaction.on_commit(lambda: enqueue_webhook_events(event_ids=[event_id]))
    return Replay(queued=True, unknown=unknown)


def _number_is_connected(phone_number_id: str) -> bool:
    """Routed to a workspace that has the number (a route whose number was removed routes nowhere)."""
    route = NumberRoute.objects.select_related("tenant").filter(phone_number_id=phone_number_id).first()
    if route is None:
        return False
    with schema_context(route.tenant.schema_name):
        return WhatsAppChannel.objects.filter(phone_number_id=phone_number_id).exists()


Inbound = tuple[WhatsAppChannel, parsing.InboundMessage, dict[str, parsing.Profile]]


def process_changes(changes: list[tuple[WhatsAppChannel, parsing.Change]]) -> None:
    """Changes of one tenant, in its schema. Row locks are taken in one order (senders' contacts, then
    messages by wamid) so two workers with overlapping batches wait instead of deadlocking; the sort is
    stable, so one sender's messages keep their order."""
    inbound = sorted(
        ((channel, message, change.profiles) for channel, change in changes for message in change.messages),
        key=lambda item: item[1].from_wa_id,
    )
    ingest_messages(inbound)
    statuses = sorted(
        ((channel, status) for channel, change in changes for status in change.statuses),
        key=lambda item: item[1].wamid,
    )
    for channel, status in statuses:
        ingest_status(channel=channel, update=status)
    for channel, change in changes:
        for error in change.errors:
            log.warning("whatsapp_webhook_error", phone_number_id=channel.phone_number_id, error=error)


def process_account_changes(changes: list[parsing.Change]) -> None:
    """Account-level changes of one tenant, in its schema: template status, category and quality update
    the account's templates; every other field (phone number quality, account updates, fields Meta adds
    later) is logged and otherwise ignored."""
    for change in changes:
        if change.template is not None:
            apply_template_update(waba_id=change.waba_id, update=change.template)
        else:
            log.info("whatsapp_account_change_ignored", field=change.field, waba_id=change.waba_id)


def apply_template_update(*, waba_id: str, update: parsing.TemplateUpdate) -> int:
    """The template by Meta's id, else by name and language (webhooks write en-US where the
    templates API writes en_US). One Meta has not been synced yet is left to the next template sync."""
    fields: dict[str, str] = {}
    if update.status:
        fields["status"] = update.status
        fields["status_reason"] = update.reason
    if update.category:
        fields["category"] = update.category
    if update.quality_score:
        fields["quality_score"] = update.quality_score
    if not fields:
        return 0
    match = Q(meta_id=update.template_id) if update.template_id else Q(pk__in=[])
    if update.name and update.language:
        match |= Q(name=update.name, language__in={update.language, update.language.replace("-", "_")})
    updated = MessageTemplate.objects.filter(match, waba_id=waba_id).update(**fields)
    if not updated:
        log.info("whatsapp_template_update_for_unknown_template", waba_id=waba_id, name=update.name)
    return updated


@dataclass
class _Sender:
    user_id: str
    name: str
    seen_at: dt.datetime


def _apply_sender(contact: Contact, wa_id: str, sender: _Sender) -> list[str]:
    """The profile name fills an empty name only; the customer-service window moves to the latest
    inbound message. Returns the fields that changed."""
    fields = []
    if not contact.wa_id:
        contact.wa_id = wa_id
        fields.append("wa_id")
    if sender.name and not contact.name:
        contact.name = sender.name[:200]
        fields.append("name")
    if sender.user_id and contact.whatsapp_user_id != sender.user_id:
        contact.whatsapp_user_id = sender.user_id[:64]
        fields.append("whatsapp_user_id")
    if contact.last_inbound_at is None or sender.seen_at > contact.last_inbound_at:
        contact.last_inbound_at = sender.seen_at
        fields.append("last_inbound_at")
    return fields


def upsert_contact(*, wa_id: str, user_id: str = "", name: str = "", seen_at: dt.datetime) -> Contact:
    """The contact by wa_id (else by E.164 phone, else a new one), locked for this transaction and
    updated from the sender's profile."""
    try:
        phone = normalize_phone(wa_id)
    except InvalidPhoneNumber:
        phone = "+" + "".join(ch for ch in wa_id if ch.isdigit())
    contact = (
        Contact.objects.select_for_update().filter(wa_id=wa_id).order_by("id").first()
        or Contact.objects.select_for_update().filter(phone=phone).first()
    )
    if contact is None:
        created, _ = Contact.objects.get_or_create(
            phone=phone, defaults={"wa_id": wa_id, "name": name[:200], "whatsapp_user_id": user_id[:64]}
        )
        contact = Contact.objects.select_for_update().get(pk=created.pk)
    fields = _apply_sender(contact, wa_id, _Sender(user_id, name, seen_at))
    if fields:
        contact.save(update_fields=[*fields, "updated_at"])
    return contact


def lock_senders(senders: dict[str, _Sender]) -> dict[str, Contact]:
    """The senders' contacts by wa_id, locked and updated. Known senders (the usual case) take one
    SELECT ... FOR UPDATE in id order and one UPDATE whatever their number; a new one goes through
    upsert_contact. The contact's row lock serialises every worker handling this sender, so the
    caller's wamid check is authoritative and a redelivery can't race its first delivery."""
    contacts: dict[str, Contact] = {}
    locked = Contact.objects.raw(
        f"SELECT * FROM {Contact._meta.db_table} WHERE wa_id = ANY(%s::text[]) ORDER BY id FOR UPDATE",
        [list(senders)],
    )
    for found in locked:
        contacts.setdefault(found.wa_id, found)
    changed: dict[str, Contact] = {}
    fields: set[str] = set()
    for wa_id, sender in sorted(senders.items()):
        contact = contacts.get(wa_id)
        if contact is None:
            contacts[wa_id] = upsert_contact(
                wa_id=wa_id, user_id=sender.user_id, name=sender.name, seen_at=sender.seen_at
            )
        elif changes := _apply_sender(contact, wa_id, sender):
            changed[wa_id] = contact
            fields.update(changes)
    if changed:
        now = timezone.now()
        for contact in changed.values():
            contact.updated_at = now
        update_rows(Contact, list(changed.values()), [*sorted(fields), "updated_at"])
    return contacts


def ingest_messages(inbound: list[Inbound]) -> list[Message]:
    """Inbound messages of one tenant, in its schema and transaction: senders upserted, redeliveries
    skipped, the new messages stored together (conversations.services.store_inbound_messages)."""
    valid: list[Inbound] = []
    senders: dict[str, _Sender] = {}
    for channel, message, profiles in inbound:
        if not message.wamid or not message.from_wa_id:
            log.warning("whatsapp_message_without_sender", wamid=message.wamid)
            continue
        valid.append((channel, message, profiles))
        profile = (
            profiles.get(message.from_wa_id) or profiles.get(message.from_user_id) or parsing.Profile("")
        )
        user_id = message.from_user_id or profile.user_id
        sender = senders.get(message.from_wa_id)
        if sender is None:
            senders[message.from_wa_id] = _Sender(user_id, profile.name, message.timestamp)
        else:
            sender.user_id = user_id or sender.user_id
            sender.name = sender.name or profile.name
            sender.seen_at = max(sender.seen_at, message.timestamp)
    if not valid:
        return []
    contacts = lock_senders(senders)
    existing: dict[str, Message] = {}
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT wamid FROM {Message._meta.db_table} WHERE wamid = ANY(%s::text[])",
            [[m.wamid for _, m, _ in valid]],
        )
        redelivered = [wamid for (wamid,) in cursor.fetchall()]
    if redelivered:  # rare: Meta delivered these before
        existing = {str(m.wamid): m for m in Message.objects.filter(wamid__in=redelivered)}
    new: list[tuple[WhatsAppChannel, parsing.InboundMessage]] = []
    seen: set[str] = set()
    for channel, message, _ in valid:
        if message.wamid in existing:
            # A redelivery: nothing is stored twice, but a media download that failed gets another try.
            _ensure_media_download(existing[message.wamid])
        elif message.wamid not in seen:  # the same message twice in one batch
            seen.add(message.wamid)
            new.append((channel, message))
    stored: list[Message] = []
    for chunk in _chunks_without_inner_references(new):
        stored += _store_chunk(chunk, contacts)
    return stored


def _chunks_without_inner_references(
    new: list[tuple[WhatsAppChannel, parsing.InboundMessage]],
) -> list[list[tuple[WhatsAppChannel, parsing.InboundMessage]]]:
    """A reply or reaction to a message of the same batch needs that message stored first: the batch
    is cut before it."""
    chunks: list[list[tuple[WhatsAppChannel, parsing.InboundMessage]]] = [[]]
    wamids: set[str] = set()
    for channel, message in new:
        target = message.reaction_target or message.context_wamid
        if target and target in wamids:
            chunks.append([])
            wamids = set()
        chunks[-1].append((channel, message))
        wamids.add(message.wamid)
    return [chunk for chunk in chunks if chunk]


def _store_chunk(
    chunk: list[tuple[WhatsAppChannel, parsing.InboundMessage]], contacts: dict[str, Contact]
) -> list[Message]:
    targets = {t for _, m in chunk if (t := m.reaction_target or m.context_wamid)}
    replied = {m.wamid: m for m in Message.objects.filter(wamid__in=targets)} if targets else {}
    drafts = [
        InboundDraft(
            contact=contacts[message.from_wa_id],
            channel=channel,
            wamid=message.wamid,
            type=message.type,
            text=message.text,
            payload=message.payload,
            preview=message.preview,
            timestamp=message.timestamp,
            is_forwarded=message.forwarded,
            reply_to=replied.get(message.reaction_target or message.context_wamid),
            error_code=message.error_code,
            error_title=message.error_title,
            error_details=message.error_details,
        )
        for channel, message in chunk
    ]
    stored = store_inbound_messages(drafts=drafts)
    for (channel, inbound), message in zip(chunk, stored, strict=True):
        metrics.MESSAGES.labels(direction="in", type=message.type, status="received").inc()
        if inbound.type == Message.Type.REACTION and message.reply_to is not None:
            set_reaction(target=message.reply_to, side="contact", emoji=inbound.reaction_emoji)
        if inbound.media is not None and inbound.media.media_id:
            media = MediaFile.objects.create(
                channel=channel,
                message=message,
                direction=MediaFile.Direction.INBOUND,
                kind=inbound.media.kind,
                media_id=inbound.media.media_id,
                mime_type=inbound.media.mime_type,
                sha256=inbound.media.sha256,
                filename=inbound.media.filename[:255],
            )
            _enqueue_media_download(media)
    return stored


def _enqueue_media_download(media: MediaFile) -> None:
    from whatsapp.actors import enqueue_media_download

    media_id, schema = media.pk, connection.schema_name
    transaction.on_commit(lambda: enqueue_media_download(media_file_id=media_id, schema=schema))


def _ensure_media_download(message: Message) -> None:
    media = MediaFile.objects.filter(message=message).exclude(status=MediaFile.Status.READY).first()
    if media is not None:
        if media.status == MediaFile.Status.FAILED:
            MediaFile.objects.filter(pk=media.pk).update(status=MediaFile.Status.PENDING, attempts=0)
        _enqueue_media_download(media)


def ingest_status(*, channel: WhatsAppChannel, update: parsing.StatusUpdate) -> Message | None:
    from whatsapp.delivery import INTERRUPTED_TITLE, OPAQUE_PREFIX, apply_pending_statuses

    if not update.wamid or not update.status:
        return None
    message = Message.objects.select_for_update().filter(wamid=update.wamid).first()
    if message is None and update.opaque.startswith(OPAQUE_PREFIX):
        # Meta accepted a send whose wamid we never stored (worker killed mid-send): adopt it now.
        pk = update.opaque.removeprefix(OPAQUE_PREFIX)
        message = (
            Message.objects.select_for_update()
            .filter(
                pk=int(pk) if pk.isdigit() else 0,
                direction=Message.Direction.OUTBOUND,
                wamid__isnull=True,
                conversation__channel=channel,
            )
            .first()
        )
        if message is not None:
            message.wamid = update.wamid
            message.send_started_at = None
            if message.status == Message.Status.FAILED and message.error_title == INTERRUPTED_TITLE:
                message.status = Message.Status.QUEUED
                message.error_title = ""
            message.save(update_fields=["wamid", "send_started_at", "status", "error_title"])
            apply_pending_statuses(message=message)
    if message is None:
        PendingStatus.objects.create(
            wamid=update.wamid, status=update.status, timestamp=update.timestamp, payload=update.raw
        )
        return None
    if apply_message_status(
        message=message,
        status=update.status,
        timestamp=update.timestamp,
        error_code=update.error_code,
        error_title=update.error_title,
        error_details=update.error_details,
    ):
        metrics.MESSAGES.labels(direction="out", type=message.type, status=update.status).inc()
    return message


# ---------------------------------------------------------------------------------------------------
# Media
# ---------------------------------------------------------------------------------------------------

MB = 1024 * 1024
# Cloud API limits per kind (bytes) and accepted MIME types (documents: any).
MEDIA_LIMITS = {
    "image": 5 * MB,
    "video": 16 * MB,
    "audio": 16 * MB,
    "document": 100 * MB,
    "sticker": 500 * 1024,
}
MEDIA_TYPES: dict[str, frozenset[str]] = {
    "image": frozenset({"image/jpeg", "image/png"}),
    "video": frozenset({"video/mp4", "video/3gpp"}),
    "audio": frozenset({"audio/aac", "audio/amr", "audio/mpeg", "audio/mp4", "audio/ogg"}),
    "sticker": frozenset({"image/webp"}),
}
MAX_MEDIA_ATTEMPTS = 8


class MediaRejected(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def check_media(*, kind: str, mime_type: str, size: int) -> None:
    if kind not in MEDIA_LIMITS:
        raise MediaRejected("invalid_media_kind", f"Media kind must be one of {sorted(MEDIA_LIMITS)}.")
    base_mime = mime_type.split(";")[0].strip().lower()
    allowed = MEDIA_TYPES.get(kind)
    if allowed is not None and base_mime not in allowed:
        raise MediaRejected(
            "unsupported_media_type", f"A WhatsApp {kind} must be one of {', '.join(sorted(allowed))}."
        )
    if size > MEDIA_LIMITS[kind]:
        raise MediaRejected(
            "media_too_large",
            f"A WhatsApp {kind} is at most {MEDIA_LIMITS[kind] // 1024} KB; this is {size // 1024} KB.",
        )


def kind_for_mime(mime_type: str) -> str:
    base = mime_type.split(";")[0].strip().lower()
    for kind, types in MEDIA_TYPES.items():
        if base in types and kind != "sticker":
            return kind
    return "document"


def _storage_path(kind: str, mime_type: str, filename: str = "") -> str:
    ext = mimetypes.guess_extension(mime_type.split(";")[0].strip()) or (
        "." + filename.rsplit(".", 1)[-1] if "." in filename else ""
    )
    now = timezone.now()
    return f"whatsapp/{connection.schema_name}/{kind}/{now:%Y/%m}/{uuid.uuid4().hex}{ext[:10]}"


def _sha_matches(content: bytes, expected: str) -> bool:
    if not expected:
        return True
    digest = hashlib.sha256(content).digest()
    return expected.lower() == digest.hex() or expected.rstrip("=") == base64.b64encode(
        digest
    ).decode().rstrip("=")


def download_media(*, media_file_id: int) -> str:
    """media id → URL (expires in 5 minutes) → bytes with the token → checked → tenant-scoped storage.
    Retryable failures raise (the actor retries); final ones mark the file failed with a reason."""
    media = MediaFile.objects.select_related("channel", "message").filter(pk=media_file_id).first()
    if media is None or media.status == MediaFile.Status.READY:
        return "skip"
    MediaFile.objects.filter(pk=media.pk).update(attempts=media.attempts + 1)
    if not is_graph_id(media.media_id):
        # The id comes from a webhook body: a URL or path there must never become a request with the token.
        _media_failed(media, "The message's media id is not a WhatsApp media id; nothing was downloaded.")
        metrics.MEDIA_DOWNLOADS.labels(result="rejected").inc()
        return "rejected"
    client = client_for(media.channel)
    try:
        info = client.get_media(media_id=media.media_id)
        mime = info.mime_type or media.mime_type
        check_media(kind=media.kind, mime_type=mime, size=info.file_size or 0)
        content = client.download(url=info.url, max_bytes=MEDIA_LIMITS[media.kind])
        if not (_sha_matches(content, info.sha256) and _sha_matches(content, media.sha256)):
            raise GraphError(
                code=None, title="Downloaded media does not match its sha256.", retry_class=RetryClass.RETRY
            )
    except MediaRejected as rejected:
        _media_failed(media, rejected.message)
        metrics.MEDIA_DOWNLOADS.labels(result="rejected").inc()
        return "rejected"
    except GraphError as error:
        if error.retry_class == RetryClass.RETRY and media.attempts + 1 < MAX_MEDIA_ATTEMPTS:
            metrics.MEDIA_DOWNLOADS.labels(result="retry").inc()
            raise
        _media_failed(media, f"{error.code or ''} {error.title}".strip())
        metrics.MEDIA_DOWNLOADS.labels(result="failed").inc()
        return "failed"
    path = default_storage.save(_storage_path(media.kind, mime, media.filename), ContentFile(content))
    MediaFile.objects.filter(pk=media.pk).update(
        file=path,
        mime_type=mime,
        size=len(content),
        sha256=hashlib.sha256(content).hexdigest(),
        status=MediaFile.Status.READY,
        error="",
    )
    metrics.MEDIA_DOWNLOADS.labels(result="ok").inc()
    if media.message is not None:
        events.message_updated(media.message)
    return "ready"


def _media_failed(media: MediaFile, reason: str) -> None:
    MediaFile.objects.filter(pk=media.pk).update(status=MediaFile.Status.FAILED, error=reason[:300])
    if media.message is not None:
        events.message_updated(media.message)


@transaction.atomic
def retry_media_download(*, media: MediaFile) -> MediaFile:
    """A person's "Retry download" of an inbound file whose download failed (or whose job was lost): a
    fresh set of attempts. The thread hears about it (downloading…) and again when the job ends."""
    if media.direction != MediaFile.Direction.INBOUND or not media.can_retry_download:
        raise MediaRejected("not_retryable", "This file is not waiting for a download that failed.")
    MediaFile.objects.filter(pk=media.pk).update(status=MediaFile.Status.PENDING, attempts=0, error="")
    media.status, media.attempts, media.error = MediaFile.Status.PENDING, 0, ""
    _enqueue_media_download(media)
    if media.message is not None:
        events.message_updated(media.message)
    return media


def upload_media(
    *, channel: WhatsAppChannel, content: bytes, filename: str, mime_type: str, kind: str = ""
) -> MediaFile:
    """Check Cloud API limits, upload to Meta (media id) and keep a copy for the inbox."""
    kind = kind or kind_for_mime(mime_type)
    check_media(kind=kind, mime_type=mime_type, size=len(content))
    if not channel.is_active:
        raise MediaRejected("channel_inactive", channel.unavailable_reason)
    try:
        media_id = client_for(channel).upload_media(
            phone_number_id=channel.phone_number_id, content=content, mime_type=mime_type, filename=filename
        )
    except GraphError as error:
        raise MediaRejected("upload_failed", f"WhatsApp refused the upload: {error.title}") from error
    path = default_storage.save(_storage_path(kind, mime_type, filename), ContentFile(content))
    return MediaFile.objects.create(
        channel=channel,
        direction=MediaFile.Direction.OUTBOUND,
        kind=kind,
        media_id=media_id,
        file=path,
        filename=filename[:255],
        mime_type=mime_type,
        size=len(content),
        sha256=hashlib.sha256(content).hexdigest(),
        status=MediaFile.Status.READY,
    )


# ---------------------------------------------------------------------------------------------------
# Templates
# ---------------------------------------------------------------------------------------------------


@transaction.atomic
def sync_templates(*, channel: WhatsAppChannel) -> int:
    """Every page of the account's templates; templates Meta no longer lists are removed."""
    now = timezone.now()
    seen: list[int] = []
    for item in client_for(channel).iter_templates(waba_id=channel.waba_id):
        template, _ = MessageTemplate.objects.update_or_create(
            waba_id=channel.waba_id,
            name=str(item.get("name", ""))[:512],
            language=str(item.get("language", ""))[:15],
            defaults={
                "meta_id": str(item.get("id", "")),
                "category": str(item.get("category", ""))[:30],
                "status": str(item.get("status", ""))[:30],
                "parameter_format": str(item.get("parameter_format") or "POSITIONAL")[:20],
                "components": item.get("components") or [],
                "synced_at": now,
            },
        )
        seen.append(template.pk)
    MessageTemplate.objects.filter(waba_id=channel.waba_id).exclude(pk__in=seen).delete()
    WhatsAppChannel.objects.filter(pk=channel.pk).update(templates_synced_at=now)
    return len(seen)
