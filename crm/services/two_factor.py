"""TOTP second factor (RFC 6238, 30-second steps, 6 digits) with ten single-use recovery codes.

Enrolment: `start_two_factor` makes a secret (kept encrypted, core.crypto) and shows it as a QR code and as
a key to type; `confirm_two_factor` with a code from the app turns it on and returns the recovery codes,
shown once (stored as SHA-256 hashes). Sign-in (crm.two_factor_views) asks for a code, or a recovery code,
after the password of an enrolled user; a code's time step is remembered so the same code is not
accepted twice. The workspace may require it of owners and admins (`two_factor_required`): they enrol at
their next sign-in before they get a session. API keys are not affected: they are their own credential.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from typing import Any

import pyotp
import segno
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from core import audit
from core.crypto import decrypt, encrypt
from core.errors import ServiceError
from crm.models import Agent, RecoveryCode, SecuritySettings, TwoFactor

RECOVERY_CODES = 10
STEP_SECONDS = 30
# A code from the step before or after now is accepted too (clocks drift, people type slowly).
VALID_WINDOW = 1
ISSUER = "WhatsApp CRM"
_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i to misread


def _hash(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


def _normalise_recovery(code: str) -> str:
    return re.sub(r"[\s-]", "", code or "").lower()


def _new_recovery_code() -> str:
    raw = "".join(secrets.choice(_ALPHABET) for _ in range(10))
    return f"{raw[:5]}-{raw[5:]}"


def device_of(user: Any) -> TwoFactor | None:
    return TwoFactor.objects.filter(user=user).first()


def is_enrolled(user: Any) -> bool:
    return TwoFactor.objects.filter(user=user, confirmed_at__isnull=False).exists()


def security_settings() -> SecuritySettings:
    row, _ = SecuritySettings.objects.get_or_create(pk=1)
    return row


def set_two_factor_requirement(*, required: bool, by: Any = None) -> SecuritySettings:
    row = security_settings()
    if row.require_two_factor_for_admins != required:
        row.require_two_factor_for_admins = required
        row.save(update_fields=["require_two_factor_for_admins"])
        audit.record(
            "settings.changed",
            actor=by,
            target=("settings", "security", "Security"),
            details={"require_two_factor_for_admins": required},
        )
    return row


def two_factor_required(user: Any) -> bool:
    """The workspace requires a second factor of this user (owners and admins, when switched on)."""
    if not security_settings().require_two_factor_for_admins:
        return False
    return Agent.objects.filter(user=user, role__in=[Agent.Role.OWNER, Agent.Role.ADMIN]).exists()


def provisioning_uri(*, device: TwoFactor, user: Any, issuer: str = ISSUER) -> str:
    return pyotp.TOTP(decrypt(device.secret_encrypted)).provisioning_uri(name=user.email, issuer_name=issuer)


def qr_svg(uri: str) -> str:
    """The URI as an inline <svg> element (no image file, no external request: the CSP allows neither)."""
    return str(segno.make(uri, error="m").svg_inline(scale=4, dark="#111", light="#fff"))


def manual_key(device: TwoFactor) -> str:
    secret = decrypt(device.secret_encrypted)
    return " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))


@transaction.atomic
def start_two_factor(*, user: Any) -> TwoFactor:
    """A fresh secret for an enrolment in progress (any earlier unconfirmed one is replaced)."""
    if is_enrolled(user):
        raise ServiceError("two_factor_enabled", "Two-factor authentication is already on.", status=409)
    TwoFactor.objects.filter(user=user).delete()
    return TwoFactor.objects.create(user=user, secret_encrypted=encrypt(pyotp.random_base32()))


def _matching_step(device: TwoFactor, code: str, now: float) -> int | None:
    code = re.sub(r"\s", "", code or "")
    if not re.fullmatch(r"\d{6}", code):
        return None
    totp = pyotp.TOTP(decrypt(device.secret_encrypted))
    current = int(now // STEP_SECONDS)
    for step in range(current - VALID_WINDOW, current + VALID_WINDOW + 1):
        if hmac.compare_digest(totp.generate_otp(step), code):
            return step
    return None


def _accept_totp(device: TwoFactor, code: str) -> bool:
    step = _matching_step(device, code, time.time())
    if step is None:
        return False
    # Claimed by a conditional UPDATE: of two requests with the same code, one wins.
    return bool(
        TwoFactor.objects.filter(pk=device.pk)
        .filter(Q(last_used_step__isnull=True) | Q(last_used_step__lt=step))
        .update(last_used_step=step)
    )


def _make_recovery_codes(device: TwoFactor) -> list[str]:
    device.recovery_codes.all().delete()
    codes = [_new_recovery_code() for _ in range(RECOVERY_CODES)]
    RecoveryCode.objects.bulk_create(
        [RecoveryCode(two_factor=device, code_hash=_hash(_normalise_recovery(c))) for c in codes]
    )
    return codes


@transaction.atomic
def confirm_two_factor(*, user: Any, code: str) -> list[str]:
    """Turn the second factor on with a first code from the app; the recovery codes, shown once."""
    device = TwoFactor.objects.select_for_update().filter(user=user, confirmed_at__isnull=True).first()
    if device is None:
        raise ServiceError("no_enrolment", "Start the set-up again.", status=409)
    if not _accept_totp(device, code):
        raise ServiceError(
            "invalid_code", "That code is not right. Check the app's clock and try again.", field="code"
        )
    device.confirmed_at = timezone.now()
    device.save(update_fields=["confirmed_at"])
    codes = _make_recovery_codes(device)
    audit.record("two_factor.enabled", actor=user, target=user)
    return codes


def verify_second_factor(*, user: Any, code: str) -> str:
    """ "totp" or "recovery" (that code is now used up); ServiceError `invalid_code` otherwise."""
    device = TwoFactor.objects.filter(user=user, confirmed_at__isnull=False).first()
    if device is None:
        raise ServiceError("two_factor_disabled", "Two-factor authentication is off.", status=409)
    if _accept_totp(device, code):
        return "totp"
    normalised = _normalise_recovery(code)
    if normalised and len(normalised) == 10:
        used = RecoveryCode.objects.filter(
            two_factor=device, code_hash=_hash(normalised), used_at__isnull=True
        ).update(used_at=timezone.now())
        if used:
            audit.record("two_factor.recovery_code_used", actor=user, target=user)
            return "recovery"
    audit.record("two_factor.failed", actor=user, target=user)
    raise ServiceError("invalid_code", "That code is not right.", field="code")


def recovery_codes_left(user: Any) -> int:
    return RecoveryCode.objects.filter(two_factor__user=user, used_at__isnull=True).count()


@transaction.atomic
def regenerate_recovery_codes(*, user: Any, code: str) -> list[str]:
    verify_second_factor(user=user, code=code)
    device = TwoFactor.objects.get(user=user)
    return _make_recovery_codes(device)


@transaction.atomic
def disable_two_factor(*, user: Any, code: str) -> None:
    """Off, with a current code or a recovery code. Refused while the workspace requires it of the user."""
    if two_factor_required(user):
        raise ServiceError(
            "two_factor_required",
            "This workspace requires two-factor authentication for your role.",
            status=409,
        )
    verify_second_factor(user=user, code=code)
    TwoFactor.objects.filter(user=user).delete()
    audit.record("two_factor.disabled", actor=user, target=user)
