"""Settings → AI and `/api/v1/ai/settings/`: owners and admins only, each tenant its own, the LLM key
write-only, bad input refused with a stable code and nothing saved."""

from __future__ import annotations

import pytest
from django_tenants.utils import schema_context

from conftest import login, make_agent
from core import crypto
from knowledge.models import AgentSettings

pytestmark = pytest.mark.django_db
URL = "/api/v1/ai/settings/"


def settings_of(tenant):
    with schema_context(tenant.schema_name):
        return AgentSettings.objects.get_or_create(pk=1)[0]


@pytest.fixture
def api_a(client_a, tenant_a, owner_a):
    return login(client_a, tenant_a, owner_a)


def test_a_new_tenant_has_the_agent_off_and_no_llm(api_a):
    body = api_a.get(URL).json()
    assert body["enabled"] is False and body["llm_enabled"] is False and body["llm_configured"] is False
    assert body["hours"] == "always" and body["max_replies"] == 5 and body["llm_api_key_set"] is False


def test_an_owner_switches_the_agent_on_and_sets_an_llm_whose_key_is_never_returned(api_a, tenant_a):
    response = api_a.patch(
        URL,
        {
            "enabled": True,
            "instructions": "Be brief.",
            "max_replies": 3,
            "hours": "outside_hours",
            "llm_enabled": True,
            "llm_base_url": "http://127.0.0.1:8002/v1",
            "llm_model": "sandbox-chat",
            "llm_api_key": "sk-secret-123",
        },
        content_type="application/json",
    )
    assert response.status_code == 200, response.content
    assert "sk-secret-123" not in response.content.decode()
    body = api_a.get(URL).json()
    assert body["enabled"] is True and body["llm_api_key_set"] is True and "llm_api_key" not in body
    assert "sk-secret-123" not in str(body)
    stored = settings_of(tenant_a)
    assert stored.llm_api_key_encrypted != "sk-secret-123"
    assert crypto.decrypt(stored.llm_api_key_encrypted) == "sk-secret-123"
    # An empty key clears it.
    api_a.patch(URL, {"llm_api_key": ""}, content_type="application/json")
    assert api_a.get(URL).json()["llm_api_key_set"] is False


def test_settings_are_per_tenant(api_a, tenant_b):
    api_a.patch(URL, {"enabled": True, "handoff_message": "Alpha's"}, content_type="application/json")
    beta = settings_of(tenant_b)
    assert beta.enabled is False and beta.handoff_message != "Alpha's"


def test_another_tenants_owner_cannot_read_or_change_them(client_b, tenant_a, owner_a):
    login(client_b, tenant_a, owner_a)  # alpha's session sent to beta's host is worthless
    assert client_b.get(URL).status_code in (401, 403)
    assert client_b.patch(URL, {"enabled": True}, content_type="application/json").status_code in (401, 403)


@pytest.mark.parametrize("role", ["agent", "supervisor"])
def test_agents_and_supervisors_may_not_read_or_change_them(role, client_a, tenant_a):
    user = make_agent(tenant_a, email=f"{role}@alpha.test", role=role).user
    login(client_a, tenant_a, user)
    assert client_a.get(URL).status_code == 403
    assert client_a.patch(URL, {"enabled": True}, content_type="application/json").status_code == 403
    assert client_a.get("/settings/ai/").status_code == 403
    assert settings_of(tenant_a).enabled is False


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        ({"max_replies": 0}, "invalid", "max_replies"),
        ({"max_replies": "many"}, "invalid", "max_replies"),
        ({"threshold": 2}, "invalid", "threshold"),
        ({"hours": "sometimes"}, "invalid", "hours"),
        ({"enabled": "yes"}, "invalid", "enabled"),
        ({"handoff_message": ""}, "invalid", "handoff_message"),
        ({"instructions": "x" * 2001}, "invalid", "instructions"),
        ({"llm_enabled": True}, "llm_not_configured", "llm_enabled"),
        ({"llm_base_url": "http://10.1.2.3/v1"}, "llm_url_refused", "llm_base_url"),
        ({"llm_base_url": "http://169.254.169.254/latest"}, "llm_url_refused", "llm_base_url"),
        ({"surprise": 1}, "unknown_field", "surprise"),
    ],
)
def test_bad_input_is_refused_with_a_stable_code_and_nothing_is_saved(body, code, field, api_a, tenant_a):
    response = api_a.patch(URL, {"enabled": True, **body}, content_type="application/json")
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == code and field in error["details"]
    assert settings_of(tenant_a).enabled is False


def test_the_page_shows_and_saves_the_settings_for_an_owner(client_a, tenant_a, owner_a):
    login(client_a, tenant_a, owner_a)
    page = client_a.get("/settings/ai/")
    assert page.status_code == 200 and "AI agent" in page.content.decode()
    response = client_a.post(
        "/settings/ai/",
        {
            "enabled": "on",
            "instructions": "<script>alert(1)</script>",
            "handoff_message": "A person will help.",
            "hours": "always",
            "max_replies": "4",
            "threshold": "0.4",
            "blocked_topics": "",
            "llm_base_url": "",
            "llm_model": "",
            "llm_api_key": "",
        },
    )
    assert response.status_code == 302
    stored = settings_of(tenant_a)
    assert stored.enabled and stored.max_replies == 4 and stored.threshold == 0.4
    html = client_a.get("/settings/ai/").content.decode()
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;" in html


def test_the_page_shows_a_refused_llm_address_beside_its_field(client_a, tenant_a, owner_a):
    login(client_a, tenant_a, owner_a)
    response = client_a.post(
        "/settings/ai/",
        {
            "handoff_message": "Hi",
            "hours": "always",
            "max_replies": "4",
            "threshold": "0.4",
            "llm_enabled": "on",
            "llm_base_url": "http://192.168.0.10/v1",
            "llm_model": "x",
        },
    )
    assert response.status_code == 400 and "not allowed" in response.content.decode()
    assert settings_of(tenant_a).llm_base_url == ""
