"""Outgoing webhooks: endpoints, the events they receive, signed deliveries retried for 24 hours.

An event reaches `enqueue_events` (registered with crm.outgoing_events) after the transaction that caused
it commits. It finds the active endpoints subscribed to the event types in the batch (one query; nothing
more happens when there are none), freezes one body per event, writes one WebhookDelivery per (event,
endpoint) and queues one job for each: the request that caused the event never waits for a receiver.

A delivery is a POST of the frozen body with `X-Webhook-Signature: sha256=<hex HMAC-SHA256 of the raw body
with the endpoint's secret>`, `X-Webhook-Timestamp` (this attempt's Unix time), `X-Webhook-Id` (the event's
id: the same in every retry and redelivery, for receivers to drop duplicates) and `X-Webhook-Event`. A 2xx
answer succeeds; anything else is retried after RETRY_DELAYS (1 min, then each 4 times longer: the last
retry comes 22 h 45 min after the first attempt, inside 24 h); a URL or address that the SSRF policy refuses
is not (retrying cannot help). Every POST goes through core.fetch, which checks the address again at
connect time.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
import uuid
from collections.abc import Iterable, Sequence
from datetime import timedelta
from typing import Any

import structlog
from django.apps import apps
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from core import audit
from core.crypto import decrypt, encrypt
from core.errors import ServiceError
from core.fetch import FetchError, FetchRefused, check_url, fetch
from crm.outgoing_events import EVENTS
from integrations.models import WebhookDelivery, WebhookEndpoint
from tenants.db import connection

log = structlog.get_logger("webhooks")

# Seconds to wait before each retry: attempt n+1 comes RETRY_DELAYS[n - 1] after attempt n.
RETRY_DELAYS: tuple[int, ...] = tuple(60 * 4**n for n in range(6))
MAX_ATTEMPTS = len(RETRY_DELAYS) + 1
# Consecutive deliveries that failed after all their retries before the endpoint is switched off.
DISABLE_AFTER_FAILURES = 50
MAX_ENDPOINTS = 20
REQUEST_TIMEOUT = 10.0
RESPONSE_EXCERPT = 1000
SIGNATURE_HEADER = "X-Webhook-Signature"
INTERNAL_MESSAGE_TYPES = frozenset({"system", "note"})


def retry_schedule() -> list[timedelta]:
    """When each retry comes, counted from the first attempt."""
    total, schedule = 0, []
    for delay in RETRY_DELAYS:
        total += delay
        schedule.append(timedelta(seconds=total))
    return schedule


def sign(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(body: bytes, secret: str, signature: str) -> bool:
    """What a receiver does (documented in the API): constant-time comparison of the header."""
    return hmac.compare_digest(sign(body, secret), signature)


# -- endpoints ---------------------------------------------------------------------------------------------


def _clean_url(url: str) -> str:
    url = (url or "").strip()
    if not url or len(url) > 2000:
        raise ServiceError("invalid_url", "Enter a URL of at most 2000 characters.", field="url")
    try:
        check_url(url, resolve_host=True)
    except FetchRefused as exc:
        raise ServiceError(exc.code, exc.message, field="url") from exc
    return url


def _clean_events(events: Iterable[str]) -> list[str]:
    wanted = list(dict.fromkeys(str(e) for e in events))
    unknown = [e for e in wanted if e not in EVENTS]
    if not wanted or unknown:
        raise ServiceError(
            "invalid_events",
            "Choose one or more of: " + ", ".join(EVENTS) + ".",
            field="events",
            details={"events": [f"Unknown event: {e}" for e in unknown] or ["Choose at least one."]},
        )
    return [e for e in EVENTS if e in wanted]


def _new_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


@transaction.atomic
def create_endpoint(
    *, url: str, events: Sequence[str], description: str = "", created_by: Any = None
) -> tuple[WebhookEndpoint, str]:
    """The endpoint and its secret: the only time the plain secret is available."""
    if WebhookEndpoint.objects.count() >= MAX_ENDPOINTS:
        raise ServiceError("too_many_endpoints", f"A workspace has at most {MAX_ENDPOINTS} endpoints.")
    secret = _new_secret()
    endpoint = WebhookEndpoint.objects.create(
        url=_clean_url(url),
        events=_clean_events(events),
        description=(description or "").strip()[:200],
        secret_encrypted=encrypt(secret),
        created_by=created_by,
    )
    forget_endpoints()
    transaction.on_commit(forget_endpoints)
    audit.record(
        "webhook.created", target=("webhook", endpoint.pk, endpoint.url), details={"events": endpoint.events}
    )
    return endpoint, secret


@transaction.atomic
def update_endpoint(
    *,
    endpoint: WebhookEndpoint,
    url: str | None = None,
    events: Sequence[str] | None = None,
    description: str | None = None,
    active: bool | None = None,
) -> WebhookEndpoint:
    if url is not None:
        endpoint.url = _clean_url(url)
    if events is not None:
        endpoint.events = _clean_events(events)
    if description is not None:
        endpoint.description = description.strip()[:200]
    if active is not None:
        if active and not endpoint.active:
            endpoint.failure_streak, endpoint.disabled_reason = 0, ""
        endpoint.active = active
    endpoint.save()
    forget_endpoints()
    transaction.on_commit(forget_endpoints)
    audit.record(
        "webhook.updated",
        target=("webhook", endpoint.pk, endpoint.url),
        details={"events": endpoint.events, "active": endpoint.active},
    )
    return endpoint


def delete_endpoint(*, endpoint: WebhookEndpoint) -> None:
    audit.record("webhook.deleted", target=("webhook", endpoint.pk, endpoint.url))
    endpoint.delete()
    forget_endpoints()
    transaction.on_commit(forget_endpoints)


# -- events ------------------------------------------------------------------------------------------------


def _contact(contact: Any) -> dict[str, Any]:
    return {
        "id": contact.pk,
        "phone": contact.phone,
        "name": contact.name,
        "email": contact.email,
        "wa_id": contact.wa_id,
        "marketing_consent": contact.marketing_consent,
        "blocked": contact.blocked,
        "created_at": contact.created_at,
        "updated_at": getattr(contact, "updated_at", None),
    }


def _conversation(conversation: Any) -> dict[str, Any]:
    return {
        "id": conversation.pk,
        "status": conversation.status,
        "assignee": conversation.assignee_id,
        "team": conversation.team_id,
        "channel": conversation.channel_id,
        "contact": _contact(conversation.contact),
        "created_at": conversation.created_at,
        "resolved_at": conversation.resolved_at,
    }


def _message(message: Any) -> dict[str, Any]:
    return {
        "id": message.pk,
        "conversation": message.conversation_id,
        "direction": message.direction,
        "type": message.type,
        "text": message.text,
        "status": message.status,
        "timestamp": message.timestamp,
        "sender": message.sender_id,
        "error_code": message.error_code,
        "error_title": message.error_title,
        "contact": _contact(message.conversation.contact),
    }


def _data(event: str, refs: dict[str, Any]) -> dict[str, Any] | None:
    """The event's `data`, as things are now (just after the commit); None when the row is gone."""
    kind = event.split(".")[0]
    if kind == "message":
        Message = apps.get_model("conversations", "Message")
        message = Message.objects.select_related("conversation__contact").filter(pk=refs["message"]).first()
        # System lines and private notes stay inside the workspace: they never reach the customer either.
        if message is None or message.type in INTERNAL_MESSAGE_TYPES:
            return None
        return _message(message)
    if kind == "conversation":
        Conversation = apps.get_model("conversations", "Conversation")
        conversation = Conversation.objects.select_related("contact").filter(pk=refs["conversation"]).first()
        return _conversation(conversation) if conversation else None
    if kind == "contact":
        Contact = apps.get_model("crm", "Contact")
        contact = Contact.objects.filter(pk=refs["contact"]).first()
        return _contact(contact) if contact else None
    if kind == "campaign":
        Campaign = apps.get_model("campaigns", "Campaign")
        campaign = Campaign.objects.filter(pk=refs["campaign"]).first()
        if campaign is None:
            return None
        return {
            "id": campaign.pk,
            "name": campaign.name,
            "status": campaign.status,
            "total": campaign.total,
            "started_at": campaign.started_at,
            "finished_at": campaign.finished_at,
        }
    return None


def _tenant() -> str:
    tenant = getattr(connection, "tenant", None)
    return getattr(tenant, "slug", None) or connection.schema_name


def enqueue_events(batch: list[tuple[str, dict[str, Any]]]) -> None:
    """crm.outgoing_events' sink (after commit). It must never break the caller: errors are logged."""
    try:
        # A savepoint: when the caller's transaction is still open (tests, nested atomic blocks), a failure
        # here must not abort it.
        with transaction.atomic():
            _enqueue_events(batch)
    except Exception as exc:
        log.exception(
            "webhook_enqueue_failed", events=len(batch), schema=connection.schema_name, error=repr(exc)
        )


# The active endpoints of each schema, per process, for ENDPOINTS_TTL seconds: every inbound message
# commits events, and a workspace without webhooks should not pay a query for each. A change in this
# process clears its copy at once; other processes see it within the TTL.
ENDPOINTS_TTL = 10.0
_endpoints: dict[str, tuple[float, list[tuple[int, frozenset[str]]]]] = {}


def _active_endpoints() -> list[tuple[int, frozenset[str]]]:
    schema = connection.schema_name
    cached = _endpoints.get(schema)
    if cached is not None and cached[0] > time.monotonic():
        return cached[1]
    rows = [
        (pk, frozenset(events))
        for pk, events in WebhookEndpoint.objects.filter(active=True).values_list("id", "events")
    ]
    _endpoints[schema] = (time.monotonic() + ENDPOINTS_TTL, rows)
    return rows


def forget_endpoints() -> None:
    _endpoints.pop(connection.schema_name, None)


def _enqueue_events(batch: list[tuple[str, dict[str, Any]]]) -> None:
    endpoints = _active_endpoints()
    if not endpoints:
        return
    from integrations.actors import deliver_webhook

    now = timezone.now()
    rows: list[WebhookDelivery] = []
    for event, refs in batch:
        targets = [pk for pk, events in endpoints if event in events]
        if not targets:
            continue
        data = _data(event, refs)
        if data is None:
            continue
        event_id = uuid.uuid4()
        envelope = {
            "id": str(event_id),
            "event": event,
            "created_at": now.isoformat(),
            "tenant": _tenant(),
            "data": data,
        }
        body = json.dumps(envelope, separators=(",", ":"), default=str, ensure_ascii=False)
        rows += [WebhookDelivery(endpoint_id=pk, event_id=event_id, event=event, body=body) for pk in targets]
    WebhookDelivery.objects.bulk_create(rows)
    for row in rows:
        deliver_webhook.send(row.pk, 0)


@transaction.atomic
def redeliver(*, delivery: WebhookDelivery) -> WebhookDelivery:
    """A new delivery of the same event (same id, body and signature), with its own retries."""
    if not delivery.endpoint.active:
        raise ServiceError("endpoint_disabled", "Switch the endpoint on before redelivering.", status=409)
    copy = WebhookDelivery.objects.create(
        endpoint=delivery.endpoint,
        event_id=delivery.event_id,
        event=delivery.event,
        body=delivery.body,
        redelivery_of=delivery,
    )
    from integrations.actors import deliver_webhook

    transaction.on_commit(lambda: deliver_webhook.send(copy.pk, 0))
    return copy


def send_test_event(*, endpoint: WebhookEndpoint) -> WebhookDelivery:
    """A `ping` delivery, to check the receiver's signature verification."""
    event_id = uuid.uuid4()
    body = json.dumps(
        {
            "id": str(event_id),
            "event": "ping",
            "created_at": timezone.now().isoformat(),
            "tenant": _tenant(),
            "data": {"endpoint": endpoint.pk},
        },
        separators=(",", ":"),
    )
    delivery = WebhookDelivery.objects.create(endpoint=endpoint, event_id=event_id, event="ping", body=body)
    from integrations.actors import deliver_webhook

    transaction.on_commit(lambda: deliver_webhook.send(delivery.pk, 0))
    return delivery


# -- delivering --------------------------------------------------------------------------------------------


def attempt_delivery(*, delivery_id: int, attempt: int) -> str:
    """Attempt number `attempt + 1` of a delivery. Claimed by a conditional UPDATE on the attempt count, so
    a job Dramatiq hands out twice sends once. Returns the outcome (for logs and tests)."""
    now = timezone.now()
    claimed = WebhookDelivery.objects.filter(
        pk=delivery_id,
        attempts=attempt,
        status__in=[WebhookDelivery.Status.PENDING, WebhookDelivery.Status.RETRYING],
    ).update(attempts=attempt + 1, last_attempt_at=now, next_retry_at=None)
    if not claimed:
        return "stale"
    delivery = WebhookDelivery.objects.select_related("endpoint").get(pk=delivery_id)
    endpoint = delivery.endpoint
    if not endpoint.active:
        _finish(delivery, WebhookDelivery.Status.FAILED, error="The endpoint is switched off.")
        return "endpoint_disabled"
    body = delivery.body.encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "wacrm-webhooks/1",
        SIGNATURE_HEADER: sign(body, decrypt(endpoint.secret_encrypted)),
        "X-Webhook-Timestamp": str(int(time.time())),
        "X-Webhook-Id": str(delivery.event_id),
        "X-Webhook-Event": delivery.event,
        "X-Webhook-Delivery": str(delivery.pk),
    }
    started = time.monotonic()
    try:
        response = fetch(
            "POST",
            endpoint.url,
            content=body,
            headers=headers,
            timeout=REQUEST_TIMEOUT,
            total_timeout=REQUEST_TIMEOUT * 2,
            max_bytes=256 * 1024,
        )
    except FetchRefused as exc:
        delivery.duration_ms = int((time.monotonic() - started) * 1000)
        _finish(delivery, WebhookDelivery.Status.FAILED, error=f"{exc.code}: {exc.message}")
        _count_failure(endpoint)
        return "refused"
    except FetchError as exc:
        delivery.duration_ms = int((time.monotonic() - started) * 1000)
        delivery.status_code = None
        delivery.response_excerpt = ""
        return _failed_attempt(delivery, error=f"{exc.code}: {exc.message}")
    delivery.duration_ms = int((time.monotonic() - started) * 1000)
    delivery.status_code = response.status_code
    delivery.response_excerpt = response.text[:RESPONSE_EXCERPT]
    if 200 <= response.status_code < 300:
        _finish(delivery, WebhookDelivery.Status.SUCCEEDED, error="")
        if endpoint.failure_streak:
            WebhookEndpoint.objects.filter(pk=endpoint.pk).update(failure_streak=0)
        return "succeeded"
    return _failed_attempt(delivery, error=f"HTTP {response.status_code}")


def _finish(delivery: WebhookDelivery, status: str, *, error: str) -> None:
    delivery.status = status
    delivery.error = error[:300]
    delivery.next_retry_at = None
    delivery.save(
        update_fields=["status", "error", "next_retry_at", "status_code", "response_excerpt", "duration_ms"]
    )


def _failed_attempt(delivery: WebhookDelivery, *, error: str) -> str:
    if delivery.attempts >= MAX_ATTEMPTS:
        _finish(delivery, WebhookDelivery.Status.FAILED, error=error)
        _count_failure(delivery.endpoint)
        return "failed"
    delay = RETRY_DELAYS[delivery.attempts - 1]
    delivery.status = WebhookDelivery.Status.RETRYING
    delivery.error = error[:300]
    delivery.next_retry_at = timezone.now() + timedelta(seconds=delay)
    delivery.save(
        update_fields=["status", "error", "next_retry_at", "status_code", "response_excerpt", "duration_ms"]
    )
    from integrations.actors import deliver_webhook

    deliver_webhook.send_with_options(args=(delivery.pk, delivery.attempts), delay=delay * 1000)
    return "retrying"


def _count_failure(endpoint: WebhookEndpoint) -> None:
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(failure_streak=F("failure_streak") + 1)
    WebhookEndpoint.objects.filter(
        pk=endpoint.pk, active=True, failure_streak__gte=DISABLE_AFTER_FAILURES
    ).update(
        active=False,
        disabled_reason=f"Switched off after {DISABLE_AFTER_FAILURES} deliveries in a row failed.",
    )
    forget_endpoints()
