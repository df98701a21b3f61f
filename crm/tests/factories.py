"""Rows for tests, made through the services (the same path as production writes)."""

from __future__ import annotations

import itertools
from typing import Any

from django.utils import timezone

from crm import services
from crm.models import ContactImport, ImportRejection, Invitation, Note, Tag

_seq = itertools.count(1000)


def phone() -> str:
    return f"+1415555{next(_seq) % 10000:04d}"


def contact(**fields: Any) -> Any:
    n = next(_seq)
    tag = Tag.objects.get_or_create(name=f"tag{n % 3}")[0]
    company = services.save_company(name=f"Company {n}", domain=f"c{n}.example")
    return services.create_contact(
        phone=phone(), name=fields.pop("name", f"Person {n}"), company=company, tags=[tag], **fields
    )


def one_of_everything(owner: Any) -> None:
    """Adds one row to every CRM table, with the relations list pages show."""
    n = next(_seq)
    person = contact(owner=owner)
    Note.objects.create(contact=person, body="hello", author=owner)
    deal = services.create_deal(
        title=f"Deal {n}", contact=person, company=person.company, owner=owner, by=owner
    )
    services.move_deal(deal=deal, stage=deal.pipeline.stages.order_by("position")[1], by=owner)
    services.create_task(title=f"Task {n}", assignee=owner, contact=person, deal=deal, due_at=timezone.now())
    agent = services.create_agent(email=f"agent{n}@example.test", password=None, role="agent")
    team = services.save_team(name=f"Team {n}", member_ids=[agent.pk])
    assert team
    Invitation.objects.create(agent=agent, invited_by=owner)
    services.save_attribute_definition(key=f"attr{n}", label=f"Attr {n}", type="text")
    services.create_pipeline(name=f"Pipeline {n}")
    services.create_api_key(name=f"key {n}", created_by=owner)
    job = ContactImport.objects.create(filename=f"f{n}.csv", content="phone\n", created_by=owner)
    ImportRejection.objects.create(contact_import=job, row_number=2, reason="bad")
