"""Committed tenants for the backup and lifecycle tests: pg_dump and pg_restore are other processes and
see committed rows only. Each test's tenants (and the schemas and media they leave) are removed after it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import itertools
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.apps import apps
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.utils import timezone
from django_tenants.utils import schema_context, schema_exists

from conftest import PASSWORD
from tenants.db import connection

_numbers = itertools.count(1)


def model(name: str) -> Any:
    """A model by class name, wherever its app is (numbers and media are moving between apps)."""
    return next(m for m in apps.get_models() if m.__name__ == name)


def storages_at(root: Path) -> dict[str, Any]:
    from django.conf import settings

    return {
        **settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(root / "media")},
        },
        "backups": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(root / "backups")},
        },
    }


@pytest.fixture
def storages_in(tmp_path: Path, settings: Any) -> Path:
    """Media and backups on a private directory of the test."""
    settings.STORAGES = storages_at(tmp_path)
    return tmp_path


@contextlib.contextmanager
def tenants_made() -> Iterator[Any]:
    """`make()` → a committed, onboarded tenant with a unique slug; every slug in `make.made` (imports
    under a derived slug too) and any temporary import schema are dropped on the way out."""
    from onboarding.services import onboard_tenant
    from tenants.models import Tenant

    made: list[str] = []

    def make(prefix: str = "bk") -> Any:
        slug = f"{prefix}{uuid.uuid4().hex[:10]}"
        made.append(slug)
        return onboard_tenant(
            slug=slug, name=f"Backup {slug}", owner_email=f"owner@{slug}.test", owner_password=PASSWORD
        ).tenant

    make.made = made  # type: ignore[attr-defined]
    try:
        yield make
    finally:
        connection.set_schema_to_public()
        for slug in made:
            Tenant.objects.filter(slug=slug).delete()
            if schema_exists(slug):
                with connection.cursor() as cursor:
                    cursor.execute(f'DROP SCHEMA "{slug}" CASCADE')
        with connection.cursor() as cursor:
            cursor.execute("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'imp\\_%'")
            for (schema,) in cursor.fetchall():
                cursor.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture
def make_tenant(django_db_setup: Any, django_db_blocker: Any, storages_in: Path) -> Iterator[Any]:
    with django_db_blocker.unblock(), tenants_made() as make:
        yield make


def seed(tenant: Any, *, phone_number_id: str | None = None) -> dict[str, Any]:
    """Rows in the tenant's tables (CRM, inbox, WhatsApp, media with a stored file) and its number's
    public route. Returns what was made."""
    from tenants.models import NumberRoute

    n = next(_numbers)
    pnid = phone_number_id or f"9{uuid.uuid4().int % 10**12:012d}"
    now = timezone.now()
    with schema_context(tenant.schema_name):
        from django.contrib.auth import get_user_model

        owner = get_user_model().objects.get(email=f"owner@{tenant.slug}.test")
        Tag, Company, Contact = model("Tag"), model("Company"), model("Contact")
        tag = Tag.objects.create(name=f"vip{n}")
        company = Company.objects.create(name="Acme", domain=f"acme{n}.example")
        contact = Contact.objects.create(
            name='=HYPERLINK("http://evil","x")',
            phone=f"+1555{n:07d}",
            wa_id=f"1555{n:07d}",
            company=company,
            attributes={"city": "Lisbon"},
        )
        contact.tags.add(tag)
        other = Contact.objects.create(name="Zoë Ünïcode", phone=f"+1666{n:07d}")
        model("Note").objects.create(contact=contact, author=owner, body="Prefers mornings")
        pipeline = model("Pipeline").objects.create(name=f"Backup pipeline {n}")
        stage = model("Stage").objects.create(pipeline=pipeline, name="New", position=0)
        deal = model("Deal").objects.create(
            title="Big one", contact=contact, company=company, owner=owner, pipeline=pipeline, stage=stage
        )
        model("Task").objects.create(title="Call back", contact=contact, deal=deal, created_by=owner)
        model("Team").objects.create(name="Support")
        channel = model("Channel").objects.create(
            phone_number_id=pnid, waba_id="waba1", display_phone="+15550001111"
        )
        Conversation, Message = model("Conversation"), model("Message")
        conversation = Conversation.objects.create(
            contact=contact, channel=channel, assignee=owner, last_message_at=now, last_inbound_at=now
        )
        Conversation.objects.create(contact=other, channel=channel)
        messages = []
        for i in range(3):
            messages.append(
                Message.objects.create(
                    conversation=conversation,
                    direction="in",
                    type="text" if i else "image",
                    text=f"hello {i}",
                    status="received",
                    wamid=f"wamid.{tenant.slug}.{i}",
                    timestamp=now - dt.timedelta(seconds=10 - i),
                )
            )
        content = b"\x89PNG fake image " + tenant.slug.encode()
        path = default_storage.save(
            f"whatsapp/{tenant.schema_name}/image/2026/01/{uuid.uuid4().hex}.png", ContentFile(content)
        )
        model("MediaFile").objects.create(
            channel=channel,
            message=messages[0],
            direction="in",
            kind="image",
            media_id="m1",
            file=path,
            filename="photo.png",
            mime_type="image/png",
            size=len(content),
            sha256=hashlib.sha256(content).hexdigest(),
            status="ready",
        )
        model("CannedResponse").objects.create(shortcut=f"hi{n}", title="Hi", text="Hello there")
        model("AutoReplyRule").objects.create(keyword="price", reply="10 EUR")
    NumberRoute.objects.create(phone_number_id=pnid, tenant=tenant, waba_id="waba1")
    return {"phone_number_id": pnid, "media_path": path, "media": content, "contact": contact}
