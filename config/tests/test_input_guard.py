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


def test_a_nul_in_a_multipart_form_field_is_a_400_and_writes_nothing(client_a, tenant_a, owner_a):
    from crm.models import Company

    login(client_a, tenant_a, owner_a)
    # The test client posts multipart/form-data unless told otherwise: a page form as a browser with a file
    # input (or a script) would send it.
    response = client_a.post("/companies/new/", {"name": "Acme\x00"})
    assert response.status_code == 400
    assert response["Content-Type"].startswith("text/html")
    with schema_context(tenant_a.schema_name):
        assert not Company.objects.exists()


def test_a_nul_in_a_field_beside_an_uploaded_file_is_a_400_and_imports_nothing(client_a, tenant_a, owner_a):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from crm.models import ContactImport

    login(client_a, tenant_a, owner_a)
    upload = SimpleUploadedFile("contacts.csv", b"phone,name\n+14155550100,Ada\n", "text/csv")
    assert client_a.post("/contacts/import/", {"file": upload, "note": "a\x00b"}).status_code == 400
    with schema_context(tenant_a.schema_name):
        assert not ContactImport.objects.exists()


def test_a_nul_in_an_uploaded_files_name_never_reaches_the_database(client_a, tenant_a, owner_a):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from crm.models import ContactImport

    login(client_a, tenant_a, owner_a)
    upload = SimpleUploadedFile("contacts\x00.csv", b"phone,name\n+14155550100,Ada\n", "text/csv")
    assert client_a.post("/contacts/import/", {"file": upload}).status_code == 302
    with schema_context(tenant_a.schema_name):
        assert "\x00" not in ContactImport.objects.get().filename


def test_a_nul_in_a_multipart_api_form_is_a_400_in_the_error_shape(tenant_a):
    api = api_client(tenant_a, issue_key(tenant_a, role="owner"))
    error = assert_error(api.post("/api/v1/tags/", {"name": "vip\x00"}), 400, "validation_error")
    assert error["details"] == {"name": ["Null characters are not allowed."]}


def test_a_multipart_form_without_nul_still_uploads(client_a, tenant_a, owner_a):
    from django.core.files.uploadedfile import SimpleUploadedFile

    login(client_a, tenant_a, owner_a)
    upload = SimpleUploadedFile("contacts.csv", b"phone,name\n+14155550100,Ada\n", "text/csv")
    assert client_a.post("/contacts/import/", {"file": upload}).status_code == 302
