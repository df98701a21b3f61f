"""The tenant admin from an attacker's seat: an admin-role user going after the owner's account, and the
roles the admin lets in. Tenant users are never superusers; their admin rights come from the CRM role."""

from __future__ import annotations

import importlib

import pytest
from django.apps import apps
from django.contrib.auth import get_user_model
from django.test import Client
from django_tenants.utils import schema_context

from conftest import PASSWORD, login, make_agent
from core.errors import ServiceError
from crm import selectors, services
from crm.models import Agent, ApiKey

NEW_PASSWORD = "Taken-Over-Pass-99"


@pytest.fixture
def admin_client(tenant_a, client_a):
    agent = make_agent(tenant_a, email="eve.admin@alpha.test", role="admin")
    login(client_a, tenant_a, agent.user)
    client_a.agent = agent
    return client_a


def _owner_agent(tenant) -> Agent:
    with schema_context(tenant.schema_name):
        return Agent.objects.select_related("user").get(user__email="owner@alpha.test")


def _owner_password_unchanged(tenant) -> bool:
    with schema_context(tenant.schema_name):
        return bool(get_user_model().objects.get(email="owner@alpha.test").check_password(PASSWORD))


def test_an_admin_cannot_set_the_owners_password_through_the_user_admin(tenant_a, admin_client, owner_a):
    response = admin_client.post(
        f"/admin/auth/user/{owner_a.pk}/password/",
        {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD, "usable_password": "true"},
    )
    assert response.status_code in (403, 404)
    assert _owner_password_unchanged(tenant_a)
    # And then signing in as the owner with the chosen password fails.
    attacker = Client(HTTP_HOST="alpha.localhost")
    signed_in = attacker.post("/login/", {"username": "owner@alpha.test", "password": NEW_PASSWORD})
    assert signed_in.status_code == 200 and "_auth_user_id" not in attacker.session


def test_an_admin_cannot_edit_users_or_groups_in_the_tenant_admin(tenant_a, admin_client, owner_a):
    change_form = {
        "username": "owner@alpha.test",
        "email": "eve@attacker.example",
        "is_active": "on",
        "is_staff": "on",
        "is_superuser": "on",
        "date_joined_0": "2026-01-01",
        "date_joined_1": "00:00:00",
    }
    assert admin_client.post(f"/admin/auth/user/{owner_a.pk}/change/", change_form).status_code in (403, 404)
    for url in (
        "/admin/auth/user/",
        "/admin/auth/user/add/",
        f"/admin/auth/user/{owner_a.pk}/change/",
        f"/admin/auth/user/{owner_a.pk}/password/",
        f"/admin/auth/user/{owner_a.pk}/delete/",
        "/admin/auth/group/",
        "/admin/auth/group/add/",
    ):
        assert admin_client.get(url).status_code in (403, 404), url
    assert b"/admin/auth/" not in admin_client.get("/admin/").content
    with schema_context(tenant_a.schema_name):
        owner = get_user_model().objects.get(pk=owner_a.pk)
        assert owner.email == "owner@alpha.test" and not owner.is_superuser
    assert _owner_password_unchanged(tenant_a)


def test_an_admin_cannot_change_or_delete_the_owners_agent_row_in_the_admin(tenant_a, admin_client):
    owner = _owner_agent(tenant_a)
    url = f"/admin/crm/agent/{owner.pk}/"
    assert admin_client.post(f"{url}change/", {"role": "agent", "availability": "online"}).status_code == 403
    assert admin_client.post(f"{url}delete/", {"post": "yes"}).status_code == 403
    # Viewing is allowed (read-only): every role may read the agent list.
    page = admin_client.get(f"{url}change/")
    assert page.status_code == 200 and b'name="role"' not in page.content
    with schema_context(tenant_a.schema_name):
        owner.refresh_from_db()
    assert owner.role == "owner"


def test_an_admin_cannot_promote_themselves_to_owner_in_the_admin(tenant_a, admin_client):
    me = admin_client.agent
    response = admin_client.post(
        f"/admin/crm/agent/{me.pk}/change/", {"role": "owner", "availability": "online"}
    )
    assert response.status_code == 200 and b"Only an owner" in response.content
    with schema_context(tenant_a.schema_name):
        me.refresh_from_db()
        me.user.refresh_from_db()
    assert me.role == "admin" and not me.user.is_superuser


def test_agents_cannot_be_added_or_reassigned_to_another_user_in_the_admin(tenant_a, admin_client, owner_a):
    target = make_agent(tenant_a, email="target@alpha.test", role="agent")
    assert admin_client.get("/admin/crm/agent/add/").status_code == 403
    assert (
        admin_client.post("/admin/crm/agent/add/", {"user": owner_a.pk, "role": "admin"}).status_code == 403
    )
    # The user is not a form field: posting one changes nothing.
    admin_client.post(
        f"/admin/crm/agent/{target.pk}/change/", {"user": owner_a.pk, "role": "agent", "availability": "busy"}
    )
    with schema_context(tenant_a.schema_name):
        target.refresh_from_db()
    assert target.user_id != owner_a.pk and target.availability == "busy"


def test_an_owner_changes_an_admins_role_in_the_admin_and_staff_access_follows(tenant_a, client_a, owner_a):
    target = make_agent(tenant_a, email="demote@alpha.test", role="admin")
    login(client_a, tenant_a, owner_a)
    response = client_a.post(
        f"/admin/crm/agent/{target.pk}/change/", {"role": "supervisor", "availability": "online"}
    )
    assert response.status_code == 302
    with schema_context(tenant_a.schema_name):
        target.refresh_from_db()
        target.user.refresh_from_db()
    assert target.role == "supervisor"
    assert not target.user.is_staff and not target.user.is_superuser


def test_an_admin_cannot_rotate_the_owners_api_key_into_a_new_owner_key(tenant_a, admin_client, owner_a):
    with schema_context(tenant_a.schema_name):
        owner_key = services.create_api_key(name="owner's", role="owner", created_by=owner_a).api_key
    admin_client.post(
        "/admin/crm/apikey/", {"action": "rotate", "_selected_action": [owner_key.pk]}, follow=True
    )
    admin_client.post(f"/settings/api-keys/{owner_key.pk}/rotate/")
    with schema_context(tenant_a.schema_name):
        assert not ApiKey.objects.filter(rotated_from=owner_key).exists()
        assert ApiKey.objects.filter(role="owner").count() == 1


@pytest.mark.parametrize("role", ["owner", "admin"])
def test_owners_and_admins_can_open_the_tenant_admin_pages(tenant_a, client_a, owner_a, role):
    user = (
        owner_a if role == "owner" else make_agent(tenant_a, email="pages.admin@alpha.test", role=role).user
    )
    with schema_context(tenant_a.schema_name):
        services.create_contact(phone="+14155550123", name="Admin Page Contact", owner=owner_a)
    login(client_a, tenant_a, user)
    for url in (
        "/admin/",
        "/admin/crm/",
        "/admin/crm/contact/",
        "/admin/crm/contact/add/",
        "/admin/crm/deal/",
        "/admin/crm/agent/",
        "/admin/crm/apikey/",
        "/admin/crm/apikey/add/",
        "/admin/conversations/cannedresponse/",
        "/admin/conversations/channel/",
        "/admin/password_change/",
    ):
        assert client_a.get(url).status_code == 200, url
    # The user pickers (a contact's owner) search the tenant's users, read-only.
    found = client_a.get(
        "/admin/autocomplete/",
        {"app_label": "crm", "model_name": "contact", "field_name": "owner", "term": "owner"},
    )
    assert found.status_code == 200
    assert [r["text"] for r in found.json()["results"]] == ["owner@alpha.test"]


@pytest.mark.parametrize("role", ["agent", "supervisor"])
def test_agents_and_supervisors_cannot_open_the_tenant_admin(tenant_a, client_a, role):
    agent = make_agent(tenant_a, email=f"no.admin.{role}@alpha.test", role=role)
    login(client_a, tenant_a, agent.user)
    for url in ("/admin/", "/admin/crm/contact/", "/admin/crm/agent/"):
        response = client_a.get(url)
        assert response.status_code == 302 and "/admin/login/" in response["Location"], url
    assert client_a.get("/admin/auth/user/").status_code == 404  # not served on tenant hosts at all
    found = client_a.get(
        "/admin/autocomplete/",
        {"app_label": "crm", "model_name": "contact", "field_name": "owner", "term": "o"},
    )
    assert found.status_code in (302, 403)


def test_a_tenant_user_flagged_superuser_without_an_agent_row_has_no_role(tenant_a, client_a):
    # What createsuperuser (or the old user admin) could leave behind in a tenant schema.
    with schema_context(tenant_a.schema_name):
        user = get_user_model().objects.create_superuser("root@alpha.test", "root@alpha.test", PASSWORD)
        assert selectors.role_of_user(user) is None
    login(client_a, tenant_a, user)
    assert client_a.get("/admin/crm/contact/").status_code == 302
    assert client_a.get("/admin/auth/user/").status_code in (302, 404)
    assert client_a.get("/contacts/").status_code == 403


def test_the_platform_admin_still_manages_users_on_the_public_host(public_client):
    with schema_context("public"):
        operator = get_user_model().objects.create_superuser(
            "ops@platform.test", "ops@platform.test", PASSWORD
        )
    public_client.force_login(operator)
    assert public_client.get("/admin/auth/user/").status_code == 200
    assert public_client.get(f"/admin/auth/user/{operator.pk}/password/").status_code == 200


def test_no_tenant_user_is_a_superuser_after_onboarding_or_role_changes(tenant_a):
    agent = make_agent(tenant_a, email="climber@alpha.test", role="agent")
    with schema_context(tenant_a.schema_name):
        for role in ("supervisor", "admin", "owner", "admin", "agent"):
            services.change_agent_role(agent=agent, role=role)
            agent.user.refresh_from_db()
            assert not agent.user.is_superuser
            assert agent.user.is_staff == (role in ("owner", "admin"))
        assert not get_user_model().objects.filter(is_superuser=True).exists()


def test_the_migration_clears_superusers_and_sets_staff_from_the_role(tenant_a):
    migration = importlib.import_module("crm.migrations.0004_tenant_users_are_not_superusers")
    admin = make_agent(tenant_a, email="legacy.admin@alpha.test", role="admin")
    agent = make_agent(tenant_a, email="legacy.agent@alpha.test", role="agent")
    user_model = get_user_model()
    with schema_context(tenant_a.schema_name):
        # How the old code left them: owners and admins superusers, plus a stray superuser and staff flag.
        user_model.objects.filter(pk=admin.user_id).update(is_superuser=True, is_staff=False)
        user_model.objects.filter(pk=agent.user_id).update(is_staff=True)
        stray = user_model.objects.create_superuser("stray@alpha.test", "stray@alpha.test", PASSWORD)

        migration.clear_superusers(apps, None)

        assert not user_model.objects.filter(is_superuser=True).exists()
        assert user_model.objects.get(pk=admin.user_id).is_staff
        assert user_model.objects.get(email="owner@alpha.test").is_staff
        assert not user_model.objects.get(pk=agent.user_id).is_staff
        assert not user_model.objects.get(pk=stray.pk).is_staff


# --- user management through the agent pages -------------------------------------------------------


def test_an_admin_cannot_deactivate_the_owner_or_themselves(tenant_a, admin_client):
    owner = _owner_agent(tenant_a)
    admin_client.post(f"/settings/team/agents/{owner.pk}/active/", {"active": "0"})
    admin_client.post(f"/settings/team/agents/{admin_client.agent.pk}/active/", {"active": "0"})
    with schema_context(tenant_a.schema_name):
        assert get_user_model().objects.get(pk=owner.user_id).is_active
        assert get_user_model().objects.get(pk=admin_client.agent.user_id).is_active


def test_agents_and_supervisors_cannot_deactivate_anyone(tenant_a, client_a):
    supervisor = make_agent(tenant_a, email="sup.deact@alpha.test", role="supervisor")
    target = make_agent(tenant_a, email="target.deact@alpha.test", role="agent")
    login(client_a, tenant_a, supervisor.user)
    assert client_a.post(f"/settings/team/agents/{target.pk}/active/", {"active": "0"}).status_code == 403
    with schema_context(tenant_a.schema_name):
        assert get_user_model().objects.get(pk=target.user_id).is_active


def test_a_deactivated_agents_session_stops_working_and_they_cannot_sign_in(tenant_a, client_a, owner_a):
    target = make_agent(tenant_a, email="leaver@alpha.test", role="agent")
    leaver = login(Client(HTTP_HOST="alpha.localhost"), tenant_a, target.user)
    assert leaver.get("/contacts/").status_code == 200
    login(client_a, tenant_a, owner_a)
    response = client_a.post(f"/settings/team/agents/{target.pk}/active/", {"active": "0"}, follow=True)
    assert b"deactivated" in response.content
    assert leaver.get("/contacts/").status_code == 302  # back to sign-in
    refused = Client(HTTP_HOST="alpha.localhost").post(
        "/login/", {"username": target.user.email, "password": PASSWORD}
    )
    assert refused.status_code == 200  # the form again: wrong credentials, as for anyone
    assert b"Deactivated" in client_a.get("/settings/team/").content
    client_a.post(f"/settings/team/agents/{target.pk}/active/", {"active": "1"})
    back = Client(HTTP_HOST="alpha.localhost").post(
        "/login/", {"username": target.user.email, "password": PASSWORD}
    )
    assert back.status_code == 302


def test_the_last_active_owner_cannot_be_deactivated_or_demoted(tenant_a):
    with schema_context(tenant_a.schema_name):
        owner = Agent.objects.get(user__email="owner@alpha.test")
        second = make_agent(tenant_a, email="second.owner@alpha.test", role="owner")
        services.set_agent_active(agent=second, active=False, by_role="owner")
        with pytest.raises(ServiceError) as deactivating:
            services.set_agent_active(agent=owner, active=False, by_role="owner")
        with pytest.raises(ServiceError) as demoting:
            services.change_agent_role(agent=owner, role="admin", by_role="owner")
    assert deactivating.value.code == demoting.value.code == "last_owner"
