"""Settings → AI → Knowledge: owners and admins only, every action through the page, hostile text escaped."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django_tenants.utils import schema_context

from conftest import login, make_agent
from knowledge import services
from knowledge.models import Faq, Source

pytestmark = pytest.mark.usefixtures("inline_jobs")

PAGE = "/settings/ai/knowledge/"
HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'


@pytest.fixture
def admin_client(tenant_a, client_a):
    agent = make_agent(tenant_a, email="kadmin@alpha.test", role="admin")
    return login(client_a, tenant_a, agent.user)


@pytest.mark.parametrize("role", ["agent", "supervisor"])
def test_agents_and_supervisors_get_403(tenant_a, client_a, role):
    agent = make_agent(tenant_a, email=f"{role}.k@alpha.test", role=role)
    login(client_a, tenant_a, agent.user)
    assert client_a.get(PAGE).status_code == 403
    assert client_a.post(f"{PAGE}text/", {"title": "t", "text": "x", "language": "auto"}).status_code == 403
    with schema_context(tenant_a.schema_name):
        assert not Source.objects.exists()


def test_signed_out_visitors_are_sent_to_sign_in(client_a, tenant_a):
    response = client_a.get(PAGE)
    assert response.status_code == 302 and "/login/" in response["Location"]


def test_the_page_lists_sources_and_faqs_with_hostile_text_escaped(tenant_a, admin_client):
    with schema_context(tenant_a.schema_name):
        services.create_text_source(title=HOSTILE, text="Hello.")
        services.create_faq(question=HOSTILE, answer=HOSTILE)
        failed = Source.objects.create(
            kind="url", title="p", url="https://x.test/", status="failed", error_code="timeout", error=HOSTILE
        )
    html = admin_client.get(PAGE).content.decode()
    assert "<script>alert" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert" in html
    assert "Failed" in html and failed.pk
    assert 'href="/settings/ai/knowledge/"' in html  # the settings nav links here


def test_an_owner_adds_text_a_file_and_an_faq_then_deletes_them(tenant_a, admin_client):
    assert (
        admin_client.post(
            f"{PAGE}text/", {"title": "Hours", "text": "Open 9-5.", "language": "en"}
        ).status_code
        == 302
    )
    upload = SimpleUploadedFile("prices.txt", b"Haircut 20 euros.")
    assert (
        admin_client.post(f"{PAGE}upload/", {"file": upload, "title": "", "language": "auto"}).status_code
        == 302
    )
    assert (
        admin_client.post(
            f"{PAGE}faqs/", {"question": "Parking?", "answer": "Yes.", "language": "en"}
        ).status_code
        == 302
    )
    with schema_context(tenant_a.schema_name):
        assert sorted(Source.objects.exclude(kind="faq").values_list("title", "status")) == [
            ("Hours", "ready"),
            ("prices", "ready"),
        ]
        faq = Faq.objects.get()
        source = Source.objects.get(title="Hours")
    html = admin_client.get(PAGE).content.decode()
    assert "Hours" in html and "Parking?" in html
    assert admin_client.post(f"{PAGE}sources/{source.pk}/reindex/").status_code == 302
    assert admin_client.post(f"{PAGE}sources/{source.pk}/delete/").status_code == 302
    assert admin_client.post(f"{PAGE}faqs/{faq.pk}/delete/").status_code == 302
    with schema_context(tenant_a.schema_name):
        assert not Source.objects.filter(title="Hours").exists() and not Faq.objects.exists()


def test_a_bad_upload_shows_its_reason(tenant_a, admin_client):
    response = admin_client.post(
        f"{PAGE}upload/", {"file": SimpleUploadedFile("x.exe", b"MZ"), "language": "auto"}, follow=True
    )
    assert "not supported" in response.content.decode()
    with schema_context(tenant_a.schema_name):
        assert not Source.objects.exists()


def test_a_pending_faq_is_edited_and_approved(tenant_a, admin_client):
    with schema_context(tenant_a.schema_name):
        faq = services.create_faq(question="Gift cards?", answer="Maybe.", status="pending")
    assert admin_client.get(f"{PAGE}faqs/{faq.pk}/").status_code == 200
    response = admin_client.post(
        f"{PAGE}faqs/{faq.pk}/",
        {"question": "Gift cards?", "answer": "Yes.", "language": "en", "approve": "1"},
    )
    assert response.status_code == 302
    with schema_context(tenant_a.schema_name):
        faq.refresh_from_db()
        assert (faq.status, faq.answer) == ("approved", "Yes.") and faq.source_id


def test_the_sources_table_polls_only_while_something_is_processing(tenant_a, admin_client):
    with schema_context(tenant_a.schema_name):
        source = Source.objects.create(kind="text", title="t", text="x")
    assert 'hx-trigger="every 2s"' in admin_client.get(f"{PAGE}sources/").content.decode()
    with schema_context(tenant_a.schema_name):
        services.index_source(source_id=source.pk)
    assert "hx-trigger" not in admin_client.get(f"{PAGE}sources/").content.decode()


def test_another_tenants_source_is_not_found(tenant_a, tenant_b, admin_client):
    with schema_context(tenant_b.schema_name):
        source = services.create_text_source(title="Beta", text="Beta.")
        faq = services.create_faq(question="B?", answer="B.")
    assert admin_client.post(f"{PAGE}sources/{source.pk}/delete/").status_code == 404
    assert admin_client.post(f"{PAGE}faqs/{faq.pk}/delete/").status_code == 404
    assert admin_client.get(f"{PAGE}faqs/{faq.pk}/").status_code == 404
