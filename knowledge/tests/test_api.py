"""API v1: /api/v1/knowledge/documents/ and /faqs/: shapes, status codes, roles, tenants, query counts."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django_tenants.utils import schema_context

from crm.tests.helpers import api_client, assert_error, issue_key
from knowledge import services
from knowledge.models import Faq, Source
from knowledge.tests.documents import pdf_bytes

pytestmark = pytest.mark.usefixtures("inline_jobs")

DOCS = "/api/v1/knowledge/documents/"
FAQS = "/api/v1/knowledge/faqs/"


@pytest.fixture
def admin_api(tenant_a):
    return api_client(tenant_a, issue_key(tenant_a, role="admin"))


def test_pasted_text_is_created_indexed_with_201(tenant_a, admin_api):
    response = admin_api.post(
        DOCS, {"title": "Hours", "text": "Open 9 to 5."}, content_type="application/json"
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert {"id", "title", "status"} <= set(body)
    assert (body["title"], body["status"]) == ("Hours", "ready")


def test_an_uploaded_file_answers_202_while_indexing(tenant_a, admin_api, monkeypatch):
    from knowledge import actors

    monkeypatch.setattr(actors.index_source_job, "send", lambda source_id: None)  # the job has not run yet
    upload = SimpleUploadedFile("prices.pdf", pdf_bytes(["A haircut costs 20 euros."]), "application/pdf")
    response = admin_api.post(DOCS, {"file": upload, "title": "Prices"})
    assert response.status_code == 202, response.content
    assert response.json()["status"] == "processing"
    document = admin_api.get(f"{DOCS}{response.json()['id']}/").json()
    assert document["title"] == "Prices" and document["file_name"] == "prices.pdf"


def test_a_document_can_be_read_listed_and_deleted(tenant_a, admin_api):
    created = admin_api.post(DOCS, {"title": "A", "text": "Alpha."}, content_type="application/json").json()
    listed = admin_api.get(DOCS).json()
    assert [d["id"] for d in listed["results"]] == [created["id"]]
    assert admin_api.get(f"{DOCS}{created['id']}/").json()["status"] == "ready"
    assert admin_api.delete(f"{DOCS}{created['id']}/").status_code == 204
    with schema_context(tenant_a.schema_name):
        assert not Source.objects.exists()


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        ({}, "invalid_document"),
        ({"title": "x", "text": "  "}, "empty_text"),
        ({"text": "a", "url": "http://example.com/"}, "invalid_document"),
        ({"url": "http://127.0.0.1/"}, "address_not_allowed"),
        ({"url": "file:///etc/passwd"}, "scheme_not_allowed"),
        ({"title": "x", "text": "a", "language": "klingon"}, "validation_error"),
    ],
)
def test_bad_documents_are_refused_with_a_stable_code(tenant_a, admin_api, payload, code):
    response = admin_api.post(DOCS, payload, content_type="application/json")
    assert_error(response, 400, code)
    with schema_context(tenant_a.schema_name):
        assert not Source.objects.exists()


@pytest.mark.parametrize(
    ("name", "data", "code"),
    [
        ("x.exe", b"MZ", "unsupported_type"),
        ("empty.txt", b"", "empty_file"),
        ("a.pdf", b"nope", "invalid_file"),
    ],
)
def test_bad_files_are_refused_with_a_stable_code(tenant_a, admin_api, name, data, code):
    response = admin_api.post(DOCS, {"file": SimpleUploadedFile(name, data)})
    assert_error(response, 400, code)


def test_an_oversized_file_is_refused(tenant_a, admin_api, settings):
    settings.KNOWLEDGE_MAX_FILE_BYTES = 10
    response = admin_api.post(DOCS, {"file": SimpleUploadedFile("a.txt", b"x" * 11)})
    assert_error(response, 400, "too_large")


def test_a_pdf_without_text_is_accepted_then_failed_with_its_reason(tenant_a, admin_api):
    response = admin_api.post(DOCS, {"file": SimpleUploadedFile("scan.pdf", pdf_bytes(None))})
    document = admin_api.get(f"{DOCS}{response.json()['id']}/").json()
    assert (document["status"], document["error_code"]) == ("failed", "pdf_no_text")


def test_faqs_have_crud_and_approval(tenant_a, admin_api):
    created = admin_api.post(
        FAQS, {"question": "Gift cards?", "answer": "Yes, from 10 euros."}, content_type="application/json"
    )
    assert created.status_code == 201, created.content
    faq = created.json()
    assert faq["status"] == "approved" and faq["source"]
    pending = admin_api.post(
        FAQS,
        {"question": "Parking?", "answer": "Behind the shop.", "status": "pending"},
        content_type="application/json",
    ).json()
    assert pending["source"] is None
    approved = admin_api.patch(
        f"{FAQS}{pending['id']}/", {"status": "approved"}, content_type="application/json"
    )
    assert approved.json()["status"] == "approved" and approved.json()["source"]
    edited = admin_api.patch(f"{FAQS}{faq['id']}/", {"answer": "Yes."}, content_type="application/json")
    assert edited.json()["answer"] == "Yes."
    assert_error(admin_api.post(FAQS, {"question": "", "answer": "x"}, content_type="application/json"), 400)
    assert admin_api.delete(f"{FAQS}{faq['id']}/").status_code == 204
    assert [f["id"] for f in admin_api.get(FAQS).json()["results"]] == [pending["id"]]


ROLES = ["agent", "supervisor", "admin", "owner"]


@pytest.mark.parametrize("role", ROLES)
def test_supervisors_read_and_admins_write(tenant_a, role):
    client = api_client(tenant_a, issue_key(tenant_a, role=role, name=f"k-{role}"))
    read = client.get(DOCS)
    write = client.post(DOCS, {"title": "t", "text": "x"}, content_type="application/json")
    faq_write = client.post(FAQS, {"question": "q", "answer": "a"}, content_type="application/json")
    assert read.status_code == (200 if role != "agent" else 403)
    assert write.status_code == (201 if role in ("admin", "owner") else 403)
    assert faq_write.status_code == (201 if role in ("admin", "owner") else 403)
    if write.status_code == 403:
        assert_error(write, 403, "permission_denied")


def test_another_tenants_documents_and_faqs_are_not_found(tenant_a, tenant_b, admin_api):
    with schema_context(tenant_b.schema_name):
        source = services.create_text_source(title="Beta", text="Beta only.")
        faq = services.create_faq(question="Beta?", answer="Beta.")
    assert_error(admin_api.get(f"{DOCS}{source.pk}/"), 404)
    assert_error(admin_api.delete(f"{DOCS}{source.pk}/"), 404)
    assert_error(admin_api.get(f"{FAQS}{faq.pk}/"), 404)
    assert_error(admin_api.patch(f"{FAQS}{faq.pk}/", {"answer": "x"}, content_type="application/json"), 404)
    assert admin_api.get(DOCS).json()["results"] == []
    with schema_context(tenant_b.schema_name):
        assert Source.objects.filter(pk=source.pk).exists() and Faq.objects.filter(pk=faq.pk).exists()


def test_the_lists_take_a_fixed_number_of_queries(tenant_a, admin_api, django_assert_max_num_queries):
    with schema_context(tenant_a.schema_name):
        for i in range(3):
            services.create_text_source(title=f"T{i}", text=f"Text {i}.")
            services.create_faq(question=f"Q{i}?", answer=f"A{i}.")
    admin_api.get(DOCS)  # warm the key and tenant caches
    with django_assert_max_num_queries(8) as few:
        admin_api.get(DOCS)
    with schema_context(tenant_a.schema_name):
        for i in range(10):
            services.create_text_source(title=f"More{i}", text=f"More {i}.")
            services.create_faq(question=f"More{i}?", answer=f"More {i}.")
    with django_assert_max_num_queries(len(few.captured_queries)):
        assert len(admin_api.get(DOCS).json()["results"]) == 13
    with django_assert_max_num_queries(len(few.captured_queries)):
        assert len(admin_api.get(FAQS).json()["results"]) == 13
