"""Cross-tenant tests for every endpoint: A's key on B's host → 401; A's ids on B's host → 404."""

from __future__ import annotations

from typing import Any

import pytest
from django_tenants.utils import schema_context

from crm.tests.helpers import api_client, assert_error, issue_key

LISTS = [
    "/api/v1/contacts/",
    "/api/v1/contacts/export/",
    "/api/v1/companies/",
    "/api/v1/tags/",
    "/api/v1/attribute-definitions/",
    "/api/v1/notes/",
    "/api/v1/pipelines/",
    "/api/v1/stages/",
    "/api/v1/deals/",
    "/api/v1/tasks/",
    "/api/v1/agents/",
    "/api/v1/teams/",
    "/api/v1/contact-imports/",
]


def _alpha_objects(owner: Any) -> dict[str, int]:
    from crm import services
    from crm.models import ContactImport

    with schema_context("alpha"):
        contact = services.create_contact(phone="+14155550123", name="Alpha person")
        other = services.create_contact(phone="+14155550124", name="Alpha other")
        deal = services.create_deal(title="Alpha deal", contact=contact)
        agent = services.create_agent(email="x@alpha.test", password=None, role="agent")
        return {
            "contacts": contact.pk,
            "other_contact": other.pk,
            "companies": services.save_company(name="Alpha Co").pk,
            "tags": services.save_tag(name="alpha-tag").pk,
            "attribute-definitions": services.save_attribute_definition(key="k", label="K", type="text").pk,
            "notes": services.add_note(contact=contact, body="n", author=owner).pk,
            "pipelines": deal.pipeline_id,
            "stages": deal.stage_id,
            "deals": deal.pk,
            "tasks": services.create_task(title="t").pk,
            "agents": agent.pk,
            "teams": services.save_team(name="Alpha team").pk,
            "contact-imports": ContactImport.objects.create(content="phone\n").pk,
        }


@pytest.mark.parametrize("url", LISTS)
@pytest.mark.parametrize("method", ["get", "post"])
def test_a_key_of_tenant_a_is_refused_on_tenant_b_host(tenant_a, tenant_b, url, method):
    key_a = issue_key(tenant_a)
    response = getattr(api_client(tenant_b, key_a), method)(url)
    assert_error(response, 401, "authentication_failed")


@pytest.fixture
def alpha_ids(tenant_a, owner_a):
    return _alpha_objects(owner_a)


DETAIL_CALLS = [
    ("get", "{resource}/{id}/"),
    ("patch", "{resource}/{id}/"),
    ("delete", "{resource}/{id}/"),
]
RESOURCES = [
    "contacts",
    "companies",
    "tags",
    "attribute-definitions",
    "notes",
    "pipelines",
    "stages",
    "deals",
    "tasks",
    "agents",
    "teams",
    "contact-imports",
]


@pytest.mark.parametrize("resource", RESOURCES)
@pytest.mark.parametrize(("method", "pattern"), DETAIL_CALLS)
def test_ids_of_tenant_a_are_not_found_on_tenant_b_host(tenant_b, alpha_ids, resource, method, pattern):
    key_b = issue_key(tenant_b, role="owner")
    url = "/api/v1/" + pattern.format(resource=resource, id=alpha_ids[resource])
    response = getattr(api_client(tenant_b, key_b), method)(url, {}, content_type="application/json")
    # Read-only resources: no write on any host (agents take PATCH of availability and capacity only).
    read_only = {("patch", "contact-imports"), ("delete", "contact-imports"), ("delete", "agents")}
    if (method, resource) in read_only:
        assert response.status_code == 405
        return
    assert_error(response, 404, "not_found")


@pytest.mark.parametrize(
    ("url", "body"),
    [
        ("/api/v1/contacts/{contacts}/merge/", {"other": "{other_contact}"}),
        ("/api/v1/deals/{deals}/move/", {"stage": "{stages}"}),
        ("/api/v1/deals/{deals}/history/", None),
        ("/api/v1/contact-imports/{contact-imports}/rejections/", None),
    ],
)
def test_actions_on_ids_of_tenant_a_are_not_found_on_tenant_b_host(tenant_b, alpha_ids, url, body):
    key_b = issue_key(tenant_b, role="owner")
    client = api_client(tenant_b, key_b)
    target = url.format(**alpha_ids)
    if body is None:
        response = client.get(target)
    else:
        payload = {k: int(v.format(**alpha_ids)) for k, v in body.items()}
        response = client.post(target, payload, content_type="application/json")
    assert_error(response, 404, "not_found")


def test_tenant_b_cannot_point_its_records_at_tenant_a_ids(tenant_b, alpha_ids):
    """A related id from another tenant is simply unknown here: a validation error naming the field."""
    key_b = issue_key(tenant_b)
    client = api_client(tenant_b, key_b)
    response = client.post(
        "/api/v1/notes/", {"contact": alpha_ids["contacts"], "body": "x"}, content_type="application/json"
    )
    error = assert_error(response, 400, "validation_error")
    assert "contact" in error["details"]


def test_a_session_of_tenant_a_is_refused_on_tenant_b_host(tenant_a, client_a, owner_a):
    from conftest import login

    login(client_a, tenant_a, owner_a)
    client_a.defaults["HTTP_HOST"] = "beta.localhost"
    assert_error(client_a.get("/api/v1/contacts/"), 401)


def test_the_platform_host_has_no_tenant_api(public_client):
    assert public_client.get("/api/v1/contacts/").status_code == 404
