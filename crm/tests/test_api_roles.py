"""The role matrix (README.md "Roles") as the API enforces it, for API keys and for signed-in agents."""

from __future__ import annotations

import pytest
from django_tenants.utils import schema_context

from conftest import login, make_agent
from crm.tests.helpers import api_client, issue_key

ROLES = ["agent", "supervisor", "admin", "owner"]

# (method, url, body, minimum role). {contact}, {deal}... are filled with fresh ids per test.
MATRIX = [
    ("get", "/api/v1/contacts/", None, "agent"),
    ("post", "/api/v1/contacts/", {"phone": "+14155550170"}, "agent"),
    ("patch", "/api/v1/contacts/{contact}/", {"name": "New"}, "agent"),
    ("delete", "/api/v1/contacts/{contact}/", None, "supervisor"),
    ("post", "/api/v1/contacts/{contact}/merge/", {"other": "{other}"}, "supervisor"),
    ("get", "/api/v1/contacts/export/", None, "supervisor"),
    ("post", "/api/v1/companies/", {"name": "Acme"}, "agent"),
    ("delete", "/api/v1/companies/{company}/", None, "supervisor"),
    ("post", "/api/v1/tags/", {"name": "fresh"}, "agent"),
    ("patch", "/api/v1/tags/{tag}/", {"color": "#000000"}, "admin"),
    ("delete", "/api/v1/tags/{tag}/", None, "admin"),
    ("get", "/api/v1/attribute-definitions/", None, "agent"),
    ("post", "/api/v1/attribute-definitions/", {"key": "tier", "label": "Tier", "type": "text"}, "admin"),
    ("post", "/api/v1/notes/", {"contact": "{contact}", "body": "hi"}, "agent"),
    ("post", "/api/v1/pipelines/", {"name": "Renewals"}, "admin"),
    ("post", "/api/v1/stages/", {"pipeline": "{pipeline}", "name": "Extra"}, "admin"),
    ("post", "/api/v1/deals/", {"title": "Deal"}, "agent"),
    ("post", "/api/v1/deals/{deal}/move/", {"stage": "{stage}"}, "agent"),
    ("delete", "/api/v1/deals/{deal}/", None, "supervisor"),
    ("post", "/api/v1/tasks/", {"title": "Call"}, "agent"),
    ("delete", "/api/v1/tasks/{task}/", None, "supervisor"),
    ("get", "/api/v1/agents/", None, "agent"),
    ("post", "/api/v1/teams/", {"name": "Sales"}, "admin"),
    ("get", "/api/v1/contact-imports/", None, "supervisor"),
]


@pytest.fixture
def ids(tenant_a):
    from crm import services

    with schema_context("alpha"):
        contact = services.create_contact(phone="+14155550171", name="C")
        deal = services.create_deal(title="D", contact=contact)
        return {
            "contact": contact.pk,
            "other": services.create_contact(phone="+14155550172").pk,
            "company": services.save_company(name="Co").pk,
            "tag": services.save_tag(name="t").pk,
            "deal": deal.pk,
            "stage": deal.pipeline.stages.order_by("position")[1].pk,
            "pipeline": deal.pipeline_id,
            "task": services.create_task(title="T").pk,
        }


def _fill(value, ids):
    if isinstance(value, str) and value.startswith("{"):
        return ids[value.strip("{}")]
    return value


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(("method", "url", "body", "minimum"), MATRIX)
def test_an_api_key_may_do_what_its_role_allows_and_nothing_more(
    tenant_a, ids, role, method, url, body, minimum
):
    client = api_client(tenant_a, issue_key(tenant_a, role=role))
    payload = {k: _fill(v, ids) for k, v in (body or {}).items()}
    response = getattr(client, method)(url.format(**ids), payload, content_type="application/json")
    allowed = ROLES.index(role) >= ROLES.index(minimum)
    if allowed:
        assert response.status_code < 400, (role, url, response.content)
    else:
        assert response.status_code == 403, (role, url, response.content)
        assert response.json()["error"]["code"] == "permission_denied"


@pytest.mark.parametrize("role", ROLES)
def test_a_signed_in_agent_gets_the_same_matrix(tenant_a, client_a, ids, role):
    agent = make_agent(tenant_a, email=f"{role}.matrix@alpha.test", role=role)
    login(client_a, tenant_a, agent.user)
    response = client_a.delete(f"/api/v1/contacts/{ids['contact']}/")
    assert response.status_code == (204 if role != "agent" else 403)


def test_an_agent_edits_only_their_own_notes(tenant_a, client_a, ids, owner_a):
    from crm import services
    from crm.models import Contact

    author = make_agent(tenant_a, email="author@alpha.test")
    other = make_agent(tenant_a, email="other@alpha.test")
    with schema_context("alpha"):
        note = services.add_note(
            contact=Contact.objects.get(pk=ids["contact"]), body="mine", author=author.user
        )
    login(client_a, tenant_a, other.user)
    assert (
        client_a.patch(
            f"/api/v1/notes/{note.pk}/", {"body": "x"}, content_type="application/json"
        ).status_code
        == 403
    )
    login(client_a, tenant_a, author.user)
    assert (
        client_a.patch(
            f"/api/v1/notes/{note.pk}/", {"body": "y"}, content_type="application/json"
        ).status_code
        == 200
    )


def test_a_tenant_user_without_an_agent_profile_is_refused(tenant_a, client_a):
    from django.contrib.auth import get_user_model

    with schema_context("alpha"):
        user = get_user_model().objects.create_user(username="ghost@alpha.test", password="x-Very-Long-1")
    login(client_a, tenant_a, user)
    assert client_a.get("/api/v1/contacts/").status_code == 403
