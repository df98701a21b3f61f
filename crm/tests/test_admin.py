from __future__ import annotations

import pytest
from django.db import connection as db_connection
from django.test.utils import CaptureQueriesContext
from django_tenants.utils import schema_context

from conftest import login, make_agent
from crm.tests.factories import one_of_everything

CHANGELISTS = [
    "agent",
    "team",
    "invitation",
    "tag",
    "company",
    "attributedefinition",
    "contact",
    "note",
    "pipeline",
    "stage",
    "deal",
    "dealstagechange",
    "task",
    "apikey",
    "contactimport",
]


def _queries(client, url: str) -> int:
    with CaptureQueriesContext(db_connection) as captured:
        response = client.get(url)
    assert response.status_code == 200, url
    return len(captured)


@pytest.mark.parametrize("model", CHANGELISTS)
def test_every_tenant_admin_list_page_runs_the_same_number_of_queries_as_it_grows(
    tenant_a, client_a, owner_a, model
):
    login(client_a, tenant_a, owner_a)
    url = f"/admin/crm/{model}/"
    with schema_context(tenant_a.schema_name):
        one_of_everything(owner_a)
    client_a.get(url)  # the host's tenant is looked up once, then cached
    small = _queries(client_a, url)
    with schema_context(tenant_a.schema_name):
        for _ in range(4):
            one_of_everything(owner_a)
    assert _queries(client_a, url) == small


@pytest.mark.parametrize("model", CHANGELISTS)
def test_every_tenant_admin_add_or_change_page_opens(tenant_a, client_a, owner_a, model):
    from django.apps import apps

    login(client_a, tenant_a, owner_a)
    with schema_context(tenant_a.schema_name):
        one_of_everything(owner_a)
        obj = apps.get_model("crm", model).objects.first()
    assert client_a.get(f"/admin/crm/{model}/{obj.pk}/change/").status_code == 200


def test_admin_search_finds_a_contact_by_a_phone_written_differently(tenant_a, client_a, owner_a):
    from crm import services

    login(client_a, tenant_a, owner_a)
    with schema_context(tenant_a.schema_name):
        services.create_contact(phone="+14155552671", name="Grace")
    response = client_a.get("/admin/crm/contact/", {"q": "(415) 555-2671"})
    assert b"Grace" in response.content


def test_agents_and_supervisors_have_no_tenant_admin(tenant_a, client_a):
    agent = make_agent(tenant_a, email="sup@alpha.test", role="supervisor")
    login(client_a, tenant_a, agent.user)
    response = client_a.get("/admin/crm/contact/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_an_admin_cannot_promote_anyone_to_owner_in_the_admin(tenant_a, client_a):
    admin_agent = make_agent(tenant_a, email="admin@alpha.test", role="admin")
    target = make_agent(tenant_a, email="agent@alpha.test", role="agent")
    login(client_a, tenant_a, admin_agent.user)
    response = client_a.post(
        f"/admin/crm/agent/{target.pk}/change/",
        {"user": target.user_id, "role": "owner", "availability": "online"},
    )
    assert response.status_code == 200  # the form comes back with the error
    assert b"Only an owner" in response.content
    with schema_context(tenant_a.schema_name):
        target.refresh_from_db()
    assert target.role == "agent"


def test_an_api_key_made_in_admin_is_shown_once(tenant_a, client_a, owner_a):
    login(client_a, tenant_a, owner_a)
    response = client_a.post(
        "/admin/crm/apikey/add/",
        {"name": "zapier", "kind": "integration", "role": "supervisor", "expires_in_days": "30"},
        follow=True,
    )
    assert response.status_code == 200
    assert b"wacrm_" in response.content
