"""What a webhook POST must pass before it is stored: size, signature, JSON shape. Shared by the ASGI
ingress (whatsapp/ingress.py, the production path) and the Django view (whatsapp/views.py)."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

import structlog

from core.errors import error_body
from whatsapp import metrics, parsing

log = structlog.get_logger("whatsapp.webhook")

DIGEST_RE = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class Secrets:
    """The platform's app secret, and the numbers that have their own (phone_number_id → secret)."""

    platform: str
    own: Mapping[str, str] = field(default_factory=dict)

    def of(self, phone_number_id: str) -> str:
        """The one secret that may sign this number's entries; unknown numbers get the platform's."""
        return self.own.get(phone_number_id, self.platform)


@dataclass(frozen=True)
class Accepted:
    body: bytes
    # Only these are ever processed: numbers whose own secret verified the body, and the accounts of
    # account-level changes (verified with the platform's secret).
    phone_number_ids: list[str]
    waba_ids: list[str] = field(default_factory=list)
    rejected: int = 0  # changes whose own secret did not verify the body (ignored)


@dataclass(frozen=True)
class Rejected:
    status: int
    code: str
    message: str

    def json(self) -> bytes:
        return json.dumps(error_body(self.code, self.message)).encode()


def too_large(limit: int) -> Rejected:
    return Rejected(413, "payload_too_large", f"Webhook bodies are at most {limit} bytes.")


INVALID_SIGNATURE = Rejected(403, "invalid_signature", "The signature does not match the body.")


class _Verifier:
    """X-Hub-Signature-256: sha256=HMAC(app secret, raw body). Each distinct secret is hashed at most
    once per body and compared in constant time."""

    def __init__(self, body: bytes, header: str) -> None:
        self.body = body
        provided = header.removeprefix("sha256=").strip().lower() if header.startswith("sha256=") else ""
        # Checked before compare_digest, which refuses non-ASCII text (a header is any latin-1).
        self.provided = provided if DIGEST_RE.match(provided) else ""
        self.results: dict[str, bool] = {}

    def verifies(self, secret: str) -> bool:
        if not secret or not self.provided:
            return False
        if secret not in self.results:
            expected = hmac.new(secret.encode(), self.body, hashlib.sha256).hexdigest()
            self.results[secret] = hmac.compare_digest(expected, self.provided)
        return self.results[secret]


def check_webhook(*, body: bytes, signature: str, secrets: Secrets, limit: int) -> Accepted | Rejected:
    """A body is accepted for a number only when that number's own secret (its override, else the
    platform's) verified it; account-level changes (no phone_number_id: template and account
    updates) only with the platform's secret. Changes that fail are never stored for their number; a
    body none of whose changes verify is refused. Only when the platform's secret verified the body
    does its sender learn more than "invalid signature" (JSON and shape errors).

    `body` was read up to limit + 1 bytes, so a longer one is detected without reading it all."""
    if len(body) > limit:
        return too_large(limit)
    if not signature:
        return Rejected(403, "missing_signature", "X-Hub-Signature-256 is required.")
    verifier = _Verifier(body, signature)
    by_platform = verifier.verifies(secrets.platform)
    if not by_platform and not (secrets.own and verifier.provided):
        return INVALID_SIGNATURE  # no other secret could verify it: not worth parsing
    try:
        targets = parsing.targets(parsing.loads(body))
    except parsing.PayloadError as exc:
        return Rejected(400, exc.code, exc.message) if by_platform else INVALID_SIGNATURE
    except (ValueError, RecursionError):
        return (
            Rejected(400, "invalid_json", "The body is not valid JSON.") if by_platform else INVALID_SIGNATURE
        )
    numbers: list[str] = []
    accounts: list[str] = []
    refused: list[str] = []
    for target in targets:
        pnid = target.phone_number_id
        if pnid and verifier.verifies(secrets.of(pnid)):
            if pnid not in numbers:
                numbers.append(pnid)
        elif not pnid and by_platform:
            if target.waba_id and target.waba_id not in accounts:
                accounts.append(target.waba_id)
        else:
            refused.append(pnid or f"account {target.waba_id}")
    if not numbers and not accounts and (refused or not by_platform):
        return INVALID_SIGNATURE
    if refused:
        # Signed with one number's secret but naming others: a forgery attempt or a misconfigured app.
        metrics.WEBHOOK_REJECTED_CHANGES.inc(len(refused))
        log.warning("webhook_changes_refused", refused=sorted(set(refused))[:20], accepted=numbers)
    return Accepted(body=body, phone_number_ids=numbers, waba_ids=accounts, rejected=len(refused))


def count(result: str, *, seconds: float | None = None) -> None:
    metrics.WEBHOOK_REQUESTS.labels(result=result).inc()
    if seconds is not None:
        metrics.WEBHOOK_ACK_SECONDS.observe(seconds)
