"""POST /api/v1/whatsapp/channels/ with provider "waha" (whatsapp's endpoint, waha's connector) and the
listing of WAHA numbers beside Cloud API ones."""

from __future__ import annotations

from typing import Any

import pytest
from django_tenants.utils import schema_context

from conversations.models import Channel
from crm.tests.helpers import api_client, assert_error, issue_key
from tenants.models import WahaRoute
from waha.sandbox import Sandbox
from waha.testing import make_waha_number

URL = "/api/v1/whatsapp/channels/"


def _post(client: Any, body: Any) -> Any:
    return client.post(URL, body, content_type="application/json")


def test_an_admin_links_a_waha_number_and_sees_the_key_once(tenant_a: Any, waha_sandbox: Sandbox) -> None:
    client = api_client(tenant_a, issue_key(tenant_a, role="admin"))
    response = _post(client, {"provider": "waha", "server_url": "", "api_key": "", "session": "api-shop"})
    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) == {"id", "provider", "name", "status", "session_status", "webhook_url", "webhook_key"}
    assert body["provider"] == "waha" and body["session_status"] == "SCAN_QR_CODE"
    assert body["status"] == "needs_reauth"
    route = WahaRoute.objects.get(tenant=tenant_a)
    assert body["webhook_url"].endswith(f"/webhooks/waha/{route.webhook_id}/")
    assert waha_sandbox.session("api-shop").config["webhooks"][0]["hmac"]["key"] == body["webhook_key"]

    listing = client.get(URL).json()
    rows = listing["results"] if isinstance(listing, dict) else listing
    row = next(r for r in rows if r["id"] == body["id"])
    assert row["provider"] == "waha" and row["status"] == "needs_reauth"
    assert "webhook_key" not in row and body["webhook_key"] not in client.get(URL).content.decode()


def test_agents_may_list_but_not_link(tenant_a: Any, waha_sandbox: Sandbox) -> None:
    make_waha_number(tenant_a)
    client = api_client(tenant_a, issue_key(tenant_a, role="agent"))
    assert client.get(URL).status_code == 200
    assert_error(_post(client, {"provider": "waha", "session": "x"}), 403)
    assert waha_sandbox.sessions() == []


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"provider": "telegram", "session": "x"}, 400, "unknown_provider"),
        ({"session": "x"}, 400, "unknown_provider"),
        ({"provider": ["waha"], "session": "x"}, 400, "unknown_provider"),
        ({"provider": "waha", "session": {"a": 1}}, 400, "validation_error"),
        (
            {"provider": "waha", "server_url": "javascript:alert(1)", "api_key": "k", "session": "x"},
            400,
            "invalid_server_url",
        ),
        ({"provider": "waha", "session": "<script>x</script>"}, 400, "invalid_session_name"),
        ({"provider": "waha", "server_url": "https://w.example.com", "session": "x"}, 400, "missing_api_key"),
        (
            {"provider": "waha", "server_url": "http://127.0.0.1:9", "api_key": "k", "session": "x"},
            502,
            "waha_unreachable",
        ),
    ],
)
def test_refusals_have_stable_codes_never_a_500(
    tenant_a: Any, waha_sandbox: Sandbox, body: dict[str, Any], status: int, code: str
) -> None:
    client = api_client(tenant_a, issue_key(tenant_a, role="owner"))
    assert_error(_post(client, body), status, code)
    assert not WahaRoute.objects.exists()


def test_a_wrong_key_and_a_taken_session(tenant_a: Any, waha_sandbox: Sandbox) -> None:
    client = api_client(tenant_a, issue_key(tenant_a, role="owner"))
    wrong = {"provider": "waha", "server_url": waha_sandbox.base, "api_key": "nope", "session": "s1"}
    assert_error(_post(client, wrong), 422, "waha_auth_failed")
    assert _post(client, {"provider": "waha", "session": "s1"}).status_code == 201
    assert_error(_post(client, {"provider": "waha", "session": "s1"}), 409, "session_taken")
    assert WahaRoute.objects.count() == 1


def test_a_non_json_body_is_refused(tenant_a: Any, waha_sandbox: Sandbox) -> None:
    client = api_client(tenant_a, issue_key(tenant_a, role="owner"))
    response = client.post(URL, "[1, 2]", content_type="application/json")
    assert_error(response, 400, "unknown_provider")
    with schema_context(tenant_a.schema_name):
        assert not Channel.objects.filter(provider="waha").exists()
