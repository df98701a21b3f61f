"""Onboarding: one service used by the platform admin and by `manage.py onboard_tenant`."""

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

from tenants.models import Domain, Tenant

SLUG_RE = re.compile(r"^[a-z][a-z0-9]{1,39}$")
# Names that would shadow platform hosts, infrastructure or PostgreSQL's own schemas.
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


class OnboardingError(Exception):
    def __init__(self, code: str, message: str, field: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field


@dataclass(frozen=True)
class OnboardedTenant:
    tenant: Tenant
    domain: Domain
    owner_email: str
    url: str


def tenant_url(domain: str) -> str:
    port = f":{settings.SITE_PORT}" if settings.SITE_PORT else ""
    return f"{settings.SITE_SCHEME}://{domain}{port}/"


def validate_onboarding(*, slug: str, name: str, owner_email: str, owner_password: str) -> None:
    if not SLUG_RE.match(slug):
        raise OnboardingError(
            "invalid_slug",
            "The slug must be 2 to 40 lowercase letters or digits, starting with a letter.",
            "slug",
        )
    if slug in RESERVED_SLUGS or slug.startswith("pg"):
        raise OnboardingError("reserved_slug", f"The slug '{slug}' is reserved.", "slug")
    if Tenant.objects.filter(slug=slug).exists() or schema_exists(slug):
        raise OnboardingError("duplicate_slug", f"A tenant with the slug '{slug}' already exists.", "slug")
    if not name.strip():
        raise OnboardingError("invalid_name", "The business name is required.", "name")
    try:
        validate_email(owner_email)
    except ValidationError as exc:
        raise OnboardingError("invalid_email", "Enter a valid owner email address.", "owner_email") from exc
    user_model = get_user_model()
    try:
        validate_password(owner_password, user=user_model(username=owner_email, email=owner_email))
    except ValidationError as exc:
        raise OnboardingError("weak_password", " ".join(exc.messages), "owner_password") from exc


@transaction.atomic
def onboard_tenant(
    *, slug: str, name: str, owner_email: str, owner_password: str, plan: str = Tenant.Plan.FREE
) -> OnboardedTenant:
    """Create the tenant (schema cloned from the template), its primary domain and its owner.

    One transaction: the schema, the rows and the owner all appear or none do (PostgreSQL DDL is
    transactional).
    """
    slug = slug.strip().lower()
    owner_email = owner_email.strip().lower()
    validate_onboarding(slug=slug, name=name, owner_email=owner_email, owner_password=owner_password)
    tenant = Tenant(schema_name=slug, slug=slug, name=name.strip(), plan=plan)
    tenant.save(verbosity=0)
    domain = Domain.objects.create(tenant=tenant, domain=f"{slug}.{settings.BASE_DOMAIN}", is_primary=True)
    with schema_context(slug):
        from crm.services import create_agent

        create_agent(email=owner_email, password=owner_password, role="owner", name=name.strip())
    return OnboardedTenant(
        tenant=tenant, domain=domain, owner_email=owner_email, url=tenant_url(domain.domain)
    )


def set_tenant_active(*, tenant: Tenant, active: bool) -> Tenant:
    tenant.is_active = active
    tenant.save(update_fields=["is_active"])
    return tenant
