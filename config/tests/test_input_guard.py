"""A NUL character (PostgreSQL stores none) in a query or a form is a 400 before any view runs."""

from __future__ import annotations

from django_tenants.utils import schema_context

from conftest import login
from crm.models import Tag
from crm.tests.helpers import api_client, assert_error, issue_key


def test_a_nul_in_an_api_query_is_a_400_in_the_error_shape_naming_the_parameter(tenant_a):
    api = api_client(tenant_a, issue_key(tenant_a, role="owner"))
    error = assert_error(api.get("/api/v1/contacts/?search=%00"), 400, "validation_error")
    assert error["details"] == {"search": ["Null characters are not allowed."]}
    assert list(assert_error(api.get("/api/v1/deals/?title%00=x"), 400)["details"]) == ["title\\x00"]


def test_a_nul_in_a_page_query_is_a_400_page(client_a, tenant_a, owner_a):
    login(client_a, tenant_a, owner_a)
    for url in ("/inbox/?q=%00", "/contacts/?q=a%00b", "/contacts/export.csv?q=%00"):
        response = client_a.get(url)
        assert response.status_code == 400
        assert response["Content-Type"].startswith("text/html")


def test_a_nul_in_a_posted_form_is_a_400_and_writes_nothing(client_a, tenant_a, owner_a):
    login(client_a, tenant_a, owner_a)
    response = client_a.post("/api/v1/tags/", {"name": "vip\x00"})  # a session, form-encoded
    assert_error(response, 400, "validation_error")
    with schema_context(tenant_a.schema_name):
        assert not Tag.objects.exists()


def test_a_query_without_nul_passes(client_a, tenant_a, owner_a):
    login(client_a, tenant_a, owner_a)
    assert client_a.get("/contacts/?q=ada").status_code == 200
