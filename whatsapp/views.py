"""The Cloud API webhook: GET handshake; POST verified, stored durably, acknowledged, processed by a job."""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import structlog
from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.crypto import constant_time_compare
from django.views.decorators.csrf import csrf_exempt

from whatsapp import metrics, parsing
from whatsapp.actors import enqueue_webhook_event
from whatsapp.services import app_secrets, record_webhook_event

log = structlog.get_logger("whatsapp.webhook")


def _error(status: int, code: str, message: str) -> JsonResponse:
    metrics.WEBHOOK_REQUESTS.labels(result=code).inc()
    return JsonResponse({"error": {"code": code, "message": message, "details": {}}}, status=status)


def signature_is_valid(body: bytes, header: str) -> bool:
    """X-Hub-Signature-256: sha256=HMAC(app secret, raw body), compared in constant time with every
    candidate secret (the global one and numbers' overrides) before the body is parsed."""
    if not header.startswith("sha256="):
        return False
    provided = header.removeprefix("sha256=").strip().lower()
    valid = False
    for secret in app_secrets():
        expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        valid = hmac.compare_digest(expected, provided) or valid
    return valid


@csrf_exempt
def whatsapp_webhook(request: HttpRequest) -> HttpResponse:
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
        return _error(413, "payload_too_large", f"Webhook bodies are at most {limit} bytes.")
    # Read the stream directly: request.body would apply DATA_UPLOAD_MAX_MEMORY_SIZE (2.5 MB) instead.
    body = request.read(limit + 1)
    if len(body) > limit:
        return _error(413, "payload_too_large", f"Webhook bodies are at most {limit} bytes.")
    header = request.headers.get("X-Hub-Signature-256", "")
    if not header:
        return _error(403, "missing_signature", "X-Hub-Signature-256 is required.")
    if not signature_is_valid(body, header):
        return _error(403, "invalid_signature", "The signature does not match the body.")
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return _error(400, "invalid_json", "The body is not valid JSON.")
    if not isinstance(data, dict) or data.get("object") != "whatsapp_business_account":
        return _error(400, "not_whatsapp", "Not a WhatsApp Business Account webhook.")
    event = record_webhook_event(body=body, phone_number_ids=parsing.phone_number_ids(data))
    # The event is committed (autocommit): even if this enqueue fails, the sweeper processes it.
    enqueue_webhook_event(event_id=event.pk)
    metrics.WEBHOOK_REQUESTS.labels(result="accepted").inc()
    metrics.WEBHOOK_ACK_SECONDS.observe(time.perf_counter() - started)
    return JsonResponse({"status": "accepted", "event": event.pk})


def _handshake(request: HttpRequest) -> HttpResponse:
    mode = request.GET.get("hub.mode", "")
    token = request.GET.get("hub.verify_token", "")
    challenge = request.GET.get("hub.challenge", "")
    expected = settings.WHATSAPP_VERIFY_TOKEN or ""
    if mode == "subscribe" and expected and constant_time_compare(token, expected):
        metrics.WEBHOOK_REQUESTS.labels(result="verified").inc()
        return HttpResponse(challenge, content_type="text/plain")
    return _error(403, "verification_failed", "The verify token does not match.")
