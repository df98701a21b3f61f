"""Self-service signup on the public host.

A signup is a public-schema row until its e-mail is verified; then, by `settings.SIGNUP_MODE`, the
workspace is created through `onboard_tenant` at once ("open") or when an operator approves it in the
platform admin ("approval"); "closed" refuses new signups and pending verifications. A pending row (not
a tenant created up front) because: nothing is cloned for an address that never answers, a subdomain is
not squatted by unverified signups, the approval mode needs somewhere for a verified signup to wait, and
the e-mailed link carries no password (the row keeps its hash).

Enumeration: submitting answers the same whatever exists; a subdomain that turns out to be taken is
said in the e-mail, to the address's owner. Only the live subdomain check says "taken" (the address is
public anyway) and it is rate-limited per client address by the view.
"""

from __future__ import annotations

import hashlib
import secrets
import unicodedata
from dataclasses import dataclass
from datetime import timedelta

import structlog
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.core import signing
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.template.loader import render_to_string
from django.utils import timezone
from django_tenants.utils import schema_context

from core.errors import ServiceError
from onboarding.models import LoginToken, Signup
from onboarding.services import (
    OnboardedTenant,
    OnboardingError,
    onboard_tenant,
    validate_owner_password,
    validate_slug,
)
from tenants.models import Tenant

log = structlog.get_logger("onboarding")

VERIFY_SALT = "onboarding.signup.verify"
MODES = ("open", "approval", "closed")


class SignupError(ServiceError):
    """A signup step refused; `code` is stable."""


def signup_mode() -> str:
    return str(settings.SIGNUP_MODE)


def public_url(path: str) -> str:
    port = f":{settings.SITE_PORT}" if settings.SITE_PORT else ""
    return f"{settings.SITE_SCHEME}://{settings.BASE_DOMAIN}{port}{path}"


def _check_open() -> None:
    if signup_mode() == "closed":
        raise SignupError(
            "signup_closed", "Signing up is closed at the moment. Please contact the operator.", status=403
        )


# ---------------------------------------------------------------------------------------------------
# The live subdomain check
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SubdomainCheck:
    slug: str
    available: bool
    code: str
    message: str


def _slug_held(slug: str) -> bool:
    """A workspace, a schema, or a verified signup waiting for approval holds the subdomain."""
    return (
        Tenant.objects.filter(slug=slug).exists()
        or Signup.objects.filter(slug=slug, status=Signup.Status.AWAITING_APPROVAL).exists()
    )


def check_subdomain(*, slug: str) -> SubdomainCheck:
    slug = slug.strip().lower()
    try:
        validate_slug(slug)
    except OnboardingError as exc:
        return SubdomainCheck(slug=slug, available=False, code=exc.code, message=exc.message)
    if _slug_held(slug):
        return SubdomainCheck(
            slug=slug, available=False, code="duplicate_slug", message=f"'{slug}' is already taken."
        )
    return SubdomainCheck(
        slug=slug,
        available=True,
        code="available",
        message=f"{slug}.{settings.BASE_DOMAIN} is available.",
    )


# ---------------------------------------------------------------------------------------------------
# Submitting a signup
# ---------------------------------------------------------------------------------------------------


def _has_control_characters(value: str) -> bool:
    # Names go into e-mail subjects and headers: a line break there is an injection (and Django refuses it).
    return any(unicodedata.category(char) == "Cc" for char in value)


def validate_signup(*, business_name: str, slug: str, owner_name: str, email: str, password: str) -> None:
    """Rules that do not depend on what exists (so refusing says nothing about other accounts)."""
    if _has_control_characters(business_name):
        raise SignupError(
            "invalid_name", "The business name cannot contain line breaks or tabs.", field="business_name"
        )
    if _has_control_characters(owner_name):
        raise SignupError(
            "invalid_owner_name", "Your name cannot contain line breaks or tabs.", field="owner_name"
        )
    if not business_name.strip():
        raise SignupError("invalid_name", "The business name is required.", field="business_name")
    if len(business_name.strip()) > 200:
        raise SignupError(
            "invalid_name", "The business name is at most 200 characters.", field="business_name"
        )
    validate_slug(slug, check_taken=False)
    if not owner_name.strip():
        raise SignupError("invalid_owner_name", "Your name is required.", field="owner_name")
    if len(owner_name.strip()) > 150:
        raise SignupError("invalid_owner_name", "Your name is at most 150 characters.", field="owner_name")
    try:
        validate_email(email)
    except ValidationError as exc:
        raise SignupError("invalid_email", "Enter a valid email address.", field="email") from exc
    validate_owner_password(password, email=email, field="password")


def start_signup(*, business_name: str, slug: str, owner_name: str, email: str, password: str) -> None:
    """Validate, keep one pending signup per e-mail (a second submission replaces the first and only
    its link verifies), and e-mail the verification link; or, when the subdomain is taken, e-mail that.

    Returns nothing: the caller answers the same whether the e-mail or the subdomain exists.
    """
    _check_open()
    slug = slug.strip().lower()
    email = email.strip().lower()
    business_name = business_name.strip()
    owner_name = owner_name.strip()
    validate_signup(
        business_name=business_name, slug=slug, owner_name=owner_name, email=email, password=password
    )
    if _slug_held(slug):
        _send(email, "onboarding/email/slug_taken", {"slug": slug, "signup_url": public_url("/signup/")})
        return
    values = {
        "business_name": business_name,
        "slug": slug,
        "owner_name": owner_name,
        "password_hash": make_password(password),
        "nonce": secrets.token_hex(16),
    }
    with transaction.atomic():
        signup = (
            Signup.objects.select_for_update()
            .filter(email__iexact=email, status=Signup.Status.PENDING)
            .first()
        )
        if signup is None:
            try:
                with transaction.atomic():
                    signup = Signup.objects.create(email=email, **values)
            except IntegrityError:
                # A concurrent submission for the same e-mail created it first: replace its content.
                signup = Signup.objects.select_for_update().get(
                    email__iexact=email, status=Signup.Status.PENDING
                )
        for name, value in values.items():
            setattr(signup, name, value)
        signup.save()
        link = public_url(f"/signup/verify/{verification_token(signup)}/")
        context = {"signup": signup, "link": link, "hours": settings.SIGNUP_VERIFY_MAX_AGE_SECONDS // 3600}
        transaction.on_commit(lambda: _send(email, "onboarding/email/verify", context))


def verification_token(signup: Signup) -> str:
    return signing.dumps({"s": signup.pk, "n": signup.nonce}, salt=VERIFY_SALT)


# ---------------------------------------------------------------------------------------------------
# Verifying the e-mail
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VerifiedSignup:
    signup: Signup
    # Set when the workspace was created (open mode): where the new owner signs in, once.
    login_url: str | None


def _load_token(token: str) -> tuple[int, str]:
    """(signup id, nonce) from a verification link."""
    try:
        data = signing.loads(token, salt=VERIFY_SALT, max_age=settings.SIGNUP_VERIFY_MAX_AGE_SECONDS)
    except signing.SignatureExpired as exc:
        raise SignupError(
            "expired_link", "This link has expired. Please sign up again to get a new one.", status=410
        ) from exc
    except signing.BadSignature as exc:
        raise SignupError("invalid_link", "This link is not valid.", status=404) from exc
    if not (isinstance(data, dict) and isinstance(data.get("s"), int) and isinstance(data.get("n"), str)):
        raise SignupError("invalid_link", "This link is not valid.", status=404)
    return data["s"], data["n"]


def signup_for_token(token: str) -> Signup:
    """The pending signup a verification link names, or SignupError (invalid, expired, used)."""
    signup_id, nonce = _load_token(token)
    signup = Signup.objects.filter(pk=signup_id).first()
    if signup is None:
        raise SignupError("invalid_link", "This link is not valid.", status=404)
    if signup.status != Signup.Status.PENDING:
        raise SignupError("used_link", "This link was already used.", status=410)
    if not secrets.compare_digest(signup.nonce, nonce):
        # A later submission for the same e-mail sent a newer link; only that one verifies.
        raise SignupError(
            "invalid_link", "This link was replaced by a newer one; use the latest e-mail.", status=404
        )
    return signup


def verify_signup(*, token: str) -> VerifiedSignup:
    """Mark the e-mail verified and, in open mode, create the workspace and a one-time sign-in link."""
    _check_open()
    signup_for_token(token)  # the clear refusal, before any lock
    with transaction.atomic():
        signup_id, nonce = _load_token(token)
        signup = Signup.objects.select_for_update().get(pk=signup_id)
        # Re-checked under the lock: two clicks at once verify once.
        if signup.status != Signup.Status.PENDING or signup.nonce != nonce:
            raise SignupError("used_link", "This link was already used.", status=410)
        signup.verified_at = timezone.now()
        if signup_mode() == "approval":
            signup.status = Signup.Status.AWAITING_APPROVAL
            signup.save(update_fields=["status", "verified_at"])
            log.info("signup_awaiting_approval", signup=signup.pk)
            return VerifiedSignup(signup=signup, login_url=None)
        onboarded = _materialise(signup)
        login_url = issue_login_url(onboarded)
    return VerifiedSignup(signup=signup, login_url=login_url)


def _materialise(signup: Signup) -> OnboardedTenant:
    try:
        onboarded = onboard_tenant(
            slug=signup.slug,
            name=signup.business_name,
            owner_email=signup.email,
            owner_password_hash=signup.password_hash,
            owner_name=signup.owner_name,
        )
    except OnboardingError as exc:
        if exc.code == "duplicate_slug":
            raise SignupError(
                "duplicate_slug",
                f"The subdomain '{signup.slug}' was taken meanwhile. Please sign up again with another one.",
                field="slug",
                status=409,
            ) from exc
        raise
    signup.status = Signup.Status.COMPLETED
    signup.completed_at = timezone.now()
    signup.tenant = onboarded.tenant
    signup.password_hash = ""  # the owner holds it now
    signup.save(update_fields=["status", "verified_at", "completed_at", "tenant", "password_hash"])
    log.info("signup_completed", signup=signup.pk, tenant=onboarded.tenant.slug)
    return onboarded


# ---------------------------------------------------------------------------------------------------
# Approval (platform admin)
# ---------------------------------------------------------------------------------------------------


def approve_signup(*, signup_id: int) -> OnboardedTenant:
    """Create the workspace of a verified signup and e-mail its owner where to sign in."""
    with transaction.atomic():
        signup = Signup.objects.select_for_update().get(pk=signup_id)
        if signup.status != Signup.Status.AWAITING_APPROVAL:
            raise SignupError(
                "not_awaiting_approval",
                "Only a verified signup waiting for approval can be approved.",
                status=409,
            )
        onboarded = _materialise(signup)
        context = {"signup": signup, "url": onboarded.url + "login/"}
        transaction.on_commit(lambda: _send(signup.email, "onboarding/email/approved", context))
    return onboarded


def reject_signup(*, signup_id: int) -> Signup:
    with transaction.atomic():
        signup = Signup.objects.select_for_update().get(pk=signup_id)
        if signup.status not in (Signup.Status.PENDING, Signup.Status.AWAITING_APPROVAL):
            raise SignupError("not_awaiting_approval", "This signup is already settled.", status=409)
        signup.status = Signup.Status.REJECTED
        signup.password_hash = ""
        signup.save(update_fields=["status", "password_hash"])
    return signup


# ---------------------------------------------------------------------------------------------------
# One-time sign-in to the new workspace
# ---------------------------------------------------------------------------------------------------


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_login_url(onboarded: OnboardedTenant) -> str:
    """A one-time link that signs the new owner in on their workspace's host."""
    with schema_context(onboarded.tenant.schema_name):
        user_id = get_user_model().objects.values_list("pk", flat=True).get(username=onboarded.owner_email)
    token = secrets.token_urlsafe(32)
    LoginToken.objects.create(
        tenant=onboarded.tenant,
        user_id=user_id,
        token_hash=_hash(token),
        expires_at=timezone.now() + timedelta(seconds=settings.SIGNUP_LOGIN_MAX_AGE_SECONDS),
    )
    return f"{onboarded.url}welcome/{token}/"


def redeem_login_token(*, tenant: Tenant, token: str) -> int:
    """The user id a one-time sign-in link names on this tenant, used up; SignupError otherwise.

    Another tenant's token answers like an unknown one: a link works on its own workspace only.
    """
    now = timezone.now()
    with transaction.atomic():
        row = (
            LoginToken.objects.select_for_update()
            .filter(token_hash=_hash(token), tenant_id=tenant.pk)
            .first()
        )
        if row is None:
            raise SignupError("invalid_token", "This sign-in link is not valid.", status=404)
        if row.used_at is not None:
            raise SignupError("used_token", "This sign-in link was already used. Please sign in.", status=410)
        if row.expires_at <= now:
            raise SignupError("expired_token", "This sign-in link has expired. Please sign in.", status=410)
        row.used_at = now
        row.save(update_fields=["used_at"])
    return row.user_id


def _send(email: str, template: str, context: dict[str, object]) -> None:
    subject = render_to_string(f"{template}_subject.txt", context).strip()
    body = render_to_string(f"{template}.txt", context)
    send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, [email])
