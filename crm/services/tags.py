"""Tags and companies."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db import transaction
from django.db.models.functions import Lower

from core.errors import ServiceError
from crm.models import Company, Tag
from crm.services.common import ensure_name_free, excluding

User = Any  # the tenant's auth user (django.contrib.auth.User)


def save_tag(*, tag: Tag | None = None, name: str, color: str = "#6b7280") -> Tag:
    name = name.strip()
    if not name:
        raise ServiceError("invalid_name", "A tag needs a name.", field="name")
    ensure_name_free(Tag.objects.filter(name__iexact=name), tag, "A tag with this name exists.")
    tag = tag or Tag()
    tag.name = name
    tag.color = color
    tag.save()
    return tag


def tags_by_name(names: Iterable[str]) -> list[Tag]:
    """Existing tags are reused case-insensitively; new ones are created."""
    wanted = list(dict.fromkeys(n.strip()[:50] for n in names if n and n.strip()))
    found: dict[str, Tag] = {
        t.name.lower(): t
        for t in Tag.objects.annotate(lname=Lower("name")).filter(lname__in=[n.lower() for n in wanted])
    }
    result = []
    for name in wanted:
        tag = found.get(name.lower())
        if tag is None:
            tag = found[name.lower()] = Tag.objects.create(name=name)
        result.append(tag)
    return result


def clean_domain(domain: str) -> str:
    domain = domain.strip().lower()
    for prefix in ("https://", "http://", "www."):
        domain = domain.removeprefix(prefix)
    return domain.split("/")[0]


@transaction.atomic
def save_company(*, company: Company | None = None, name: str, domain: str = "") -> Company:
    name = name.strip()
    if not name:
        raise ServiceError("invalid_name", "A company needs a name.", field="name")
    domain = clean_domain(domain)
    if domain and excluding(Company.objects.filter(domain__iexact=domain), company).exists():
        raise ServiceError(
            "duplicate_domain",
            "A company with this domain exists.",
            field="domain",
            status=409,
        )
    company = company or Company()
    company.name = name
    company.domain = domain
    company.save()
    return company
