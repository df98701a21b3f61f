"""Webhook events: recorded as they arrive, then claimed, routed to their tenant and processed."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import psycopg
import structlog
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django_tenants.utils import get_public_schema_name, schema_context

from conversations import bot
from conversations.models import Channel
from tenants.db import connection
from tenants.models import NumberRoute, Tenant, WebhookEvent
from whatsapp import crypto, parsing
from whatsapp.services.coexistence import ingest_coexistence
from whatsapp.services.inbound import ingest_messages
from whatsapp.services.statuses import ingest_statuses
from whatsapp.services.templates import apply_template_update
from whatsapp.webhook import Accepted, Secrets

log = structlog.get_logger("whatsapp")


_app_secrets_cache: dict[str, tuple[float, dict[str, str]]] = {}


def forget_webhook_secrets() -> None:
    """A number's secret changed: the next POST reads the secrets again."""
    _app_secrets_cache.clear()


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
        self.channels: dict[tuple[str, str], Channel] = {}

    def route(self, phone_number_id: str) -> Tenant | None:
        if phone_number_id not in self.routes:
            # A suspended tenant's events wait unprocessed ("unknown number"); its restore requeues them.
            found = (
                NumberRoute.objects.select_related("tenant")
                .filter(phone_number_id=phone_number_id, tenant__is_active=True)
                .first()
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
                for route in NumberRoute.objects.select_related("tenant").filter(
                    waba_id=waba_id, tenant__is_active=True
                )
            }
            if not found:
                return []
            self.accounts[waba_id] = list(found.values())
        return self.accounts[waba_id]

    def channel(self, phone_number_id: str) -> Channel | None:
        key = (connection.schema_name, phone_number_id)
        if key not in self.channels:
            found = Channel.objects.filter(phone_number_id=phone_number_id).first()
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
        return Channel.objects.filter(phone_number_id=phone_number_id).exists()


def process_changes(changes: list[tuple[Channel, parsing.Change]]) -> None:
    """Changes of one tenant, in its schema. Row locks are taken in one order (senders' contacts, then
    messages by wamid) so two workers with overlapping batches wait instead of deadlocking; the sort is
    stable, so one sender's messages keep their order."""
    inbound = sorted(
        ((channel, message, change.profiles) for channel, change in changes for message in change.messages),
        key=lambda item: item[1].from_wa_id or item[1].from_user_id,
    )
    ingest_messages(inbound)
    statuses = sorted(
        ((channel, status) for channel, change in changes for status in change.statuses),
        key=lambda item: item[1].wamid,
    )
    ingest_statuses(statuses)
    for channel, change in changes:
        if change.coexistence is not None:
            ingest_coexistence(channel=channel, change=change.coexistence)
    for channel, change in changes:
        for error in change.errors:
            log.warning(
                "whatsapp_webhook_error",
                phone_number_id=channel.phone_number_id,
                error=error,
            )


def process_account_changes(changes: list[parsing.Change]) -> None:
    """Account-level changes of one tenant, in its schema: template status, category and quality update
    the account's templates; phone number quality updates the number's health (and alerts its owners);
    every other field (account updates, fields Meta adds later) is logged and otherwise ignored."""
    for change in changes:
        if change.template is not None:
            apply_template_update(waba_id=change.waba_id, update=change.template)
        elif change.number_quality is not None:
            from whatsapp.services.numbers import apply_number_quality_update

            apply_number_quality_update(waba_id=change.waba_id, update=change.number_quality)
        else:
            log.info(
                "whatsapp_account_change_ignored",
                field=change.field,
                waba_id=change.waba_id,
            )
