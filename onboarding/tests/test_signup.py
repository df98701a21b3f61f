"""Self-service signup as a service: validation with stable codes, one pending signup per e-mail, the
signed verification link (expired, tampered, reused, replaced), the modes (open, approval, closed)."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django_tenants.utils import schema_context, schema_exists

from conftest import PASSWORD
from core.errors import ServiceError
from crm.models import Agent
from onboarding import signup
from onboarding.models import LoginToken, Signup
from onboarding.tests.helpers import signup_fields, token_from
from tenants.models import Tenant


@pytest.fixture
def send(mailoutbox, django_capture_on_commit_callbacks):
    """start_signup with its e-mail sent (on commit, as in production)."""

    def _send(**overrides):
        with django_capture_on_commit_callbacks(execute=True):
            signup.start_signup(**signup_fields(**overrides))
        return mailoutbox[-1] if mailoutbox else None

    return _send


def test_a_verified_signup_creates_the_workspace_and_its_owner_and_a_one_time_sign_in(db, send):
    message = send()
    assert message.to == ["grace@gamma.test"]
    assert "Gamma Goods" in message.subject
    assert not Tenant.objects.filter(slug="gamma").exists()  # nothing before the e-mail is verified

    verified = signup.verify_signup(token=token_from(message))

    tenant = Tenant.objects.get(slug="gamma")
    assert tenant.name == "Gamma Goods" and schema_exists("gamma")
    with schema_context("gamma"):
        owner = get_user_model().objects.get(email="grace@gamma.test")
        assert owner.check_password(PASSWORD)
        assert owner.get_full_name() == "Grace Gamma"
        assert Agent.objects.get(user=owner).role == "owner"
    row = Signup.objects.get()
    assert (row.status, row.tenant, row.password_hash) == ("completed", tenant, "")
    assert verified.login_url.startswith("http://gamma.localhost/welcome/")
    assert LoginToken.objects.get(tenant=tenant).user_id == owner.pk


@pytest.mark.parametrize(
    ("overrides", "code", "field"),
    [
        ({"business_name": "  "}, "invalid_name", "business_name"),
        ({"business_name": "x" * 201}, "invalid_name", "business_name"),
        ({"slug": "Bad Slug"}, "invalid_slug", "slug"),
        ({"slug": "a"}, "invalid_slug", "slug"),
        ({"slug": "tenant_template"}, "invalid_slug", "slug"),
        ({"slug": "tenant-template"}, "invalid_slug", "slug"),
        ({"slug": "www"}, "reserved_slug", "slug"),
        ({"slug": "admin"}, "reserved_slug", "slug"),
        ({"slug": "api"}, "reserved_slug", "slug"),
        ({"slug": "public"}, "reserved_slug", "slug"),
        ({"slug": "platform"}, "reserved_slug", "slug"),
        ({"slug": "static"}, "reserved_slug", "slug"),
        ({"slug": "media"}, "reserved_slug", "slug"),
        ({"slug": "mail"}, "reserved_slug", "slug"),
        ({"slug": "tenanttemplate"}, "reserved_slug", "slug"),
        ({"slug": "pgcatalog"}, "reserved_slug", "slug"),
        ({"business_name": "Gamma\r\nBcc: victim@example.test"}, "invalid_name", "business_name"),
        ({"business_name": "Gamma\tGoods"}, "invalid_name", "business_name"),
        ({"owner_name": ""}, "invalid_owner_name", "owner_name"),
        ({"owner_name": "Grace\nGamma"}, "invalid_owner_name", "owner_name"),
        ({"email": "not-an-email"}, "invalid_email", "email"),
        ({"password": "short"}, "weak_password", "password"),
        ({"password": "password123"}, "weak_password", "password"),
        ({"password": "grace@gamma.test"}, "weak_password", "password"),
    ],
)
def test_bad_input_is_refused_with_a_stable_code_and_nothing_is_stored_or_sent(
    db, send, mailoutbox, overrides, code, field
):
    with pytest.raises(ServiceError) as info:
        send(**overrides)
    assert (info.value.code, info.value.field) == (code, field)
    assert not Signup.objects.exists()
    assert mailoutbox == []


def test_a_taken_subdomain_is_told_by_e_mail_and_nothing_is_stored(db, send):
    message = send(slug="alpha")
    assert "already taken" in message.body and "/signup/verify/" not in message.body
    assert not Signup.objects.exists()


def test_a_second_signup_with_the_same_email_replaces_the_pending_one_and_its_link(db, send):
    first = token_from(send())
    second = token_from(send(business_name="Gamma Two", slug="gammatwo", email="GRACE@gamma.test"))
    assert Signup.objects.count() == 1
    assert Signup.objects.get().slug == "gammatwo"
    with pytest.raises(ServiceError) as info:
        signup.verify_signup(token=first)
    assert info.value.code == "invalid_link"
    signup.verify_signup(token=second)
    assert (
        Tenant.objects.filter(slug="gammatwo").exists() and not Tenant.objects.filter(slug="gamma").exists()
    )


def test_the_same_email_may_sign_up_for_another_workspace_after_the_first_is_created(db, send):
    signup.verify_signup(token=token_from(send()))
    signup.verify_signup(token=token_from(send(slug="gammabis", business_name="Gamma Bis")))
    assert set(Tenant.objects.filter(slug__startswith="gamma").values_list("slug", flat=True)) == {
        "gamma",
        "gammabis",
    }


def test_an_expired_link_is_refused(db, send, settings):
    token = token_from(send())
    settings.SIGNUP_VERIFY_MAX_AGE_SECONDS = -1
    with pytest.raises(ServiceError) as info:
        signup.verify_signup(token=token)
    assert (info.value.code, info.value.status) == ("expired_link", 410)
    assert not Tenant.objects.filter(slug="gamma").exists()


@pytest.mark.parametrize("tamper", ["flip", "truncate", "other_salt"])
def test_a_tampered_link_is_refused(db, send, tamper):
    from django.core import signing

    token = token_from(send())
    if tamper == "flip":
        token = token[:-3] + ("A" if token[-3] != "A" else "B") + token[-2:]
    elif tamper == "truncate":
        token = token[:-5]
    else:
        token = signing.dumps({"s": Signup.objects.get().pk, "n": Signup.objects.get().nonce}, salt="other")
    with pytest.raises(ServiceError) as info:
        signup.verify_signup(token=token)
    assert (info.value.code, info.value.status) == ("invalid_link", 404)
    assert not Tenant.objects.filter(slug="gamma").exists()


def test_a_used_link_does_not_work_twice(db, send):
    token = token_from(send())
    signup.verify_signup(token=token)
    with pytest.raises(ServiceError) as info:
        signup.verify_signup(token=token)
    assert info.value.code == "used_link"
    assert Tenant.objects.filter(slug="gamma").count() == 1


def test_a_subdomain_taken_between_signup_and_verification_is_refused_clearly(db, send):
    from onboarding.services import onboard_tenant

    token = token_from(send())
    onboard_tenant(slug="gamma", name="Someone Else", owner_email="x@else.test", owner_password=PASSWORD)
    with pytest.raises(ServiceError) as info:
        signup.verify_signup(token=token)
    assert info.value.code == "duplicate_slug" and "sign up again" in info.value.message
    assert Signup.objects.get().status == "pending"


def test_signup_closed_refuses_new_signups_and_pending_verifications(db, send, settings, mailoutbox):
    token = token_from(send())
    settings.SIGNUP_MODE = "closed"
    with pytest.raises(ServiceError) as info:
        send(email="other@gamma.test", slug="gammaother")
    assert (info.value.code, info.value.status) == ("signup_closed", 403)
    with pytest.raises(ServiceError) as info:
        signup.verify_signup(token=token)
    assert info.value.code == "signup_closed"
    assert len(mailoutbox) == 1 and not Tenant.objects.filter(slug="gamma").exists()


def test_in_approval_mode_a_verified_signup_waits_and_holds_its_subdomain(db, send, settings):
    settings.SIGNUP_MODE = "approval"
    verified = signup.verify_signup(token=token_from(send()))
    assert verified.login_url is None
    assert Signup.objects.get().status == "awaiting_approval"
    assert not Tenant.objects.filter(slug="gamma").exists()
    assert signup.check_subdomain(slug="gamma").code == "duplicate_slug"


def test_approving_creates_the_workspace_and_e_mails_the_owner(
    db, send, settings, mailoutbox, django_capture_on_commit_callbacks
):
    settings.SIGNUP_MODE = "approval"
    signup.verify_signup(token=token_from(send()))
    row = Signup.objects.get()
    with django_capture_on_commit_callbacks(execute=True):
        onboarded = signup.approve_signup(signup_id=row.pk)
    assert onboarded.tenant.slug == "gamma"
    assert mailoutbox[-1].to == ["grace@gamma.test"]
    assert "http://gamma.localhost/login/" in mailoutbox[-1].body
    with pytest.raises(ServiceError) as info:
        signup.approve_signup(signup_id=row.pk)
    assert info.value.code == "not_awaiting_approval"


def test_rejecting_forgets_the_password_and_frees_the_subdomain(db, send, settings):
    settings.SIGNUP_MODE = "approval"
    signup.verify_signup(token=token_from(send()))
    row = signup.reject_signup(signup_id=Signup.objects.get().pk)
    assert (row.status, row.password_hash) == ("rejected", "")
    assert signup.check_subdomain(slug="gamma").available


@pytest.mark.parametrize(
    ("slug", "available", "code"),
    [
        ("gamma", True, "available"),
        ("Gamma", True, "available"),
        ("alpha", False, "duplicate_slug"),
        ("www", False, "reserved_slug"),
        ("pgroot", False, "reserved_slug"),
        ("no spaces", False, "invalid_slug"),
        ("", False, "invalid_slug"),
    ],
)
def test_the_subdomain_check(db, slug, available, code):
    result = signup.check_subdomain(slug=slug)
    assert (result.available, result.code) == (available, code)


def test_an_unverified_signup_does_not_hold_its_subdomain(db, send):
    send()
    assert signup.check_subdomain(slug="gamma").available
