"""Sign-in throttling from the attacker's side: forged X-Forwarded-For, spraying, lockouts that must not
reach the real user's own address, and the admin's sign-in page."""

from __future__ import annotations

import uuid

import pytest
from django.test import Client, RequestFactory

from conftest import PASSWORD, make_agent
from crm.auth import client_ip

WRONG = "not-the-password"


def _address() -> str:
    n = uuid.uuid4().int
    return f"10.{n % 250}.{(n >> 8) % 250}.{(n >> 16) % 250 + 1}"


def _client(**extra: str) -> Client:
    return Client(HTTP_HOST="alpha.localhost", REMOTE_ADDR=_address(), **extra)


def _sign_in(
    client: Client, username: str, password: str, *, via: str | None = None, path: str = "/login/"
) -> int:
    extra = {"HTTP_X_FORWARDED_FOR": via} if via else {}
    return int(client.post(path, {"username": username, "password": password}, **extra).status_code)


@pytest.fixture
def victim(tenant_a):
    return make_agent(tenant_a, email=f"victim.{uuid.uuid4().hex[:8]}@alpha.test").user


@pytest.fixture
def limits(settings):
    settings.LOGIN_FAILURE_LIMIT = "5/15m"
    settings.LOGIN_FAILURE_USER_LIMIT = "12/h"
    settings.LOGIN_FAILURE_IP_LIMIT = "10/15m"
    return settings


def test_rotating_x_forwarded_for_does_not_escape_the_per_address_limit(tenant_a, limits):
    limits.FORWARDED_ALLOW_IPS = []
    client = _client()
    statuses = [
        _sign_in(client, f"spray{n}.{uuid.uuid4().hex[:6]}@alpha.test", WRONG, via=_address())
        for n in range(30)
    ]
    assert statuses[:10] == [200] * 10
    assert statuses[10:] == [429] * 20


def test_rotating_x_forwarded_for_does_not_escape_the_per_account_limit(tenant_a, victim, limits):
    limits.FORWARDED_ALLOW_IPS = []
    client = _client()
    statuses = [_sign_in(client, victim.email, WRONG, via=_address()) for _ in range(8)]
    assert statuses == [200] * 5 + [429] * 3
    assert _sign_in(client, victim.email, PASSWORD, via=_address()) == 429


def test_behind_a_trusted_proxy_a_lockout_from_one_address_leaves_the_user_another(tenant_a, victim, limits):
    proxy = _address()
    limits.FORWARDED_ALLOW_IPS = [proxy]
    client = Client(HTTP_HOST="alpha.localhost", REMOTE_ADDR=proxy)
    attacker, owner_home = _address(), _address()
    assert [_sign_in(client, victim.email, WRONG, via=attacker) for _ in range(6)] == [200] * 5 + [429]
    assert _sign_in(client, victim.email, PASSWORD, via=attacker) == 429
    # The real user, from their own address behind the same proxy, still gets in.
    assert _sign_in(client, victim.email, PASSWORD, via=owner_home) == 302


def test_behind_a_trusted_proxy_the_per_user_limit_still_applies_across_addresses(tenant_a, victim, limits):
    proxy = _address()
    limits.FORWARDED_ALLOW_IPS = [proxy]
    client = Client(HTTP_HOST="alpha.localhost", REMOTE_ADDR=proxy)
    # One guess from each of many addresses: no address is locked, the account is after 12.
    assert [_sign_in(client, victim.email, WRONG, via=_address()) for _ in range(12)] == [200] * 12
    assert _sign_in(client, victim.email, WRONG, via=_address()) == 429
    assert _sign_in(client, victim.email, PASSWORD, via=_address()) == 429


def test_a_client_cannot_pose_as_a_trusted_proxy_by_adding_its_own_hop(tenant_a, limits):
    proxy = _address()
    limits.FORWARDED_ALLOW_IPS = [proxy]
    client = Client(HTTP_HOST="alpha.localhost", REMOTE_ADDR=proxy)
    real = _address()
    # The proxy appends the real peer; whatever the client put before it is ignored.
    statuses = [
        _sign_in(client, f"spray{n}.{uuid.uuid4().hex[:6]}@alpha.test", WRONG, via=f"{_address()}, {real}")
        for n in range(12)
    ]
    assert statuses == [200] * 10 + [429] * 2


def test_ipv6_clients_are_counted_per_64_network(tenant_a, limits):
    prefix = f"2001:db8:{uuid.uuid4().int % 65535:x}:{uuid.uuid4().int % 65535:x}"
    statuses = []
    for n in range(12):
        client = Client(HTTP_HOST="alpha.localhost", REMOTE_ADDR=f"{prefix}::{n + 1:x}")
        statuses.append(_sign_in(client, f"v6spray{n}.{uuid.uuid4().hex[:6]}@alpha.test", WRONG))
    assert statuses == [200] * 10 + [429] * 2


def test_the_admin_sign_in_answers_429_with_retry_after_when_locked_out(tenant_a, limits):
    admin = make_agent(tenant_a, email=f"adm.{uuid.uuid4().hex[:8]}@alpha.test", role="admin").user
    client = _client()
    assert [_sign_in(client, admin.email, WRONG, path="/admin/login/") for _ in range(5)] == [200] * 5
    response = client.post("/admin/login/", {"username": admin.email, "password": PASSWORD})
    assert response.status_code == 429
    assert int(response["Retry-After"]) > 0
    assert b"Too many failed sign-ins" in response.content
    assert "_auth_user_id" not in client.session
    # The same counters guard the staff sign-in.
    assert _sign_in(client, admin.email, PASSWORD) == 429


def test_the_admin_sign_in_still_works_for_an_admin_role(tenant_a):
    admin = make_agent(tenant_a, email=f"adm.ok.{uuid.uuid4().hex[:8]}@alpha.test", role="admin").user
    client = _client()
    response = client.post("/admin/login/?next=/admin/", {"username": admin.email, "password": PASSWORD})
    assert response.status_code == 302 and response["Location"] == "/admin/"
    assert client.get("/admin/crm/contact/").status_code == 200


# --- client_ip -------------------------------------------------------------------------------------


def _request(remote: str, forwarded: str | None = None):
    extra = {"HTTP_X_FORWARDED_FOR": forwarded} if forwarded is not None else {}
    return RequestFactory().get("/", REMOTE_ADDR=remote, **extra)


def test_client_ip_ignores_x_forwarded_for_unless_the_peer_is_a_trusted_proxy(settings):
    settings.FORWARDED_ALLOW_IPS = []
    assert client_ip(_request("127.0.0.1", "6.6.6.6")) == "127.0.0.1"
    settings.FORWARDED_ALLOW_IPS = ["10.0.0.0/8"]
    assert client_ip(_request("192.0.2.1", "6.6.6.6")) == "192.0.2.1"
    assert client_ip(_request("10.1.2.3", "6.6.6.6, 198.51.100.7")) == "198.51.100.7"
    # Hops that are our own proxies are skipped; ports are dropped.
    assert client_ip(_request("10.1.2.3", "198.51.100.7:5555, 10.9.9.9")) == "198.51.100.7"
    assert client_ip(_request("10.1.2.3", "[2001:db8::1]:443")) == "2001:db8::1"
    assert client_ip(_request("10.1.2.3", "")) == "10.1.2.3"
    settings.FORWARDED_ALLOW_IPS = ["*"]
    assert client_ip(_request("192.0.2.1", "198.51.100.7")) == "198.51.100.7"


def test_the_api_rate_limit_key_uses_the_same_client_address(settings):
    from core.api import rate_limit_key

    settings.FORWARDED_ALLOW_IPS = []
    request = _request("192.0.2.1", "6.6.6.6")
    assert rate_limit_key("api", request).endswith("ip:192.0.2.1")
    settings.FORWARDED_ALLOW_IPS = ["192.0.2.1"]
    assert rate_limit_key("api", request).endswith("ip:6.6.6.6")
