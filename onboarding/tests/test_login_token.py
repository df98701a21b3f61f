"""The one-time sign-in link from signup to the new workspace's host: once, in time, on its own tenant."""

from __future__ import annotations

import pytest
from django.test import Client

from conftest import PASSWORD
from core.errors import ServiceError
from onboarding import signup
from onboarding.models import LoginToken
from onboarding.services import onboard_tenant
from tenants.models import Tenant


@pytest.fixture
def onboarded(db):
    return onboard_tenant(slug="gamma", name="Gamma", owner_email="grace@gamma.test", owner_password=PASSWORD)


def _token(url: str) -> str:
    return url.rstrip("/").rsplit("/", 1)[-1]


def test_a_token_signs_in_once(onboarded):
    token = _token(signup.issue_login_url(onboarded))
    user_id = signup.redeem_login_token(tenant=onboarded.tenant, token=token)
    assert LoginToken.objects.get().used_at is not None
    with pytest.raises(ServiceError) as info:
        signup.redeem_login_token(tenant=onboarded.tenant, token=token)
    assert info.value.code == "used_token"
    assert user_id > 0


def test_an_expired_token_is_refused(onboarded, settings):
    settings.SIGNUP_LOGIN_MAX_AGE_SECONDS = -1
    token = _token(signup.issue_login_url(onboarded))
    with pytest.raises(ServiceError) as info:
        signup.redeem_login_token(tenant=onboarded.tenant, token=token)
    assert (info.value.code, info.value.status) == ("expired_token", 410)


def test_another_tenants_token_is_unknown_here(onboarded, tenant_a):
    token = _token(signup.issue_login_url(onboarded))
    with pytest.raises(ServiceError) as info:
        signup.redeem_login_token(tenant=tenant_a, token=token)
    assert (info.value.code, info.value.status) == ("invalid_token", 404)
    assert LoginToken.objects.get().used_at is None  # still good on its own host


def test_only_a_hash_of_the_token_is_stored(onboarded):
    token = _token(signup.issue_login_url(onboarded))
    assert token not in LoginToken.objects.get().token_hash


def test_the_welcome_page_signs_the_owner_in_on_their_host_only(onboarded, tenant_a):
    url = signup.issue_login_url(onboarded)
    path = "/welcome/" + _token(url) + "/"

    elsewhere = Client(HTTP_HOST="alpha.localhost")
    assert elsewhere.get(path).status_code == 404
    assert elsewhere.get("/inbox/").status_code == 302  # not signed in there

    browser = Client(HTTP_HOST="gamma.localhost")
    response = browser.get(path)
    assert response.status_code == 302 and response["Location"] == "/inbox/"
    assert browser.get("/inbox/").status_code == 200

    again = Client(HTTP_HOST="gamma.localhost").get(path)
    assert again.status_code == 410 and b"already used" in again.content


def test_a_garbage_token_answers_404_not_500(onboarded):
    response = Client(HTTP_HOST="gamma.localhost").get("/welcome/%00%ff<script>/")
    assert response.status_code in (400, 404)
    assert Tenant.objects.filter(slug="gamma").exists()
