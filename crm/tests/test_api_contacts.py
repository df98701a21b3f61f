from __future__ import annotations

import csv
import io

import pytest
from django.db import connection as db_connection
from django.test.utils import CaptureQueriesContext
from django_tenants.utils import schema_context

from crm import services
from crm.models import Contact, Tag
from crm.tests import factories
from crm.tests.helpers import api_client, assert_error, issue_key


@pytest.fixture
def api(tenant_a):
    return api_client(tenant_a, issue_key(tenant_a, role="owner"))


def post(client, url, body):
    return client.post(url, body, content_type="application/json")


def test_creating_a_contact_normalises_the_phone_and_creates_tags(api):
    response = post(
        api, "/api/v1/contacts/", {"phone": "+1 (415) 555-2671", "name": "Grace", "tags": ["VIP", "lead"]}
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["phone"] == "+14155552671"
    assert sorted(body["tags"]) == ["VIP", "lead"]
    assert post(api, "/api/v1/contacts/", {"phone": "+14155550999", "tags": ["vip"]}).json()["tags"] == [
        "VIP"
    ]


def test_a_validation_error_names_the_field(api):
    error = assert_error(post(api, "/api/v1/contacts/", {"name": "No phone"}), 400, "validation_error")
    assert "phone" in error["details"]
    error = assert_error(post(api, "/api/v1/contacts/", {"phone": "+14155550100", "email": "nope"}), 400)
    assert "email" in error["details"]
    error = assert_error(post(api, "/api/v1/contacts/", {"phone": "12"}), 400, "invalid_phone")
    assert list(error["details"]) == ["phone"]
    error = assert_error(post(api, "/api/v1/contacts/", {"phone": "+14155550100", "company": 999999}), 400)
    assert "company" in error["details"]


def test_a_duplicate_number_in_another_format_is_a_conflict(api):
    post(api, "/api/v1/contacts/", {"phone": "+14155552671"})
    error = assert_error(
        post(api, "/api/v1/contacts/", {"phone": "001 415 555 2671"}), 409, "duplicate_phone"
    )
    assert "phone" in error["details"]


def test_attribute_values_are_validated_through_the_api(api):
    post(
        api,
        "/api/v1/attribute-definitions/",
        {"key": "tier", "label": "Tier", "type": "choice", "choices": ["gold"]},
    )
    ok = post(api, "/api/v1/contacts/", {"phone": "+14155550100", "attributes": {"tier": "gold"}})
    assert ok.json()["attributes"] == {"tier": "gold"}
    error = assert_error(
        post(api, "/api/v1/contacts/", {"phone": "+14155550101", "attributes": {"tier": "tin"}}), 400
    )
    assert list(error["details"]) == ["attributes.tier"]


def test_malformed_json_and_unknown_routes_keep_the_error_shape(api):
    assert_error(api.post("/api/v1/contacts/", "{nope", content_type="application/json"), 400, "parse_error")
    assert_error(api.get("/api/v1/nothing-here/"), 404, "not_found")
    assert_error(api.put("/api/v1/contacts/", {}, content_type="application/json"), 405, "method_not_allowed")


def test_lists_are_cursor_paginated_50_by_default_and_100_at_most(tenant_a, api):
    with schema_context("alpha"):
        Contact.objects.bulk_create(Contact(phone=f"+1415555{n:04d}", name=f"P{n}") for n in range(120))
    first = api.get("/api/v1/contacts/").json()
    assert len(first["results"]) == 50 and first["next"] and first["previous"] is None
    second = api.get(first["next"]).json()
    assert len(second["results"]) == 50
    assert not {c["id"] for c in first["results"]} & {c["id"] for c in second["results"]}
    assert len(api.get("/api/v1/contacts/?page_size=100").json()["results"]) == 100
    assert_error(api.get("/api/v1/contacts/?page_size=101"), 400, "invalid_page_size")
    assert_error(api.get("/api/v1/contacts/?page_size=abc"), 400, "invalid_page_size")
    assert_error(api.get("/api/v1/contacts/?cursor=garbage"), 400, "invalid_cursor")


def test_ordering_by_name_is_offered(tenant_a, api):
    with schema_context("alpha"):
        for name in ("Carol", "Alice", "Bob"):
            services.create_contact(phone=factories.phone(), name=name)
    names = [c["name"] for c in api.get("/api/v1/contacts/?ordering=name").json()["results"]]
    assert names == ["Alice", "Bob", "Carol"]


@pytest.fixture
def people(tenant_a):
    with schema_context("alpha"):
        vip = Tag.objects.create(name="vip")
        services.create_contact(
            phone="+14155552671", name="Johanna Smith", email="jo@acme.example", tags=[vip]
        )
        services.create_contact(phone="+442079460958", name="Oliver Twist", email="oliver@workhouse.example")
        services.create_contact(phone="+4930123456", name="Marlene D", email="md@berlin.example")


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("hann", ["Johanna Smith"]),  # fragment inside a word
        ("smith joh", ["Johanna Smith"]),  # words in any order, prefixes
        ("workhouse", ["Oliver Twist"]),  # email
        ("vip", ["Johanna Smith"]),  # tag
        ("(415) 555-2671", ["Johanna Smith"]),
        ("+1 415 555 2671", ["Johanna Smith"]),
        ("0014155552671", ["Johanna Smith"]),
        ("14155552671", ["Johanna Smith"]),  # a WhatsApp wa_id
        ("020 7946 0958", ["Oliver Twist"]),  # national format with trunk zero
        ("7946", ["Oliver Twist"]),  # digits fragment
        ("nobody", []),
    ],
)
def test_search_finds_by_partial_name_email_tag_and_phone_written_differently(api, people, query, expected):
    results = api.get("/api/v1/contacts/", {"search": query}).json()["results"]
    assert [c["name"] for c in results] == expected


def test_filters_by_tag_consent_and_blocked(api, people, tenant_a):
    with schema_context("alpha"):
        Contact.objects.filter(name="Oliver Twist").update(blocked=True, marketing_consent="opted_out")
    assert [c["name"] for c in api.get("/api/v1/contacts/?tag=VIP").json()["results"]] == ["Johanna Smith"]
    assert [c["name"] for c in api.get("/api/v1/contacts/?blocked=true").json()["results"]] == [
        "Oliver Twist"
    ]
    assert len(api.get("/api/v1/contacts/?marketing_consent=opted_out").json()["results"]) == 1
    assert_error(api.get("/api/v1/contacts/?marketing_consent=maybe"), 400, "validation_error")


def test_merge_through_the_api_keeps_one_contact_with_both_histories(api, tenant_a, owner_a):
    with schema_context("alpha"):
        keep = services.create_contact(phone="+14155550001", name="Keep")
        gone = services.create_contact(
            phone="+14155550002", email="g@example.test", tags=services.tags_by_name(["x"])
        )
        services.add_note(contact=gone, body="old note", author=owner_a)
    response = post(api, f"/api/v1/contacts/{keep.pk}/merge/", {"other": gone.pk})
    assert response.status_code == 200, response.content
    assert response.json()["email"] == "g@example.test" and response.json()["tags"] == ["x"]
    assert api.get(f"/api/v1/contacts/{gone.pk}/").status_code == 404
    notes = api.get(f"/api/v1/notes/?contact={keep.pk}").json()["results"]
    assert [n["body"] for n in notes] == ["old note"]
    assert_error(post(api, f"/api/v1/contacts/{keep.pk}/merge/", {"other": keep.pk}), 400, "same_contact")


LIST_URLS = [
    "/api/v1/contacts/",
    "/api/v1/contacts/?search=person",
    "/api/v1/companies/",
    "/api/v1/tags/",
    "/api/v1/notes/",
    "/api/v1/pipelines/",
    "/api/v1/stages/",
    "/api/v1/deals/",
    "/api/v1/tasks/",
    "/api/v1/agents/",
    "/api/v1/teams/",
    "/api/v1/attribute-definitions/",
    "/api/v1/contact-imports/",
]


@pytest.mark.parametrize("url", LIST_URLS)
def test_list_queries_stay_constant_as_the_list_grows(tenant_a, owner_a, api, url):
    def count() -> int:
        with CaptureQueriesContext(db_connection) as captured:
            response = api.get(url)
        assert response.status_code == 200
        return len(captured)

    api.get("/api/v1/tags/")  # the key's first use records last_used_at: not part of the list
    with schema_context("alpha"):
        factories.one_of_everything(owner_a)
    small = count()
    with schema_context("alpha"):
        for _ in range(6):
            factories.one_of_everything(owner_a)
    assert count() == small


def test_the_export_streams_csv_that_the_import_reads_back(tenant_a, api, people):
    response = api.get("/api/v1/contacts/export/")
    assert response.status_code == 200 and response.streaming
    assert response["Content-Type"].startswith("text/csv")
    text = b"".join(response.streaming_content).decode()
    lines = text.strip().splitlines()
    assert lines[0].startswith("phone,name,email,company,tags,marketing_consent")
    assert len(lines) == 4
    assert any("+14155552671,Johanna Smith" in line and "vip" in line for line in lines)


@pytest.mark.parametrize(
    "name", ['=HYPERLINK("http://evil","x")', "+1+1", "-1+1", "@SUM(A1)", "\t=1", "\r=1"]
)
def test_an_exported_name_a_spreadsheet_would_run_as_a_formula_starts_with_a_quote(tenant_a, api, name):
    with schema_context("alpha"):
        services.create_contact(phone="+4915112345678", name=name, email="x@example.test")
    response = api.get("/api/v1/contacts/export/")
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    # The name as stored (a service strips the tab or CR), behind a quote; the E.164 phone as it is.
    assert rows[1][:3] == ["+4915112345678", "'" + name.strip(), "x@example.test"]


def test_a_quoted_export_imports_back_as_it_was(tenant_a, api):
    with schema_context("alpha"):
        services.create_contact(phone="+4915112345678", name="=1+1 Ada")
    exported = b"".join(api.get("/api/v1/contacts/export/").streaming_content)
    with schema_context("alpha"):
        Contact.objects.all().delete()
        job = services.start_contact_import(filename="back.csv", content=exported, created_by=None)
        services.run_contact_import(contact_import=job)
        assert list(Contact.objects.values_list("phone", "name")) == [("+4915112345678", "=1+1 Ada")]


def test_the_export_page_quotes_formulas_too(tenant_a, owner_a, client_a):
    from conftest import login

    with schema_context("alpha"):
        services.create_contact(phone="+4915112345678", name="@evil")
    login(client_a, tenant_a, owner_a)
    text = b"".join(client_a.get("/contacts/export.csv").streaming_content).decode()
    assert list(csv.reader(io.StringIO(text)))[1][1] == "'@evil"
