"""What a webhook POST must pass before it is stored: size, signature, JSON shape. Shared by the ASGI
ingress (whatsapp/ingress.py, the production path) and the Django view (whatsapp/views.py)."""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass

from whatsapp import metrics, parsing


@dataclass(frozen=True)
class Accepted:
    body: bytes
    phone_number_ids: list[str]


@dataclass(frozen=True)
class Rejected:
    status: int
    code: str
    message: str

    def json(self) -> bytes:
        return json.dumps({"error": {"code": self.code, "message": self.message, "details": {}}}).encode()


def too_large(limit: int) -> Rejected:
    return Rejected(413, "payload_too_large", f"Webhook bodies are at most {limit} bytes.")


def signature_is_valid(body: bytes, header: str, secrets: list[str]) -> bool:
    """X-Hub-Signature-256: sha256=HMAC(app secret, raw body), compared in constant time with every
    candidate secret (the global one and numbers' overrides) before the body is parsed."""
    if not header.startswith("sha256="):
        return False
    provided = header.removeprefix("sha256=").strip().lower()
    valid = False
    for secret in secrets:
        expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        valid = hmac.compare_digest(expected, provided) or valid
    return valid


def check_webhook(*, body: bytes, signature: str, secrets: list[str], limit: int) -> Accepted | Rejected:
    """`body` was read up to limit + 1 bytes, so a longer one is detected without reading it all."""
    if len(body) > limit:
        return too_large(limit)
    if not signature:
        return Rejected(403, "missing_signature", "X-Hub-Signature-256 is required.")
    if not signature_is_valid(body, signature, secrets):
        return Rejected(403, "invalid_signature", "The signature does not match the body.")
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return Rejected(400, "invalid_json", "The body is not valid JSON.")
    if not isinstance(data, dict) or data.get("object") != "whatsapp_business_account":
        return Rejected(400, "not_whatsapp", "Not a WhatsApp Business Account webhook.")
    return Accepted(body=body, phone_number_ids=parsing.phone_number_ids(data))


def count(result: str, *, seconds: float | None = None) -> None:
    metrics.WEBHOOK_REQUESTS.labels(result=result).inc()
    if seconds is not None:
        metrics.WEBHOOK_ACK_SECONDS.observe(seconds)
