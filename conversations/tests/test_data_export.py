"""Settings → Data export: owners download contacts, conversations and messages as CSV and JSON in one
zip; nobody else can, and no other tenant's rows ever appear in it."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from typing import Any

import pytest
from django_tenants.utils import schema_context

from conftest import login, make_agent
from conversations.tests.conftest import make_conversation
from core.models import AuditEvent
from crm.models import Contact

URL = "/settings/data-export/"
DATASETS = (
    "contacts",
    "conversations",
    "messages",
    "csat_responses",
    # Registered by the apps above conversations (their AppConfig.ready()).
    "campaign_recipients",
    "campaigns",
    "knowledge_faqs",
    "knowledge_sources",
    "webhook_endpoints",
)
FILES = {f"{name}.{ext}" for name in DATASETS for ext in ("csv", "json")}


def _download(client: Any) -> zipfile.ZipFile:
    response = client.get(URL)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/zip"
    assert response["Content-Disposition"].startswith('attachment; filename="alpha-data-')
    assert response["Cache-Control"] == "no-store"
    return zipfile.ZipFile(io.BytesIO(b"".join(response)))


def _csv(archive: zipfile.ZipFile, name: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(archive.read(name).decode("utf-8"))))


def test_an_owner_downloads_every_contact_conversation_and_message(
    client_a: Any, owner_a: Any, tenant_a: Any, tenant_b: Any
) -> None:
    conversation = make_conversation(tenant_a, name="Ana Alpha", messages=3)
    make_conversation(tenant_b, name="Bob Beta", messages=2)
    with schema_context(tenant_a.schema_name):
        Contact.objects.create(name='=HYPERLINK("http://evil","x")', phone="+15550009999")
        contacts = Contact.objects.count()
        messages = conversation.messages.count()

    archive = _download(login(client_a, tenant_a, owner_a))
    assert set(archive.namelist()) == FILES
    rows = _csv(archive, "contacts.csv")
    assert len(rows) == contacts
    assert {r["name"] for r in rows} >= {"Ana Alpha", '\'=HYPERLINK("http://evil","x")'}
    assert "Bob Beta" not in archive.read("contacts.csv").decode()
    assert len(_csv(archive, "messages.csv")) == messages
    assert [r["contact_name"] for r in _csv(archive, "conversations.csv")] == ["Ana Alpha"]

    as_json = json.loads(archive.read("contacts.json"))
    assert len(as_json) == contacts
    # JSON is data, not a spreadsheet: values are exactly as stored.
    assert '=HYPERLINK("http://evil","x")' in {c["name"] for c in as_json}
    assert len(json.loads(archive.read("messages.json"))) == messages
    assert [c["id"] for c in json.loads(archive.read("conversations.json"))] == [conversation.pk]
    for name in FILES:
        assert "Beta" not in archive.read(name).decode()

    with schema_context(tenant_a.schema_name):
        assert AuditEvent.objects.filter(action="export.created").exists()


def test_an_empty_workspace_exports_headers_and_empty_lists(
    client_a: Any, owner_a: Any, tenant_a: Any
) -> None:
    with schema_context(tenant_a.schema_name):
        Contact.objects.all().delete()
    archive = _download(login(client_a, tenant_a, owner_a))
    assert archive.read("messages.csv").decode().startswith("id,conversation_id,direction")
    assert json.loads(archive.read("contacts.json")) == []


@pytest.mark.parametrize("role", ["admin", "supervisor", "agent"])
def test_no_one_but_an_owner_may_export(client_a: Any, tenant_a: Any, role: str) -> None:
    member = make_agent(tenant_a, email=f"{role}@alpha.test", role=role).user
    assert login(client_a, tenant_a, member).get(URL).status_code == 403


def test_signed_out_visitors_are_sent_to_sign_in(client_a: Any) -> None:
    response = client_a.get(URL)
    assert response.status_code == 302 and "/login/" in response["Location"]


def test_another_tenants_host_never_serves_this_tenants_data(
    client_a: Any, client_b: Any, owner_a: Any, tenant_a: Any
) -> None:
    make_conversation(tenant_a, name="Ana Alpha")
    # alpha's owner's session cookie sent to beta's host: beta's schema has no such session.
    login(client_a, tenant_a, owner_a)
    client_b.cookies = client_a.cookies
    response = client_b.get(URL)
    assert response.status_code == 302 and "/login/" in response["Location"]
    assert b"Ana Alpha" not in response.content


def test_only_get_is_allowed(client_a: Any, owner_a: Any, tenant_a: Any) -> None:
    assert login(client_a, tenant_a, owner_a).post(URL).status_code == 405


def test_the_settings_page_links_the_export_for_owners_only(
    client_a: Any, owner_a: Any, tenant_a: Any
) -> None:
    assert URL in login(client_a, tenant_a, owner_a).get("/settings/").content.decode()
    admin = make_agent(tenant_a, email="admin2@alpha.test", role="admin").user
    assert URL not in login(client_a, tenant_a, admin).get("/settings/").content.decode()


def test_the_other_apps_data_is_in_the_export_and_never_a_secret(
    client_a: Any, owner_a: Any, tenant_a: Any, tenant_b: Any
) -> None:
    from integrations.models import WebhookEndpoint
    from knowledge.models import Faq, Source

    with schema_context(tenant_a.schema_name):
        Source.objects.create(kind="text", title="Prices <b>2026</b>", text="Delivery costs 4 EUR.")
        Faq.objects.create(question="Do you ship?", answer='=HYPERLINK("http://evil","x")')
        WebhookEndpoint.objects.create(
            url="https://hooks.example.com/alpha",
            events=["contact.created"],
            secret_encrypted="SECRET-CIPHER",
        )
    with schema_context(tenant_b.schema_name):
        Faq.objects.create(question="Beta question?", answer="Beta answer")
    archive = _download(login(client_a, tenant_a, owner_a))
    assert [r["title"] for r in _csv(archive, "knowledge_sources.csv")] == ["Prices <b>2026</b>"]
    faqs = _csv(archive, "knowledge_faqs.csv")
    assert [f["question"] for f in faqs] == ["Do you ship?"]
    assert faqs[0]["answer"].startswith("'=")  # a formula stays text in a spreadsheet
    hooks = json.loads(archive.read("webhook_endpoints.json"))
    assert [h["url"] for h in hooks] == ["https://hooks.example.com/alpha"]
    assert all("SECRET-CIPHER" not in archive.read(name).decode() for name in archive.namelist())
    assert all("Beta" not in archive.read(name).decode() for name in archive.namelist())
