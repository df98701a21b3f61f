"""The audit log from the outside: each audited action through the pages, the API and the platform admin
writes exactly one event naming who and from where; owners and admins read it (page, CSV, API), nobody
else does, and no tenant sees another's."""

from __future__ import annotations

import csv
import io
import json

import pytest
from django.contrib.auth import get_user_model
from django.test import Client, RequestFactory
from django_tenants.utils import schema_context

from conftest import PASSWORD, host_of, login, make_agent
from core import audit
from core.models import AuditEvent
from crm.tests.helpers import api_client, assert_error, issue_key

IP = "198.51.100.23"
UA = "AuditTest/1.0"


def _events(schema: str, action: str, **match: str) -> list[AuditEvent]:
    # `match` narrows public's events to this test's: tests with committed data (backups, lifecycle)
    # leave platform events there for the rest of the session.
    with schema_context(schema):
        return list(AuditEvent.objects.filter(action=action, **match).order_by("id"))


def _one(schema: str, action: str, **match: str) -> AuditEvent:
    events = _events(schema, action, **match)
    assert len(events) == 1, [(e.action, e.actor_label, e.target_label) for e in events]
    return events[0]


@pytest.fixture
def owner_client(tenant_a, owner_a):
    return login(Client(HTTP_HOST=host_of(tenant_a), REMOTE_ADDR=IP, HTTP_USER_AGENT=UA), tenant_a, owner_a)


# --- sign-ins ----------------------------------------------------------------------------------------


def test_a_sign_in_is_recorded_with_the_user_and_the_address(tenant_a):
    agent = make_agent(tenant_a, email="signs.in@alpha.test")
    client = Client(HTTP_HOST=host_of(tenant_a), REMOTE_ADDR=IP, HTTP_USER_AGENT=UA)
    response = client.post("/login/", {"username": "signs.in@alpha.test", "password": PASSWORD})
    assert response.status_code == 302
    event = _one("alpha", "auth.sign_in")
    assert (event.actor_id, event.actor_label) == (agent.user.pk, "signs.in@alpha.test")
    assert (event.ip, event.user_agent) == (IP, UA)
    assert not _events("alpha", "auth.sign_in_failed")


def test_a_failed_sign_in_is_recorded_without_the_password(tenant_a):
    make_agent(tenant_a, email="target@alpha.test")
    client = Client(HTTP_HOST=host_of(tenant_a), REMOTE_ADDR=IP)
    response = client.post("/login/", {"username": "target@alpha.test", "password": "Guess-Me-123"})
    assert response.status_code == 200
    event = _one("alpha", "auth.sign_in_failed")
    assert (event.actor_id, event.actor_label, event.ip) == (None, "anonymous", IP)
    assert event.details == {"username": "target@alpha.test"}
    assert event.target_label == "target@alpha.test"
    with schema_context("alpha"):
        row = AuditEvent.objects.filter(pk=event.pk).values().get()
    assert "Guess-Me-123" not in json.dumps(row, default=str)
    assert not _events("alpha", "auth.sign_in")


def test_a_platform_admin_sign_in_is_a_platform_event(db):
    get_user_model().objects.create_superuser("root@platform.test", "root@platform.test", PASSWORD)
    client = Client(HTTP_HOST="localhost", REMOTE_ADDR=IP)
    response = client.post("/admin/login/", {"username": "root@platform.test", "password": PASSWORD})
    assert response.status_code == 302
    event = _one("public", "auth.sign_in", actor_label="platform:root@platform.test")
    assert event.ip == IP
    client.post("/admin/login/", {"username": "root@platform.test", "password": "wrong-one-42"})
    failed = _one("public", "auth.sign_in_failed", target_label="root@platform.test")
    assert failed.details == {"username": "root@platform.test"}


# --- team, roles, invitations, API keys ---------------------------------------------------------------


def test_a_role_change_names_the_owner_the_agent_and_both_roles(tenant_a, owner_a, owner_client):
    agent = make_agent(tenant_a, email="promoted@alpha.test")
    owner_client.post(f"/settings/team/agents/{agent.pk}/role/", {"role": "supervisor"})
    event = _one("alpha", "agent.role_changed")
    assert (event.actor_id, event.actor_label, event.ip, event.user_agent) == (
        owner_a.pk,
        "owner@alpha.test",
        IP,
        UA,
    )
    assert (event.target_type, event.target_id) == ("agent", str(agent.pk))
    assert event.details == {"from": "agent", "to": "supervisor"}
    # The same role again changes nothing, so records nothing.
    owner_client.post(f"/settings/team/agents/{agent.pk}/role/", {"role": "supervisor"})
    assert len(_events("alpha", "agent.role_changed")) == 1


def test_a_refused_role_change_records_nothing(tenant_a, client_a):
    admin = make_agent(tenant_a, email="admin.refused@alpha.test", role="admin")
    agent = make_agent(tenant_a, email="stays@alpha.test")
    login(client_a, tenant_a, admin.user)
    client_a.post(f"/settings/team/agents/{agent.pk}/role/", {"role": "owner"})
    assert not _events("alpha", "agent.role_changed")


def test_deactivating_an_agent_is_recorded(tenant_a, owner_client):
    agent = make_agent(tenant_a, email="leaves@alpha.test")
    owner_client.post(f"/settings/team/agents/{agent.pk}/active/", {"active": "0"})
    assert _one("alpha", "agent.deactivated").target_id == str(agent.pk)


def test_an_invitation_is_recorded(tenant_a, owner_client):
    owner_client.post("/settings/team/", {"email": "new.hire@alpha.test", "role": "agent", "name": "New"})
    event = _one("alpha", "invitation.sent")
    assert event.details == {"email": "new.hire@alpha.test", "role": "agent"}
    assert event.actor_label == "owner@alpha.test"


def test_team_membership_changes_are_recorded_per_member(tenant_a, owner_a):
    from crm import services

    ann = make_agent(tenant_a, email="ann.team@alpha.test")
    bob = make_agent(tenant_a, email="bob.team@alpha.test")
    request = RequestFactory().post("/", REMOTE_ADDR=IP)
    request.user = owner_a
    with schema_context("alpha"), audit.request_context(request):
        team = services.save_team(name="Sales", member_ids=[ann.pk])
        services.save_team(team=team, name="Sales", member_ids=[bob.pk])
    added = _events("alpha", "team.member_added")
    assert [(e.target_id, e.details["team"]) for e in added] == [
        (str(ann.pk), "Sales"),
        (str(bob.pk), "Sales"),
    ]
    assert [e.target_id for e in _events("alpha", "team.member_removed")] == [str(ann.pk)]
    assert {e.actor_label for e in added} == {"owner@alpha.test"}


def test_api_keys_issued_rotated_and_revoked_are_recorded_without_their_secret(tenant_a, owner_client):
    owner_client.post("/settings/api-keys/", {"name": "Zapier", "kind": "integration", "role": "admin"})
    issued = _one("alpha", "api_key.issued")
    with schema_context("alpha"):
        from crm.models import ApiKey

        key = ApiKey.objects.get(name="Zapier")
    assert issued.details["prefix"] == key.prefix and issued.details["kind"] == "integration"
    page = owner_client.post(f"/settings/api-keys/{key.pk}/rotate/").content.decode()
    rotated = _one("alpha", "api_key.rotated")
    assert rotated.details["rotated_from"] == key.prefix
    owner_client.post(f"/settings/api-keys/{key.pk}/revoke/")
    revoked = _one("alpha", "api_key.revoked")
    assert revoked.target_id == str(key.pk)
    with schema_context("alpha"):
        stored = json.dumps(list(AuditEvent.objects.values()), default=str)
    assert key.hashed_key not in stored
    raw = page.split("wacrm_", 1)[1].split("<", 1)[0].split('"', 1)[0]
    assert raw and raw not in stored


# --- contacts, exports --------------------------------------------------------------------------------


def test_an_integration_key_merging_and_deleting_contacts_is_named_by_its_prefix(tenant_a):
    from crm import services

    key = issue_key(tenant_a, role="supervisor")
    prefix = key.split("_")[1]
    with schema_context("alpha"):
        keep = services.create_contact(phone="+14155550181", name="Keep")
        other = services.create_contact(phone="+14155550182", name="Other")
    client = api_client(tenant_a, key, REMOTE_ADDR=IP)
    assert client.post(f"/api/v1/contacts/{keep.pk}/merge/", {"other": other.pk}).status_code == 200
    merged = _one("alpha", "contact.merged")
    assert (merged.actor_id, merged.actor_label, merged.ip) == (None, f"api-key:{prefix}", IP)
    assert merged.details == {"kept": keep.pk, "merged": other.pk}
    assert client.delete(f"/api/v1/contacts/{keep.pk}/").status_code == 204
    deleted = _one("alpha", "contact.deleted")
    # No name or number outlives the deleted contact in a log that cannot be erased.
    assert (deleted.target_type, deleted.target_id, deleted.target_label) == (
        "contact",
        str(keep.pk),
        f"Contact #{keep.pk}",
    )


def test_a_personal_key_is_recorded_as_its_user_and_the_key(tenant_a, owner_a):
    from crm import services

    key = issue_key(tenant_a, user=owner_a, name="mine")
    with schema_context("alpha"):
        contact = services.create_contact(phone="+14155550183")
    api_client(tenant_a, key).delete(f"/api/v1/contacts/{contact.pk}/")
    event = _one("alpha", "contact.deleted")
    assert (event.actor_id, event.actor_label) == (
        owner_a.pk,
        f"owner@alpha.test (api-key:{key.split('_')[1]})",
    )


def test_deleting_contacts_in_the_admin_is_recorded_per_contact(tenant_a, owner_a, owner_client):
    from crm import services

    with schema_context("alpha"):
        one = services.create_contact(phone="+14155550184", name="One")
        two = services.create_contact(phone="+14155550185", name="Two")
    response = owner_client.post(f"/admin/crm/contact/{one.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    response = owner_client.post(
        "/admin/crm/contact/", {"action": "delete_selected", "_selected_action": [two.pk], "post": "yes"}
    )
    assert response.status_code == 302
    events = _events("alpha", "contact.deleted")
    assert sorted(e.target_id for e in events) == sorted([str(one.pk), str(two.pk)])
    assert {(e.actor_label, e.ip) for e in events} == {("owner@alpha.test", IP)}


def test_attribute_definitions_added_changed_and_deleted_are_recorded(tenant_a, owner_client):
    key = issue_key(tenant_a, role="admin")
    client = api_client(tenant_a, key, REMOTE_ADDR=IP)
    created = client.post("/api/v1/attribute-definitions/", {"key": "tier", "label": "Tier", "type": "text"})
    assert created.status_code == 201, created.content
    pk = created.json()["id"]
    assert (
        client.patch(
            f"/api/v1/attribute-definitions/{pk}/",
            {"label": "Customer tier"},
            content_type="application/json",
        ).status_code
        == 200
    )
    assert client.delete(f"/api/v1/attribute-definitions/{pk}/").status_code == 204
    created_event = _one("alpha", "attribute.created")
    assert created_event.details == {"attribute": "tier", "type": "text", "required": False}
    assert _one("alpha", "attribute.changed").target_label == "Customer tier"
    assert _one("alpha", "attribute.deleted").details == {"attribute": "tier"}
    # The admin's add form is audited too.
    response = owner_client.post(
        "/admin/crm/attributedefinition/add/",
        {"label": "Region", "key": "region", "type": "text", "choices": "[]", "position": 0},
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    assert len(_events("alpha", "attribute.created")) == 2


def test_a_contact_export_is_recorded(tenant_a, owner_client):
    assert owner_client.get("/contacts/export.csv").status_code == 200
    assert _one("alpha", "export.created").details == {"kind": "contacts"}


def test_an_inbox_settings_change_is_recorded(tenant_a, owner_a):
    from conversations import settings_services

    request = RequestFactory().post("/", REMOTE_ADDR=IP)
    request.user = owner_a
    with schema_context("alpha"), audit.request_context(request):
        settings_services.update_consent_settings(
            stop_words="STOP", start_words="START", opt_out_reply="", opt_in_reply="", assign_on_reply=False
        )
    event = _one("alpha", "settings.changed")
    assert (event.details, event.actor_label, event.ip) == ({"section": "consent"}, "owner@alpha.test", IP)


# --- tenant suspension (platform) ---------------------------------------------------------------------


def test_suspending_a_tenant_is_a_platform_event_by_the_operator(tenant_a):
    root = get_user_model().objects.create_superuser("ops@platform.test", "ops@platform.test", PASSWORD)
    client = Client(HTTP_HOST="localhost", REMOTE_ADDR=IP)
    client.force_login(root)
    response = client.post("/admin/tenants/tenant/", {"action": "suspend", "_selected_action": [tenant_a.pk]})
    assert response.status_code == 302
    event = _one("public", "tenant.suspended", target_id=str(tenant_a.pk))
    assert (event.actor_id, event.actor_label, event.ip) == (root.pk, "platform:ops@platform.test", IP)
    assert (event.target_type, event.target_id) == ("tenant", str(tenant_a.pk))
    assert not _events("alpha", "tenant.suspended")
    # Suspending a suspended tenant changes nothing: no second event.
    client.post("/admin/tenants/tenant/", {"action": "suspend", "_selected_action": [tenant_a.pk]})
    assert len(_events("public", "tenant.suspended", target_id=str(tenant_a.pk))) == 1


# --- the page ---------------------------------------------------------------------------------------


def _seed(schema: str, n: int, **kwargs) -> None:
    with schema_context(schema):
        for i in range(n):
            audit.record("settings.changed", actor=f"seed-{i}", details={"n": i}, **kwargs)


def test_owners_read_the_log_newest_first(tenant_a, owner_client):
    _seed("alpha", 3)
    page = owner_client.get("/settings/audit-log/")
    assert page.status_code == 200
    html = page.content.decode()
    assert html.index("seed-2") < html.index("seed-1") < html.index("seed-0")
    assert "Settings changed" in html


@pytest.mark.parametrize("role", ["agent", "supervisor"])
def test_agents_and_supervisors_do_not_find_the_page(tenant_a, client_a, role):
    agent = make_agent(tenant_a, email=f"{role}.nosy@alpha.test", role=role)
    login(client_a, tenant_a, agent.user)
    assert client_a.get("/settings/audit-log/").status_code == 404
    assert client_a.get("/settings/audit-log/export.csv").status_code == 404


def test_an_admin_reads_the_page_and_a_stranger_is_sent_to_sign_in(tenant_a, client_a):
    assert client_a.get("/settings/audit-log/").status_code == 302
    admin = make_agent(tenant_a, email="admin.reads@alpha.test", role="admin")
    login(client_a, tenant_a, admin.user)
    assert client_a.get("/settings/audit-log/").status_code == 200


def test_the_page_filters_by_action_actor_and_dates(tenant_a, owner_client):
    _seed("alpha", 2)
    with schema_context("alpha"):
        audit.record("contact.deleted", actor="someone-else")
    html = owner_client.get("/settings/audit-log/", {"action": "contact.deleted"}).content.decode()
    assert "someone-else" in html and "seed-0" not in html
    html = owner_client.get("/settings/audit-log/", {"actor": "SEED-1"}).content.decode()
    assert "seed-1" in html and "seed-0" not in html and "someone-else" not in html
    html = owner_client.get("/settings/audit-log/", {"until": "2000-01-01"}).content.decode()
    assert "seed-0" not in html and "No events match these filters" in html
    html = owner_client.get("/settings/audit-log/", {"since": "2000-01-01"}).content.decode()
    assert "seed-0" in html


@pytest.mark.parametrize(
    "query",
    [
        {"since": "yesterday"},
        {"action": "contact.sneezed"},
        {"since": "2026-02-02", "until": "2026-01-01"},
        {"actor": "x" * 300},
    ],
)
def test_bad_filters_are_a_clear_400_not_a_500(tenant_a, owner_client, query):
    _seed("alpha", 1)
    response = owner_client.get("/settings/audit-log/", query)
    assert response.status_code == 400
    assert 'role="alert"' in response.content.decode()
    assert "seed-0" not in response.content.decode()
    assert owner_client.get("/settings/audit-log/export.csv", query).status_code == 400


def test_the_page_is_paged(tenant_a, owner_client):
    _seed("alpha", 55)
    first = owner_client.get("/settings/audit-log/", {"action": "settings.changed"}).content.decode()
    second = owner_client.get(
        "/settings/audit-log/", {"action": "settings.changed", "page": 2}
    ).content.decode()
    assert "seed-54" in first and "seed-4<" not in first and "Next" in first
    assert "seed-4<" in second and "seed-54" not in second


def test_the_page_reads_a_fixed_number_of_queries(tenant_a, owner_client, django_assert_max_num_queries):
    _seed("alpha", 3)
    owner_client.get("/settings/audit-log/")
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as few:
        owner_client.get("/settings/audit-log/")
    _seed("alpha", 40)
    with django_assert_max_num_queries(len(few.captured_queries)):
        owner_client.get("/settings/audit-log/")


def test_the_csv_export_is_filtered_safe_and_itself_recorded(tenant_a, owner_client):
    with schema_context("alpha"):
        audit.record("contact.deleted", actor='=HYPERLINK("http://evil","x")', details={"note": "@SUM(1)"})
        audit.record("settings.changed", actor="not-exported")
    response = owner_client.get("/settings/audit-log/export.csv", {"action": "contact.deleted"})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0] == audit.CSV_COLUMNS
    assert len(rows) == 2
    row = dict(zip(rows[0], rows[1], strict=True))
    assert row["action"] == "contact.deleted"
    assert row["actor"] == '\'=HYPERLINK("http://evil","x")'
    assert json.loads(row["details"]) == {"note": "@SUM(1)"}  # inside JSON, not at a cell's start
    export = _one("alpha", "export.created")
    assert export.details == {"kind": "audit_log", "filters": {"action": "contact.deleted"}}


def test_another_tenants_events_never_show(tenant_a, tenant_b, owner_client, owner_b):
    _seed("beta", 1)
    with schema_context("beta"):
        audit.record("contact.deleted", actor="beta-secret-actor")
    assert "beta-secret-actor" not in owner_client.get("/settings/audit-log/").content.decode()
    export = owner_client.get("/settings/audit-log/export.csv")
    assert "beta-secret-actor" not in b"".join(export.streaming_content).decode()
    key_a = issue_key(tenant_a, role="admin")
    body = api_client(tenant_a, key_a).get("/api/v1/audit-log/").json()
    assert "beta-secret-actor" not in json.dumps(body)
    # Tenant b's session cookie means nothing on a's host.
    client_b = login(Client(HTTP_HOST=host_of(tenant_b)), tenant_b, owner_b)
    assert "beta-secret-actor" in client_b.get("/settings/audit-log/").content.decode()
    client_b.defaults["HTTP_HOST"] = host_of(tenant_a)
    assert client_b.get("/settings/audit-log/").status_code == 302


# --- the API ------------------------------------------------------------------------------------------


def test_the_api_lists_events_newest_first_with_cursor_pages(tenant_a):
    _seed("alpha", 5)
    client = api_client(tenant_a, issue_key(tenant_a, role="admin"))
    body = client.get("/api/v1/audit-log/", {"action": "settings.changed", "page_size": 2}).json()
    assert [e["actor"] for e in body["results"]] == ["seed-4", "seed-3"]
    first = body["results"][0]
    assert set(first) == {
        "id",
        "created_at",
        "action",
        "actor",
        "actor_id",
        "ip",
        "user_agent",
        "target",
        "details",
    }
    assert first["details"] == {"n": 4}
    following = client.get(body["next"]).json()
    assert [e["actor"] for e in following["results"]] == ["seed-2", "seed-1"]


def test_the_api_filters_by_actor_and_time(tenant_a):
    _seed("alpha", 2)
    client = api_client(tenant_a, issue_key(tenant_a, role="owner"))
    body = client.get("/api/v1/audit-log/", {"actor": "seed-1"}).json()
    assert [e["actor"] for e in body["results"]] == ["seed-1"]
    body = client.get("/api/v1/audit-log/", {"until": "2000-01-01T00:00:00Z"}).json()
    assert body["results"] == []


@pytest.mark.parametrize(
    "query", [{"action": "contact.sneezed"}, {"since": "yesterday"}, {"cursor": "garbage"}]
)
def test_bad_api_filters_are_a_400_in_the_error_shape(tenant_a, query):
    client = api_client(tenant_a, issue_key(tenant_a, role="admin"))
    assert_error(client.get("/api/v1/audit-log/", query), 400)


@pytest.mark.parametrize("role", ["agent", "supervisor"])
def test_the_api_refuses_agents_and_supervisors(tenant_a, client_a, role):
    agent = make_agent(tenant_a, email=f"{role}.api.nosy@alpha.test", role=role)
    assert_error(api_client(tenant_a, issue_key(tenant_a, user=agent.user)).get("/api/v1/audit-log/"), 403)
    if role == "supervisor":
        key = issue_key(tenant_a, role="supervisor")
        assert_error(api_client(tenant_a, key).get("/api/v1/audit-log/"), 403, "permission_denied")
    login(client_a, tenant_a, agent.user)
    assert client_a.get("/api/v1/audit-log/").status_code == 403
    assert_error(api_client(tenant_a).get("/api/v1/audit-log/"), 401)


def test_the_api_is_read_only(tenant_a):
    client = api_client(tenant_a, issue_key(tenant_a, role="owner"))
    assert client.post("/api/v1/audit-log/", {}, content_type="application/json").status_code == 405


def test_another_tenants_key_reads_only_its_own_events(tenant_a, tenant_b):
    with schema_context("alpha"):
        audit.record("contact.deleted", actor="alpha-only-actor")
    key_b = issue_key(tenant_b, role="admin")
    body = api_client(tenant_b, key_b).get("/api/v1/audit-log/").json()
    assert "alpha-only-actor" not in json.dumps(body)
    # b's key on a's host is no key at all.
    assert api_client(tenant_a, key_b).get("/api/v1/audit-log/").status_code == 401


def test_the_api_list_reads_a_fixed_number_of_queries(tenant_a, django_assert_max_num_queries):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client = api_client(tenant_a, issue_key(tenant_a, role="admin"))
    _seed("alpha", 2)
    client.get("/api/v1/audit-log/")
    with CaptureQueriesContext(connection) as few:
        client.get("/api/v1/audit-log/")
    _seed("alpha", 40)
    with django_assert_max_num_queries(len(few.captured_queries)):
        client.get("/api/v1/audit-log/")


def test_the_openapi_schema_documents_the_audit_log(client_a, owner_a, tenant_a):
    login(client_a, tenant_a, owner_a)
    schema = client_a.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    operation = schema["paths"]["/api/v1/audit-log/"]["get"]
    names = {p["name"] for p in operation["parameters"]}
    assert {"action", "actor", "since", "until", "cursor", "page_size"} <= names


def test_suspending_a_tenant_in_its_change_form_is_recorded_too(tenant_a):
    from django.contrib import admin

    from tenants.models import Tenant

    root = get_user_model().objects.create_superuser("form@platform.test", "form@platform.test", PASSWORD)
    request = RequestFactory().post("/", REMOTE_ADDR=IP)
    request.user = root

    class ChangedForm:
        changed_data = ["is_active", "name"]
        initial = {"is_active": True}

    tenant = Tenant.objects.get(pk=tenant_a.pk)
    tenant.is_active, tenant.name = False, "Alpha Renamed"
    with audit.request_context(request):
        admin.site._registry[Tenant].save_model(request, tenant, ChangedForm(), True)
    stored = Tenant.objects.get(pk=tenant_a.pk)
    assert (stored.is_active, stored.name) == (False, "Alpha Renamed")
    event = _one("public", "tenant.suspended", target_id=str(tenant_a.pk))
    assert (event.actor_label, event.ip) == ("platform:form@platform.test", IP)


def test_a_tenant_archive_export_is_a_platform_event(tenant_a, tmp_path, settings):
    from tenants.backup import export_tenant
    from tenants.tests.backup_fixtures import storages_at

    settings.STORAGES = storages_at(tmp_path)

    export_tenant(tenant=tenant_a, output=tmp_path / "alpha.tar.gz")
    event = _one("public", "export.created", target_id=str(tenant_a.pk))
    assert (event.actor_label, event.details) == ("system", {"kind": "tenant_archive"})
    assert not _events("alpha", "export.created")
