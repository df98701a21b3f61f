"""POST /webhooks/waha/<webhook_id>/: a WAHA number's events, verified with that number's own key before
anything in the body is read, stored in its tenant's schema, acknowledged, processed by a job.

WAHA signs each body (waha.devlike.pro/docs/how-to/events/): `X-Webhook-Hmac` is the hex HMAC-SHA512 of
the raw body with the key set in the session's webhook config, `X-Webhook-Hmac-Algorithm` names the
algorithm ("sha512"; a missing or other one is refused). The key is the number's alone (tenants.WahaRoute,
encrypted at rest), so a body signed for one number can never be stored for another, whichever tenant
either belongs to. Unknown ids answer 404 and bad signatures 401, both with nothing stored.

Routes and their keys are cached per process for a few seconds (read on every POST). A key rotated or a
route removed in this process is forgotten at once (signals); one changed in another process is seen
within ROUTE_CACHE_SECONDS, and a signature that fails against a cached key is checked once more against
the database first, so a rotated key works from its first POST."""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from dataclasses import dataclass
from typing import Any

import structlog
from django.conf import settings
from django.db.models.signals import post_delete, post_save
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from core import crypto
from core.errors import error_body
from tenants.models import Tenant, WahaRoute
from waha import events

log = structlog.get_logger("waha.webhook")

ROUTE_CACHE_SECONDS = 5.0
ROUTE_CACHE_MAX = 10_000
# A signature that fails against a cached key re-reads the route at most this often per webhook id (so
# forged POSTs cannot turn every request into a database read).
RECHECK_SECONDS = 1.0
WEBHOOK_ID_RE = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
DIGEST_RE = re.compile(r"^[0-9a-f]{128}$")


@dataclass(frozen=True)
class Route:
    webhook_id: str
    schema: str
    active: bool
    key: str  # "" when unreadable: every signature fails
    loaded_at: float


_routes: dict[str, tuple[float, Route | None]] = {}


def forget_routes(**_: Any) -> None:
    """A route or its key changed (or a tenant was suspended): the next POST reads them again."""
    _routes.clear()


for _model in (WahaRoute, Tenant):
    for _signal in (post_save, post_delete):
        _signal.connect(forget_routes, sender=_model, dispatch_uid=f"waha_forget_routes_{_model.__name__}")


def _load(webhook_id: str) -> Route | None:
    found = WahaRoute.objects.select_related("tenant").filter(webhook_id=webhook_id).first()
    if found is None:
        return None
    try:
        key = crypto.decrypt(found.hmac_key_encrypted)
    except crypto.DecryptionError:
        # Its webhooks fail (401, WAHA retries) until the key is fixed: never fall back to anything.
        log.error("waha_webhook_key_unreadable", webhook_id=webhook_id)
        key = ""
    return Route(webhook_id, found.tenant.schema_name, found.tenant.is_active, key, time.monotonic())


def route_for(webhook_id: str, *, fresh: bool = False) -> Route | None:
    now = time.monotonic()
    cached = _routes.get(webhook_id)
    if not fresh and cached is not None and cached[0] > now:
        return cached[1]
    route = _load(webhook_id)
    if len(_routes) >= ROUTE_CACHE_MAX:  # unknown ids must not grow it without bound
        _routes.clear()
    _routes[webhook_id] = (now + ROUTE_CACHE_SECONDS, route)
    return route


@dataclass(frozen=True)
class Refused:
    status: int
    code: str
    message: str


def check_signature(*, body: bytes, signature: str, algorithm: str, key: str) -> Refused | None:
    """None when `signature` is the hex HMAC-SHA512 of `body` with `key` (constant-time)."""
    if not signature:
        return Refused(401, "missing_signature", "X-Webhook-Hmac is required.")
    if algorithm.strip().lower() != "sha512":
        return Refused(401, "unsupported_algorithm", "X-Webhook-Hmac-Algorithm must be sha512.")
    provided = signature.strip().lower()
    # Checked before compare_digest, which refuses non-ASCII text (a header is any latin-1).
    if not key or not DIGEST_RE.match(provided):
        return Refused(401, "invalid_signature", "The signature does not match the body.")
    expected = hmac.new(key.encode(), body, hashlib.sha512).hexdigest()
    if not hmac.compare_digest(expected, provided):
        return Refused(401, "invalid_signature", "The signature does not match the body.")
    return None


def _error(status: int, code: str, message: str) -> JsonResponse:
    return JsonResponse(error_body(code, message), status=status)


@csrf_exempt
def waha_webhook(request: HttpRequest, webhook_id: str) -> HttpResponse:
    if request.method != "POST":
        return _error(405, "method_not_allowed", "Use POST.")
    limit = settings.WAHA_WEBHOOK_MAX_BYTES
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > limit:
        return _error(413, "payload_too_large", f"Webhook bodies are at most {limit} bytes.")
    route = route_for(webhook_id) if WEBHOOK_ID_RE.match(webhook_id) else None
    if route is None:
        return _error(404, "unknown_webhook", "No WhatsApp number has this webhook address.")
    # Read the stream directly: request.body would apply DATA_UPLOAD_MAX_MEMORY_SIZE instead.
    body = request.read(limit + 1)
    if len(body) > limit:
        return _error(413, "payload_too_large", f"Webhook bodies are at most {limit} bytes.")
    signature = request.headers.get("X-Webhook-Hmac", "")
    algorithm = request.headers.get("X-Webhook-Hmac-Algorithm", "")
    refused = check_signature(body=body, signature=signature, algorithm=algorithm, key=route.key)
    stale = time.monotonic() - route.loaded_at > RECHECK_SECONDS
    if refused is not None and refused.code == "invalid_signature" and stale:
        # Perhaps the key was rotated in another process: the database decides.
        route = route_for(webhook_id, fresh=True)
        if route is None:
            return _error(404, "unknown_webhook", "No WhatsApp number has this webhook address.")
        refused = check_signature(body=body, signature=signature, algorithm=algorithm, key=route.key)
    if refused is not None:
        log.warning("waha_webhook_refused", webhook_id=webhook_id, code=refused.code)
        return _error(refused.status, refused.code, refused.message)
    event = events.record_event(
        schema=route.schema,
        webhook_id=webhook_id,
        body=body,
        request_id=request.headers.get("X-Webhook-Request-Id", ""),
    )
    # Committed: if the broker is down (or the tenant is suspended) the sweeper processes it later.
    if route.active and event.status == event.Status.PENDING:
        events.enqueue_events(event_ids=[event.pk], schema=route.schema)
    return JsonResponse({"status": "accepted", "event": event.pk})
