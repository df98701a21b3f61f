"""Reads for the CRM: the querysets pages, the API and admin list from, with their joins decided here."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from typing import Any

from django.conf import settings
from django.contrib.postgres.search import SearchQuery
from django.db.models import Count, Exists, OuterRef, Prefetch, Q, QuerySet
from django.utils import timezone
from django_tenants.utils import get_public_schema_name

from crm.models import Agent, Company, Contact, Deal, Note, Pipeline, Stage, Tag, Task, Team
from crm.phones import InvalidPhoneNumber, normalize_phone
from tenants.db import connection
from tenants.models import Tenant


def default_phone_region() -> str | None:
    """Numbers typed without a country code are read in the tenant's region (tenant.settings.phone_region).
    A job runs in its tenant's schema without the tenant's row (tenants.jobs): its settings are read once
    and kept on the connection's tenant for the rest of the job."""
    tenant = getattr(connection, "tenant", None)
    tenant_settings = getattr(tenant, "settings", None)
    if tenant_settings is None and tenant is not None and tenant.schema_name != get_public_schema_name():
        found = Tenant.objects.filter(schema_name=tenant.schema_name).values_list("settings", flat=True)
        tenant_settings = tenant.settings = found.first() or {}
    tenant_settings = tenant_settings or {}
    region = tenant_settings.get("phone_region") or settings.DEFAULT_PHONE_REGION
    return str(region).upper() if region else None


def contacts() -> QuerySet[Contact]:
    return Contact.objects.select_related("company", "owner").prefetch_related("tags")


_WORD = re.compile(r"\w+", re.UNICODE)
_PHONE_CHARS = re.compile(r"^[\d\s()+.\-/]+$")


def contact_search_filter(query: str) -> Q:
    """One condition over name, email, phone and tags, each arm served by an index.

    A query shaped like a phone number ("+1 (415) 555-2671", "0049 151...", "7946") searches phones only:
    a complete number, normalised, is one hit on the unique index; anything else is a digit fragment on
    the phone's trigram index (a national number without its trunk zero is a fragment of the E.164 form).
    Anything else searches name and email fragments (trigram indexes on UPPER(...), what icontains
    compares), whole words and prefixes in any order (full-text index) and tag names.
    """
    query = query.strip()[:200]
    if not query:
        return Q()
    digits = re.sub(r"\D", "", query)
    fragment = digits.lstrip("0")
    if _PHONE_CHARS.match(query) and len(fragment) >= 3:
        # A complete number is definitive; the fragment search is for partial or region-less numbers.
        with contextlib.suppress(InvalidPhoneNumber):
            return Q(phone=normalize_phone(query, default_region=default_phone_region()))
        return Q(phone__contains=fragment)
    condition = Q(name__icontains=query) | Q(email__icontains=query)
    # A WhatsApp username, typed with or without its @.
    if handle := query.lstrip("@"):
        condition |= Q(username__icontains=handle)
    words = _WORD.findall(query.lower())
    if words:
        tsquery = " & ".join(f"{w}:*" for w in words)
        condition |= Q(search_vector=SearchQuery(tsquery, config="simple", search_type="raw"))
    tag_ids = list(Tag.objects.filter(name__iexact=query).values_list("pk", flat=True)[:5])
    if tag_ids:
        through = Contact.tags.through
        condition |= Q(Exists(through.objects.filter(contact_id=OuterRef("pk"), tag_id__in=tag_ids)))
    return condition


def search_contacts(queryset: QuerySet[Contact], query: str) -> QuerySet[Contact]:
    return queryset.filter(contact_search_filter(query)) if query.strip() else queryset


PICK_LIMIT = 10


def pick_contacts(query: str) -> list[Contact]:
    """A picker's options: the contact list's own search, with the company to prefill a deal's."""
    if not query.strip():
        return []
    found = Contact.objects.select_related("company").filter(contact_search_filter(query))
    return list(found.order_by("name", "id")[:PICK_LIMIT])


def company_search_filter(query: str) -> Q:
    query = query.strip()[:200]
    return Q(name__icontains=query) | Q(domain__icontains=query) if query else Q()


def pick_companies(query: str) -> list[Company]:
    if not query.strip():
        return []
    return list(Company.objects.filter(company_search_filter(query)).order_by("name", "id")[:PICK_LIMIT])


def pick_deals(query: str) -> list[Deal]:
    query = query.strip()[:200]
    if not query:
        return []
    found = Deal.objects.select_related("contact").filter(title__icontains=query)
    return list(found.order_by("-updated_at", "-id")[:PICK_LIMIT])


def contact_detail(pk: int) -> Contact:
    return contacts().get(pk=pk)


def notes_of(contact: Contact) -> QuerySet[Note]:
    return contact.notes.select_related("author")


def companies() -> QuerySet[Company]:
    return Company.objects.annotate(contact_count=Count("contacts", distinct=True))


def tags() -> QuerySet[Tag]:
    return Tag.objects.all()


def agents() -> QuerySet[Agent]:
    return Agent.objects.select_related("user").prefetch_related("teams")


def teams() -> QuerySet[Team]:
    return Team.objects.prefetch_related(Prefetch("members", queryset=Agent.objects.select_related("user")))


def pipelines() -> QuerySet[Pipeline]:
    return Pipeline.objects.prefetch_related(
        Prefetch("stages", queryset=Stage.objects.order_by("position", "id"))
    )


def deals() -> QuerySet[Deal]:
    return Deal.objects.select_related("contact", "company", "owner", "pipeline", "stage")


def board(pipeline: Pipeline) -> list[tuple[Stage, list[Deal]]]:
    """A pipeline's stages in order, each with its deals (two queries whatever the size)."""
    stages = list(pipeline.stages.order_by("position", "id"))
    by_stage: dict[int, list[Deal]] = {s.pk: [] for s in stages}
    for deal in deals().filter(pipeline=pipeline).order_by("-updated_at", "-id")[:2000]:
        by_stage.setdefault(deal.stage_id, []).append(deal)
    return [(s, by_stage[s.pk]) for s in stages]


def tasks() -> QuerySet[Task]:
    return Task.objects.select_related("assignee", "contact", "deal")


def overdue(queryset: QuerySet[Task]) -> QuerySet[Task]:
    return queryset.filter(done=False, due_at__lt=timezone.now())


def role_of_user(user: Any) -> str | None:
    """The user's role in this tenant, from their agent row: a user without one has no role, whatever
    Django flags it carries (tenant users are never superusers; roles are granted by crm.services)."""
    if user is None or not user.is_authenticated:
        return None
    cached = getattr(user, "_crm_role", None)
    if cached is not None:
        return str(cached)
    row = Agent.objects.filter(user_id=user.pk).values_list("role", "availability").first()
    remember_agent(user, *(row or (None, None)))
    return user._crm_role


def availability_of_user(user: Any) -> str | None:
    """The user's availability here (online, busy, offline), read with their role: no query when either
    was read for this request already."""
    role_of_user(user)
    return getattr(user, "_crm_availability", None)


def remember_agent(user: Any, role: str | None, availability: str | None) -> None:
    """Keep the agent row's role and availability on the request's user object (they are read together)."""
    user._crm_role = role
    user._crm_availability = availability


def export_rows(queryset: QuerySet[Contact], *, attribute_keys: list[str]) -> Iterator[list[Any]]:
    """Rows in crm.services.EXPORT_COLUMNS order, read in chunks (tags prefetched per chunk)."""
    rows = queryset.select_related("company", "owner").prefetch_related("tags").order_by("id")
    for c in rows.iterator(chunk_size=2000):
        yield [
            c.phone,
            c.name,
            c.email,
            c.company.name if c.company else "",
            ", ".join(t.name for t in c.tags.all()),
            c.marketing_consent,
            "yes" if c.blocked else "no",
            c.owner.email if c.owner else "",
            c.created_at.isoformat(),
            c.last_inbound_at.isoformat() if c.last_inbound_at else "",
            *(c.attributes.get(key, "") for key in attribute_keys),
        ]
