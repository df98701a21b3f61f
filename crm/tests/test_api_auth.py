from __future__ import annotations

import datetime as dt

from django.core.management import call_command
from django.utils import timezone
from django_tenants.utils import schema_context

from conftest import login
from crm.models import ApiKey
from crm.tests.helpers import api_client, assert_error, issue_key


def test_a_request_without_credentials_gets_401_in_the_error_shape(client_a):
    response = client_a.get("/api/v1/contacts/")
    assert_error(response, 401, "not_authenticated")
    assert response["WWW-Authenticate"] == "Bearer"


def test_a_valid_key_is_accepted_and_its_last_use_recorded(tenant_a):
    key = issue_key(tenant_a)
    assert api_client(tenant_a, key).get("/api/v1/contacts/").status_code == 200
    with schema_context("alpha"):
        assert ApiKey.objects.get().last_used_at is not None


def test_a_garbage_key_gets_401(tenant_a):
    for raw in ("nope", "wacrm_deadbeef_nothing", "wacrm__"):
        assert_error(api_client(tenant_a, raw).get("/api/v1/contacts/"), 401, "authentication_failed")


def test_a_key_with_the_right_prefix_but_wrong_secret_gets_401(tenant_a):
    key = issue_key(tenant_a)
    assert_error(api_client(tenant_a, key[:-3] + "xyz").get("/api/v1/contacts/"), 401)


def test_a_revoked_or_expired_key_gets_401(tenant_a):
    revoked, expired = issue_key(tenant_a, name="revoked"), issue_key(tenant_a, name="expired")
    with schema_context("alpha"):
        ApiKey.objects.filter(name="revoked").update(revoked_at=timezone.now())
        ApiKey.objects.filter(name="expired").update(expires_at=timezone.now() - dt.timedelta(seconds=1))
    assert "revoked" in assert_error(api_client(tenant_a, revoked).get("/api/v1/contacts/"), 401)["message"]
    assert "expired" in assert_error(api_client(tenant_a, expired).get("/api/v1/contacts/"), 401)["message"]


def test_a_rotated_key_and_its_successor_both_work_until_the_old_one_is_revoked(tenant_a):
    from crm import services

    old = issue_key(tenant_a)
    with schema_context("alpha"):
        old_key = ApiKey.objects.get()
        new = services.rotate_api_key(api_key=old_key).raw
    assert api_client(tenant_a, old).get("/api/v1/tags/").status_code == 200
    assert api_client(tenant_a, new).get("/api/v1/tags/").status_code == 200
    with schema_context("alpha"):
        services.revoke_api_key(api_key=old_key)
    assert api_client(tenant_a, old).get("/api/v1/tags/").status_code == 401
    assert api_client(tenant_a, new).get("/api/v1/tags/").status_code == 200


def test_a_browser_session_is_accepted(tenant_a, client_a, owner_a):
    login(client_a, tenant_a, owner_a)
    assert client_a.get("/api/v1/contacts/").status_code == 200


def test_create_api_key_prints_a_working_key_on_its_last_line(tenant_a, capsys):
    call_command("create_api_key", "--tenant", "alpha", "--name", "ci", "--expires-in-days", "90")
    key = capsys.readouterr().out.strip().splitlines()[-1]
    assert key.startswith("wacrm_")
    assert api_client(tenant_a, key).get("/api/v1/contacts/").status_code == 200
    with schema_context("alpha"):
        stored = ApiKey.objects.get(name="ci")
    assert stored.expires_at and stored.expires_at > timezone.now() + dt.timedelta(days=89)


def test_create_api_key_refuses_an_unknown_tenant(db):
    import pytest
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="unknown_tenant"):
        call_command("create_api_key", "--tenant", "nobody", "--name", "ci")


def test_over_the_rate_limit_the_api_answers_429_with_retry_after(tenant_a, settings):
    settings.API_RATE_LIMIT = "3/m"
    key = issue_key(tenant_a)
    client = api_client(tenant_a, key)
    assert [client.get("/api/v1/tags/").status_code for _ in range(3)] == [200, 200, 200]
    response = client.get("/api/v1/tags/")
    assert_error(response, 429, "throttled")
    assert 1 <= int(response["Retry-After"]) <= 60
    # Another key of the same tenant has its own allowance.
    assert api_client(tenant_a, issue_key(tenant_a, name="other")).get("/api/v1/tags/").status_code == 200


def test_sign_in_locks_after_five_failures_per_username_with_429_and_retry_after(
    tenant_a, client_a, settings
):
    import uuid

    settings.LOGIN_FAILURE_LIMIT = "5/15m"
    client_a.defaults["REMOTE_ADDR"] = f"10.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}.7"
    email = f"{uuid.uuid4().hex[:8]}@alpha.test"
    from conftest import PASSWORD, make_agent

    make_agent(tenant_a, email=email)
    for _ in range(5):
        assert client_a.post("/login/", {"username": email, "password": "wrong-password"}).status_code == 200
    response = client_a.post("/login/", {"username": email, "password": PASSWORD})
    assert response.status_code == 429
    assert int(response["Retry-After"]) > 0
    assert b"Too many failed sign-ins" in response.content


def test_sign_in_locks_per_address_across_usernames(tenant_a, client_a, settings):
    import uuid

    settings.LOGIN_FAILURE_IP_LIMIT = "5/15m"
    client_a.defaults["REMOTE_ADDR"] = f"10.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}.9"
    for n in range(5):
        client_a.post("/login/", {"username": f"{uuid.uuid4().hex}{n}@x.test", "password": "wrong"})
    assert client_a.post("/login/", {"username": "owner@alpha.test", "password": "x"}).status_code == 429
