"""Regression tests for what schemathesis found (test_api_fuzz.py): each is a clean 4xx in the one error
shape, with a stable code, and writes nothing."""

from __future__ import annotations

import base64

import pytest
from django_tenants.utils import schema_context

from crm import services
from crm.models import AttributeDefinition, Company, Contact, Deal, Pipeline, Stage
from crm.tests.helpers import api_client, assert_error, issue_key


@pytest.fixture
def api(tenant_a):
    return api_client(tenant_a, issue_key(tenant_a, role="owner"))


def post(client, url, body):
    return client.post(url, body, content_type="application/json")


def patch(client, url, body):
    return client.patch(url, body, content_type="application/json")


def count(model):
    with schema_context("alpha"):
        return model.objects.count()


def test_creating_an_attribute_without_a_type_is_a_400_naming_the_type(api):
    error = assert_error(
        post(api, "/api/v1/attribute-definitions/", {"key": "tier", "label": "Tier"}), 400, "validation_error"
    )
    assert list(error["details"]) == ["type"]
    assert count(AttributeDefinition) == 0


def test_renaming_a_pipeline_to_another_pipelines_name_in_any_case_is_a_409(api):
    with schema_context("alpha"):
        services.create_pipeline(name="Sales")
        partners = services.create_pipeline(name="Partners")
    error = assert_error(
        patch(api, f"/api/v1/pipelines/{partners.pk}/", {"name": "sales"}), 409, "duplicate_name"
    )
    assert list(error["details"]) == ["name"]
    with schema_context("alpha"):
        assert sorted(Pipeline.objects.values_list("name", flat=True)) == ["Partners", "Sales"]
    renamed = patch(api, f"/api/v1/pipelines/{partners.pk}/", {"name": " Resellers "})
    assert renamed.status_code == 200 and renamed.json()["name"] == "Resellers"


def test_deleting_a_pipeline_with_deals_is_a_409_and_deletes_nothing(api):
    with schema_context("alpha"):
        pipeline = services.create_pipeline(name="Sales")
        deal = services.create_deal(title="Big one", pipeline=pipeline)
        services.move_deal(deal=deal, stage=pipeline.stages.get(name="Lost"))  # closed deals count too
    assert_error(api.delete(f"/api/v1/pipelines/{pipeline.pk}/"), 409, "pipeline_in_use")
    with schema_context("alpha"):
        assert Pipeline.objects.filter(pk=pipeline.pk).exists()
        assert Stage.objects.filter(pipeline=pipeline).count() == 5
        assert Deal.objects.count() == 1


def test_deleting_a_pipeline_without_deals_deletes_it_with_its_stages(api):
    with schema_context("alpha"):
        pipeline = services.create_pipeline(name="Sales")
    assert api.delete(f"/api/v1/pipelines/{pipeline.pk}/").status_code == 204
    assert count(Pipeline) == 0 and count(Stage) == 0


def test_the_schema_documents_the_pipeline_conflicts(client_a):
    paths = client_a.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()["paths"]
    delete = paths["/api/v1/pipelines/{id}/"]["delete"]
    assert "409" in delete["responses"] and "pipeline_in_use" in delete["description"]
    assert "duplicate_name" in paths["/api/v1/pipelines/{id}/"]["patch"]["description"]


@pytest.mark.parametrize(
    "value",
    [
        "2020-01-01T00:00:00-23:59",  # Python takes the offset, PostgreSQL does not (±15:59 at most)
        "9999-12-31T23:00:00-05:00",  # after the year 9999 in UTC
        "0001-01-01T00:00:00+05:00",  # before the year 1 in UTC
    ],
)
def test_a_filter_datetime_out_of_range_is_a_400_on_the_contact_and_task_lists(api, value):
    error = assert_error(api.get("/api/v1/contacts/", {"created_after": value}), 400, "validation_error")
    assert list(error["details"]) == ["created_after"]
    assert_error(api.get("/api/v1/tasks/", {"due_before": value}), 400, "validation_error")


def test_an_out_of_range_offset_on_the_export_is_a_400_before_any_byte_streams(api):
    with schema_context("alpha"):
        services.create_contact(phone="+14155550100", name="Ada")
    response = api.get("/api/v1/contacts/export/", {"created_after": "2020-01-01T00:00:00-23:59"})
    assert not response.streaming
    error = assert_error(response, 400, "validation_error")
    assert list(error["details"]) == ["created_after"]


def test_the_export_with_a_valid_offset_streams_the_matching_contacts(api):
    with schema_context("alpha"):
        services.create_contact(phone="+14155550100", name="Ada")
    response = api.get("/api/v1/contacts/export/", {"created_after": "2000-01-01T00:00:00+14:00"})
    assert response.status_code == 200 and response.streaming
    assert "+14155550100" in b"".join(response.streaming_content).decode()


def test_company_name_is_null_without_a_company_as_the_schema_says(api, client_a):
    schema = client_a.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    assert schema["components"]["schemas"]["Contact"]["properties"]["company_name"]["nullable"] is True
    alone = post(api, "/api/v1/contacts/", {"phone": "+14155550100"}).json()
    assert alone["company"] is None and alone["company_name"] is None
    company = post(api, "/api/v1/companies/", {"name": "Acme"}).json()
    employed = post(api, "/api/v1/contacts/", {"phone": "+14155550101", "company": company["id"]}).json()
    assert employed["company_name"] == "Acme"


def test_creating_and_updating_a_company_answer_its_contact_count(api):
    created = post(api, "/api/v1/companies/", {"name": "Acme"})
    assert created.status_code == 201 and created.json()["contact_count"] == 0
    post(api, "/api/v1/contacts/", {"phone": "+14155550100", "company": created.json()["id"]})
    updated = patch(api, f"/api/v1/companies/{created.json()['id']}/", {"domain": "acme.test"})
    assert updated.json()["contact_count"] == 1


@pytest.mark.parametrize(
    "url",
    [
        "/api/v1/contacts/?search=%00",
        "/api/v1/contacts/?search=ad%00a",
        "/api/v1/contacts/?tag=%00",
        "/api/v1/companies/?search=%00",
        "/api/v1/contacts/export/?search=%00",
        "/api/v1/contacts/?x%00=1",
    ],
)
def test_a_nul_byte_in_a_query_parameter_is_a_400(api, url):
    error = assert_error(api.get(url), 400, "validation_error")
    assert len(error["details"]) == 1


@pytest.mark.parametrize(
    "body",
    [
        {"phone": "+14155550100", "name": "Ada\x00"},
        {"phone": "+14155550100", "attributes": {"note": "a\x00b"}},
        {"phone": "+14155550100", "attributes": {"no\x00te": "ab"}},
        {"phone": "+14155550100", "tags": ["vip", "\x00"]},
    ],
)
def test_a_nul_byte_in_a_json_field_is_a_400_naming_it_and_writes_nothing(api, body):
    with schema_context("alpha"):
        services.save_attribute_definition(key="note", label="Note", type="text")
    error = assert_error(post(api, "/api/v1/contacts/", body), 400, "validation_error")
    field = next(iter(error["details"]))
    assert field.split(".")[0] in body
    assert count(Contact) == 0


def test_a_nul_byte_in_a_json_field_of_an_update_writes_nothing(api):
    with schema_context("alpha"):
        services.save_attribute_definition(key="note", label="Note", type="text")
        contact = services.create_contact(phone="+14155550100", name="Ada", attributes={"note": "kept"})
    response = patch(api, f"/api/v1/contacts/{contact.pk}/", {"name": "Eve", "attributes": {"note": "\x00"}})
    assert_error(response, 400, "validation_error")
    with schema_context("alpha"):
        contact.refresh_from_db()
        assert (contact.name, contact.attributes) == ("Ada", {"note": "kept"})


def cursor(query: str) -> str:
    return base64.b64encode(query.encode()).decode()


@pytest.mark.parametrize(
    ("url", "raw"),
    [
        ("/api/v1/contacts/", "not base64 at all"),
        ("/api/v1/contacts/", cursor("p=abc")),  # ordered by id: not a number
        ("/api/v1/teams/", cursor("p=\x00a")),  # ordered by name: a NUL
        ("/api/v1/conversations/", cursor("p=2020-01-01T00:00:00-23:59")),  # an offset PostgreSQL refuses
    ],
)
def test_a_cursor_we_did_not_give_out_is_a_400(api, url, raw):
    assert_error(api.get(url, {"cursor": raw}), 400, "invalid_cursor")


def test_a_cursor_we_gave_out_still_pages(api):
    with schema_context("alpha"):
        Company.objects.bulk_create(Company(name=f"C{n}") for n in range(3))
    first = api.get("/api/v1/companies/", {"page_size": 2}).json()
    second = api.get(first["next"]).json()
    assert len(first["results"]) == 2 and len(second["results"]) == 1


def test_a_number_attribute_of_more_than_15_digits_is_refused(api):
    with schema_context("alpha"):
        services.save_attribute_definition(key="score", label="Score", type="number")
    for value in ("1e999999999", "1000000000000000", 1e300):
        response = post(api, "/api/v1/contacts/", {"phone": "+14155550100", "attributes": {"score": value}})
        assert_error(response, 400, "invalid_attribute")
    ok = post(api, "/api/v1/contacts/", {"phone": "+14155550100", "attributes": {"score": "999999999999999"}})
    assert ok.json()["attributes"] == {"score": 999999999999999}


def test_json_nested_deeper_than_the_parser_allows_is_a_400(api):
    body = '{"phone": "+14155550100", "attributes": ' + "[" * 100_000 + "]" * 100_000 + "}"
    assert_error(api.post("/api/v1/contacts/", body, content_type="application/json"), 400, "parse_error")
    assert count(Contact) == 0
