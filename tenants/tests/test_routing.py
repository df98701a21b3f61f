from __future__ import annotations

from django_tenants.utils import schema_context

from conftest import login
from crm.models import Contact


def test_an_unknown_host_gets_a_clear_404_page(db):
    from django.test import Client

    response = Client(HTTP_HOST="nobody.localhost").get("/admin/")
    assert response.status_code == 404
    assert b"Workspace not found" in response.content


def test_a_suspended_tenant_gets_a_clear_403_page(tenant_a, client_a):
    tenant_a.is_active = False
    tenant_a.save(update_fields=["is_active"])
    response = client_a.get("/admin/")
    assert response.status_code == 403
    assert b"suspended" in response.content


def test_each_tenant_sees_only_its_own_data_over_http(
    tenant_a, tenant_b, client_a, client_b, owner_a, owner_b
):
    with schema_context("alpha"):
        Contact.objects.create(name="Same Name", phone="+15550000001")
        Contact.objects.create(name="Only In Alpha", phone="+15550000002")
    with schema_context("beta"):
        Contact.objects.create(name="Same Name", phone="+15550000001")
    login(client_a, tenant_a, owner_a)
    login(client_b, tenant_b, owner_b)
    page_a = client_a.get("/admin/crm/contact/")
    page_b = client_b.get("/admin/crm/contact/")
    assert page_a.status_code == 200 and page_b.status_code == 200
    assert b"Only In Alpha" in page_a.content
    assert b"Only In Alpha" not in page_b.content
    assert b"Same Name" in page_b.content


def test_a_session_from_one_tenant_is_worthless_on_another(tenant_a, tenant_b, client_a, owner_a):
    login(client_a, tenant_a, owner_a)
    assert client_a.get("/admin/").status_code == 200
    client_a.defaults["HTTP_HOST"] = "beta.localhost"
    response = client_a.get("/admin/")
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


def test_a_host_is_looked_up_once_and_a_suspension_applies_at_once(tenant_a, client_a):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from tenants.services import set_tenant_active

    client_a.get("/login/")
    with CaptureQueriesContext(connection) as queries:
        assert client_a.get("/login/").status_code == 200
    assert not [q for q in queries.captured_queries if "tenants_domain" in q["sql"]]
    set_tenant_active(tenant=tenant_a, active=False)
    assert client_a.get("/login/").status_code == 403
