"""Password reset from the attacker's side: flooding an inbox, flooding from one address, learning
whether an account exists, and getting the emailed link to point at a host the attacker chose."""

from __future__ import annotations

import re
import uuid

import pytest
from django.test import Client

from conftest import login, make_agent

NEW_PASSWORD = "Brand-New-Pass-77"


def _address() -> str:
    n = uuid.uuid4().int
    return f"10.{n % 250}.{(n >> 8) % 250}.{(n >> 16) % 250 + 1}"


def _client(host: str = "alpha.localhost", **extra: str) -> Client:
    return Client(HTTP_HOST=host, REMOTE_ADDR=_address(), **extra)


@pytest.fixture
def account(tenant_a):
    return make_agent(tenant_a, email=f"reset.{uuid.uuid4().hex[:8]}@alpha.test").user


def _links(mailoutbox) -> list[str]:
    return [m for mail in mailoutbox for m in re.findall(r"\S+/password-reset/\S+/\S+/", mail.body)]


def test_a_flood_of_resets_for_one_account_sends_at_most_the_account_limit(
    tenant_a, account, settings, mailoutbox
):
    settings.PASSWORD_RESET_ACCOUNT_LIMIT = "3/h"
    statuses = set()
    for _ in range(45):
        # From many addresses: the account's own limit is what keeps its inbox quiet.
        response = _client().post("/password-reset/", {"email": account.email})
        statuses.add((response.status_code, response["Location"]))
    assert statuses == {(302, "/password-reset/sent/")}
    assert [m.to for m in mailoutbox] == [[account.email]] * 3


def test_a_flood_from_one_address_gets_429_and_no_more_mail(tenant_a, account, settings, mailoutbox):
    settings.PASSWORD_RESET_IP_LIMIT = "5/h"
    client = _client()
    statuses = [client.post("/password-reset/", {"email": account.email}).status_code for _ in range(12)]
    assert statuses == [302] * 5 + [429] * 7
    assert len(mailoutbox) == 5
    throttled = client.post("/password-reset/", {"email": account.email})
    assert int(throttled["Retry-After"]) > 0 and b"Too many requests" in throttled.content


def test_a_throttled_account_and_an_unknown_address_get_the_same_answer(
    tenant_a, account, settings, mailoutbox
):
    settings.PASSWORD_RESET_ACCOUNT_LIMIT = "1/h"
    first = _client().post("/password-reset/", {"email": account.email})
    throttled = _client().post("/password-reset/", {"email": account.email})
    unknown = _client().post("/password-reset/", {"email": f"nobody.{uuid.uuid4().hex[:6]}@alpha.test"})
    answers = {(r.status_code, r["Location"]) for r in (first, throttled, unknown)}
    assert answers == {(302, "/password-reset/sent/")}
    assert len(mailoutbox) == 1


def test_the_reset_link_uses_the_tenants_domain_whatever_the_request_says(
    tenant_a, account, settings, mailoutbox
):
    settings.SITE_SCHEME = "https"
    settings.SITE_PORT = "8443"
    client = _client(
        host="alpha.localhost:9999",
        HTTP_X_FORWARDED_HOST="evil.example",
        HTTP_X_FORWARDED_PORT="666",
        HTTP_X_FORWARDED_PROTO="http",
    )
    assert client.post("/password-reset/", {"email": account.email}).status_code == 302
    links = _links(mailoutbox)
    assert len(links) == 1
    assert links[0].startswith("https://alpha.localhost:8443/password-reset/")
    assert "evil" not in mailoutbox[0].body and "9999" not in mailoutbox[0].body
    assert "evil" not in mailoutbox[0].subject


@pytest.mark.parametrize("host", ["evil.com", "alpha.localhost.evil.com", "evil.localhost"])
def test_a_spoofed_host_never_reaches_the_tenant(tenant_a, account, host, mailoutbox):
    response = _client(host=host).post("/password-reset/", {"email": account.email})
    assert response.status_code in (400, 404)
    assert mailoutbox == []


def test_the_emailed_link_sets_a_new_password(tenant_a, account, mailoutbox):
    _client().post("/password-reset/", {"email": account.email})
    path = re.sub(r"^https?://[^/]+", "", _links(mailoutbox)[0])
    client = _client()
    form_page = client.get(path, follow=True)
    assert form_page.status_code == 200
    done = client.post(
        form_page.redirect_chain[-1][0], {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD}
    )
    assert done.status_code == 302
    signed_in = _client().post("/login/", {"username": account.email, "password": NEW_PASSWORD})
    assert signed_in.status_code == 302


def test_an_invitation_link_uses_the_tenants_domain_not_the_request_host(
    tenant_a, owner_a, settings, mailoutbox, django_capture_on_commit_callbacks
):
    settings.SITE_PORT = "8443"
    client = login(
        _client(host="alpha.localhost:9999", HTTP_X_FORWARDED_HOST="evil.example"), tenant_a, owner_a
    )
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/settings/team/", {"email": "linked@alpha.test", "name": "L", "role": "agent"}
        )
    assert response.status_code == 302
    assert re.search(r"http://alpha\.localhost:8443/invitations/\S+/\S+/", mailoutbox[0].body)
    assert "evil" not in mailoutbox[0].body and "9999" not in mailoutbox[0].body


def test_the_login_page_links_to_the_reset_page(tenant_a):
    assert b"/password-reset/" in _client().get("/login/").content
    assert _client().get("/password-reset/").status_code == 200
