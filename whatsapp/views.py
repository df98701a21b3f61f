"""The Cloud API webhook: GET handshake; POST verified, stored durably, acknowledged, processed by a job."""

from __future__ import annotations

import time

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.crypto import constant_time_compare
from django.views.decorators.csrf import csrf_exempt

from core.errors import error_body
from whatsapp import webhook
from whatsapp.actors import wake_webhook_processing
from whatsapp.services import record_webhook_events, webhook_secrets


def _error(status: int, code: str, message: str) -> JsonResponse:
    webhook.count(code)
    return JsonResponse(error_body(code, message), status=status)


@csrf_exempt
def whatsapp_webhook(request: HttpRequest) -> HttpResponse:
    """The handshake, and POSTs that reach Django (the test client, a WSGI deployment): under ASGI,
    config.asgi routes POSTs to whatsapp.ingress first, which batches the writes."""
    if request.method == "GET":
        return _handshake(request)
    if request.method != "POST":
        return _error(405, "method_not_allowed", "Use GET for verification and POST for events.")
    started = time.perf_counter()
    limit = settings.WHATSAPP_WEBHOOK_MAX_BYTES
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > limit:
        rejected = webhook.too_large(limit)
        return _error(rejected.status, rejected.code, rejected.message)
    # Read the stream directly: request.body would apply DATA_UPLOAD_MAX_MEMORY_SIZE (2.5 MB) instead.
    verdict = webhook.check_webhook(
        body=request.read(limit + 1),
        signature=request.headers.get("X-Hub-Signature-256", ""),
        secrets=webhook_secrets(),
        limit=limit,
    )
    if isinstance(verdict, webhook.Rejected):
        return _error(verdict.status, verdict.code, verdict.message)
    [event_id] = record_webhook_events(accepted=[verdict])
    # The event is committed: even if this enqueue fails, the sweeper processes it.
    wake_webhook_processing()
    webhook.count("accepted", seconds=time.perf_counter() - started)
    return JsonResponse({"status": "accepted", "event": event_id})


def _handshake(request: HttpRequest) -> HttpResponse:
    mode = request.GET.get("hub.mode", "")
    token = request.GET.get("hub.verify_token", "")
    challenge = request.GET.get("hub.challenge", "")
    expected = settings.WHATSAPP_VERIFY_TOKEN or ""
    if mode == "subscribe" and expected and constant_time_compare(token, expected):
        webhook.count("verified")
        return HttpResponse(challenge, content_type="text/plain")
    return _error(403, "verification_failed", "The verify token does not match.")
