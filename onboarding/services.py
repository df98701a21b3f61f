"""Onboarding: one service creates a tenant and its owner; the platform admin, `manage.py onboard_tenant`,
self-service signup and the demo seed all go through it."""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django_tenants.utils import schema_context, schema_exists

from core.errors import ServiceError
from crm.services import create_agent
from tenants.models import Domain, Tenant

SLUG_RE = re.compile(r"^[a-z][a-z0-9]{1,39}$")
# Names that would shadow platform hosts, infrastructure or PostgreSQL's own schemas. Slugs are schema
# names too: anything starting with "pg" is PostgreSQL's, and underscores (tenant_template,
# information_schema) never pass SLUG_RE.
RESERVED_SLUGS = frozenset(
    {
        "public",
        "www",
        "admin",
        "api",
        "app",
        "apps",
        "auth",
        "login",
        "signup",
        "static",
        "media",
        "ws",
        "webhook",
        "webhooks",
        "mail",
        "smtp",
        "imap",
        "pop",
        "ftp",
        "status",
        "health",
        "healthz",
        "metrics",
        "help",
        "support",
        "docs",
        "blog",
        "billing",
        "platform",
        "dashboard",
        "root",
        "system",
        "postgres",
        "template",
        "tenanttemplate",
        "information_schema",
        "test",
        "staging",
        "dev",
    }
)


class OnboardingError(ServiceError):
    """A tenant could not be created as asked; `code` and `field` say why."""


@dataclass(frozen=True)
class OnboardedTenant:
    tenant: Tenant
    domain: Domain
    owner_email: str
    url: str


def tenant_url(domain: str) -> str:
    port = f":{settings.SITE_PORT}" if settings.SITE_PORT else ""
    return f"{settings.SITE_SCHEME}://{domain}{port}/"


def validate_slug(slug: str, *, check_taken: bool = True) -> None:
    if not SLUG_RE.match(slug):
        raise OnboardingError(
            "invalid_slug",
            "The slug must be 2 to 40 lowercase letters or digits, starting with a letter.",
            field="slug",
        )
    if slug in RESERVED_SLUGS or slug.startswith("pg"):
        raise OnboardingError("reserved_slug", f"The slug '{slug}' is reserved.", field="slug")
    if check_taken and (Tenant.objects.filter(slug=slug).exists() or schema_exists(slug)):
        raise OnboardingError(
            "duplicate_slug", f"A tenant with the slug '{slug}' already exists.", field="slug", status=409
        )


def validate_owner_password(password: str, *, email: str, field: str = "owner_password") -> None:
    user_model = get_user_model()
    try:
        validate_password(password, user=user_model(username=email, email=email))
    except ValidationError as exc:
        raise OnboardingError("weak_password", " ".join(exc.messages), field=field) from exc


def validate_onboarding(
    *, slug: str, name: str, owner_email: str, owner_password: str | None, check_taken: bool = True
) -> None:
    """The rules for a new tenant; `owner_password=None` when it was checked earlier and only its hash
    is kept (a verified signup)."""
    validate_slug(slug, check_taken=check_taken)
    if not name.strip():
        raise OnboardingError("invalid_name", "The business name is required.", field="name")
    try:
        validate_email(owner_email)
    except ValidationError as exc:
        raise OnboardingError(
            "invalid_email", "Enter a valid owner email address.", field="owner_email"
        ) from exc
    if owner_password is not None:
        validate_owner_password(owner_password, email=owner_email)


@transaction.atomic
def onboard_tenant(
    *,
    slug: str,
    name: str,
    owner_email: str,
    owner_password: str = "",
    owner_password_hash: str = "",
    owner_name: str = "",
    plan: str = Tenant.Plan.FREE,
) -> OnboardedTenant:
    """Create the tenant (schema cloned from the template), its primary domain and its owner.

    One transaction: the schema, the rows and the owner all appear or none do (PostgreSQL DDL is
    transactional). `owner_password_hash` (already hashed, from a verified signup) replaces
    `owner_password` so a plain password is never stored while a signup waits.
    """
    slug = slug.strip().lower()
    owner_email = owner_email.strip().lower()
    validate_onboarding(
        slug=slug,
        name=name,
        owner_email=owner_email,
        owner_password=None if owner_password_hash else owner_password,
    )
    tenant = Tenant(schema_name=slug, slug=slug, name=name.strip(), plan=plan)
    tenant.save(verbosity=0)
    domain = Domain.objects.create(tenant=tenant, domain=f"{slug}.{settings.BASE_DOMAIN}", is_primary=True)
    with schema_context(slug):
        agent = create_agent(
            email=owner_email,
            password=None if owner_password_hash else owner_password,
            role="owner",
            name=(owner_name or name).strip(),
        )
        if owner_password_hash:
            agent.user.password = owner_password_hash
            agent.user.save(update_fields=["password"])
    return OnboardedTenant(
        tenant=tenant, domain=domain, owner_email=owner_email, url=tenant_url(domain.domain)
    )
