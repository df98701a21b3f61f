from __future__ import annotations

import datetime as dt
import re

import pytest
from django.core import mail
from django.db import connection as db_connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_tenants.utils import schema_context

from conftest import PASSWORD, login, make_agent
from crm import services
from crm.models import ApiKey, Contact, Deal, Stage
from crm.tests import factories


@pytest.fixture
def agent_client(tenant_a, client_a):
    agent = make_agent(tenant_a, email="pat@alpha.test", role="agent")
    login(client_a, tenant_a, agent.user)
    client_a.agent = agent
    return client_a


@pytest.fixture
def owner_client(tenant_a, client_a, owner_a):
    return login(client_a, tenant_a, owner_a)


@pytest.fixture
def records(tenant_a, owner_a):
    with schema_context("alpha"):
        contact = services.create_contact(phone="+14155552671", name="Grace Hopper", email="g@navy.example")
        services.add_note(contact=contact, body="Met at the conference", author=owner_a)
        deal = services.create_deal(title="Compiler licence", contact=contact, value="500")
        task = services.create_task(
            title="Send quote", contact=contact, due_at=timezone.now() - dt.timedelta(days=1)
        )
        company = services.save_company(name="Navy", domain="navy.example")
        return {"contact": contact, "deal": deal, "task": task, "company": company}


PAGES = [
    "/contacts/",
    "/contacts/new/",
    "/contacts/{contact}/",
    "/contacts/{contact}/edit/",
    "/companies/",
    "/companies/new/",
    "/companies/{company}/",
    "/companies/{company}/edit/",
    "/deals/",
    "/deals/new/",
    "/deals/{deal}/",
    "/deals/{deal}/edit/",
    "/tasks/",
    "/tasks/?show=overdue",
    "/settings/",
    "/settings/team/",
    "/settings/api-keys/",
]


@pytest.mark.parametrize("page", PAGES)
def test_every_staff_page_opens_for_an_agent_in_the_shared_layout(agent_client, records, page):
    url = page.format(**{k: v.pk for k, v in records.items()})
    response = agent_client.get(url)
    assert response.status_code == 200, url
    assert b'class="topbar"' in response.content and b"/static/css/crm.css" in response.content


@pytest.mark.parametrize("page", ["/contacts/", "/deals/", "/tasks/", "/settings/"])
def test_staff_pages_send_strangers_to_sign_in(client_a, page):
    response = client_a.get(page)
    assert response.status_code == 302 and response["Location"].startswith("/login/")


@pytest.mark.parametrize("page", ["/contacts/{contact}/", "/deals/{deal}/", "/companies/{company}/"])
def test_ids_of_tenant_a_are_not_found_on_tenant_b_pages(tenant_b, client_b, owner_b, records, page):
    login(client_b, tenant_b, owner_b)
    url = page.format(**{k: v.pk for k, v in records.items()})
    assert client_b.get(url).status_code == 404


@pytest.mark.parametrize(
    ("page", "minimum"),
    [
        ("/settings/attributes/", "admin"),
        ("/settings/teams/new/", "admin"),
        ("/contacts/import/", "supervisor"),
        ("/contacts/export.csv", "supervisor"),
    ],
)
@pytest.mark.parametrize("role", ["agent", "supervisor", "admin", "owner"])
def test_pages_follow_the_role_matrix(tenant_a, client_a, page, minimum, role):
    agent = make_agent(tenant_a, email=f"{role}.pages@alpha.test", role=role)
    login(client_a, tenant_a, agent.user)
    order = ["agent", "supervisor", "admin", "owner"]
    expected = 200 if order.index(role) >= order.index(minimum) else 403
    assert client_a.get(page).status_code == expected


def test_the_contact_list_searches_by_a_phone_written_differently(agent_client, records):
    response = agent_client.get("/contacts/", {"q": "(415) 555-2671"})
    assert b"Grace Hopper" in response.content
    response = agent_client.get("/contacts/", {"q": "nobody-like-this"})
    assert b"Grace Hopper" not in response.content


def test_the_contact_list_answers_htmx_with_just_the_rows(agent_client, records):
    response = agent_client.get("/contacts/", {"q": "grace"}, HTTP_HX_REQUEST="true")
    assert b"Grace Hopper" in response.content and b"<html" not in response.content


@pytest.mark.parametrize("url", ["/contacts/", "/companies/", "/tasks/?show=all", "/deals/"])
def test_list_pages_run_the_same_number_of_queries_as_they_grow(tenant_a, owner_a, owner_client, url):
    def count() -> int:
        with CaptureQueriesContext(db_connection) as captured:
            assert owner_client.get(url).status_code == 200
        return len(captured)

    with schema_context("alpha"):
        factories.one_of_everything(owner_a)
    owner_client.get(url)
    small = count()
    with schema_context("alpha"):
        for _ in range(5):
            factories.one_of_everything(owner_a)
    assert count() == small


def test_creating_a_contact_shows_errors_next_to_the_field(agent_client, records):
    response = agent_client.post(
        "/contacts/new/", {"phone": "001 415 555 2671", "marketing_consent": "unknown"}
    )
    assert response.status_code == 200
    assert b"A contact with this phone number exists." in response.content
    response = agent_client.post(
        "/contacts/new/",
        {"phone": "+44 20 7946 0958", "name": "Ada", "tags": "vip, lead", "marketing_consent": "opted_in"},
    )
    assert response.status_code == 302
    with schema_context("alpha"):
        ada = Contact.objects.get(phone="+442079460958")
        assert sorted(t.name for t in ada.tags.all()) == ["lead", "vip"]
        assert ada.marketing_consent == "opted_in" and ada.marketing_consent_at is not None


def test_a_note_added_on_the_contact_page_is_shown_with_its_author(agent_client, records):
    contact = records["contact"]
    agent_client.post(f"/contacts/{contact.pk}/notes/", {"body": "Prefers email"})
    page = agent_client.get(f"/contacts/{contact.pk}/").content.decode()
    assert "Prefers email" in page and "Pat" in page


def test_dragging_a_deal_to_a_won_stage_moves_it_and_records_history(agent_client, records):
    deal = records["deal"]
    with schema_context("alpha"):
        won = Stage.objects.get(pipeline=deal.pipeline, kind="won")
    response = agent_client.post(f"/deals/{deal.pk}/move/", {"stage": won.pk})
    assert response.status_code == 200 and response.json()["status"] == "won"
    with schema_context("alpha"):
        assert Deal.objects.get(pk=deal.pk).stage_history.count() == 2
    other = agent_client.post(f"/deals/{deal.pk}/move/", {"stage": 999999})
    assert other.status_code == 404 and other.json()["error"]["code"] == "not_found"


def test_a_deal_cannot_be_dragged_into_another_pipeline(agent_client, records):
    with schema_context("alpha"):
        foreign = services.create_pipeline(name="Other").stages.first()
    response = agent_client.post(f"/deals/{records['deal'].pk}/move/", {"stage": foreign.pk})
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_stage"


def test_the_board_shows_each_stage_with_its_deals(agent_client, records):
    page = agent_client.get("/deals/").content.decode()
    assert "Compiler licence" in page and 'data-stage="' in page and "/static/js/crm.js" in page


def test_overdue_tasks_are_marked_and_can_be_completed(agent_client, records):
    page = agent_client.get("/tasks/").content.decode()
    assert "1 overdue" in page and "overdue-row" in page
    task = records["task"]
    response = agent_client.post(f"/tasks/{task.pk}/toggle/", HTTP_HX_REQUEST="true")
    assert response.status_code == 200 and "#box-checked" in response.content.decode()
    assert "overdue-row" not in agent_client.get("/tasks/?show=all").content.decode()


def test_an_admin_invites_an_agent_who_sets_a_password_from_the_link(
    tenant_a, owner_client, client_b, django_capture_on_commit_callbacks
):
    from django.test import Client

    with django_capture_on_commit_callbacks(execute=True):
        response = owner_client.post(
            "/settings/team/", {"email": "newbie@alpha.test", "name": "New Bie", "role": "agent"}
        )
    assert response.status_code == 302
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["newbie@alpha.test"]
    link = re.search(r"http://alpha\.localhost(/invitations/\S+/)", mail.outbox[0].body).group(1)
    invitee = Client(HTTP_HOST="alpha.localhost")
    form_page = invitee.get(link, follow=True)
    assert b"Choose a password" in form_page.content
    response = invitee.post(
        form_page.redirect_chain[-1][0], {"new_password1": PASSWORD, "new_password2": PASSWORD}
    )
    assert response.status_code == 302
    assert invitee.get("/contacts/").status_code == 200  # signed in
    with schema_context("alpha"):
        from crm.models import Invitation

        assert Invitation.objects.get().accepted_at is not None
    assert b"expired" in Client(HTTP_HOST="alpha.localhost").get(link, follow=True).content  # used once
    # The link means nothing on another tenant's host.
    assert b"expired" in client_b.get(link, follow=True).content


def test_an_agent_cannot_invite(agent_client):
    response = agent_client.post("/settings/team/", {"email": "x@alpha.test", "role": "agent"})
    assert response.status_code == 403


def test_an_admin_cannot_invite_an_owner(tenant_a, client_a):
    admin = make_agent(tenant_a, email="adm@alpha.test", role="admin")
    login(client_a, tenant_a, admin.user)
    response = client_a.post("/settings/team/", {"email": "boss@alpha.test", "role": "owner"})
    assert response.status_code == 200 and b"Only an owner" in response.content


def test_an_api_key_made_on_the_settings_page_is_shown_once_and_can_be_rotated(tenant_a, owner_client):
    response = owner_client.post(
        "/settings/api-keys/", {"name": "zapier", "kind": "integration", "role": "supervisor"}
    )
    raw = re.search(rb"wacrm_[A-Za-z0-9]+_[A-Za-z0-9_-]+", response.content).group(0).decode()
    assert raw.encode() not in owner_client.get("/settings/api-keys/").content
    with schema_context("alpha"):
        key = ApiKey.objects.get(name="zapier")
    rotated = owner_client.post(f"/settings/api-keys/{key.pk}/rotate/")
    assert b"keeps working until you revoke it" in rotated.content
    owner_client.post(f"/settings/api-keys/{key.pk}/revoke/")
    with schema_context("alpha"):
        assert ApiKey.objects.get(pk=key.pk).revoked_at is not None
        assert ApiKey.objects.filter(rotated_from=key, revoked_at__isnull=True).exists()


def test_an_import_uploaded_on_the_page_shows_its_progress(
    tenant_a, owner_client, django_capture_on_commit_callbacks
):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from crm.actors import import_contacts

    upload = SimpleUploadedFile("c.csv", b"phone,name\n+14155550100,Ann\n12,Bad\n", content_type="text/csv")
    with django_capture_on_commit_callbacks():
        response = owner_client.post("/contacts/import/", {"file": upload})
    assert response.status_code == 302
    status_url = response["Location"]
    assert b"every 1s" in owner_client.get(status_url).content  # polls while pending
    with schema_context("alpha"):
        import_contacts(int(status_url.rstrip("/").rsplit("/", 1)[1]))
    page = owner_client.get(status_url, HTTP_HX_REQUEST="true").content.decode()
    assert "1 created" in page and "1 rejected" in page and "every 1s" not in page


def test_the_export_page_streams_csv(owner_client, records):
    response = owner_client.get("/contacts/export.csv")
    assert response.streaming and b"Grace Hopper" in b"".join(response.streaming_content)


def test_an_agent_sets_their_own_availability(agent_client):
    agent_client.post("/settings/", {"availability": "busy"})
    with schema_context("alpha"):
        agent_client.agent.refresh_from_db()
    assert agent_client.agent.availability == "busy"
