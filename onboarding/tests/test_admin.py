"""The platform admin's tenant creation (onboarding.admin.PlatformTenantAdmin, through the onboarding
service) and its review of self-service signups."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from conftest import PASSWORD
from tenants.models import Tenant


@pytest.fixture
def operator(public_client):
    admin = get_user_model().objects.create_superuser("root@platform.test", "root@platform.test", PASSWORD)
    public_client.force_login(admin)
    return public_client


def test_the_platform_admin_creates_a_tenant_through_onboarding(public_client, db):
    admin = get_user_model().objects.create_superuser("root@platform.test", "root@platform.test", PASSWORD)
    public_client.force_login(admin)
    response = public_client.post(
        "/admin/tenants/tenant/add/",
        {
            "slug": "eta",
            "name": "Eta",
            "plan": "free",
            "owner_email": "o@eta.test",
            "owner_password": PASSWORD,
        },
    )
    assert response.status_code == 302, response.content[:500]
    assert Tenant.objects.filter(slug="eta").exists()
    bad = public_client.post(
        "/admin/tenants/tenant/add/",
        {"slug": "www", "name": "W", "plan": "free", "owner_email": "o@w.test", "owner_password": PASSWORD},
    )
    assert bad.status_code == 200
    assert b"reserved" in bad.content


def test_creating_a_tenant_with_a_bad_slug_shows_one_message(operator):
    response = operator.post(
        "/admin/tenants/tenant/add/",
        {
            "slug": "Bad Slug!",
            "name": "Bad",
            "plan": "free",
            "owner_email": "o@bad.test",
            "owner_password": PASSWORD,
        },
    )
    page = response.content.decode()
    assert page.count("The slug must be 2 to 40 lowercase letters or digits") == 1
    assert "underscores or hyphens" not in page


def test_creating_a_tenant_with_a_bad_email_or_no_name_shows_one_message_each(operator):
    response = operator.post(
        "/admin/tenants/tenant/add/",
        {"slug": "zeta", "name": "Zeta", "plan": "free", "owner_email": "nope", "owner_password": PASSWORD},
    )
    page = response.content.decode()
    assert page.count("Enter a valid") == 1 and "Enter a valid owner email address." in page
    empty = operator.post(
        "/admin/tenants/tenant/add/",
        {
            "slug": "zeta",
            "name": "",
            "plan": "free",
            "owner_email": "o@zeta.test",
            "owner_password": PASSWORD,
        },
    ).content.decode()
    assert empty.count("This field is required.") == 1
    assert "The business name is required." not in empty


def test_the_operator_approves_a_verified_signup_from_the_admin(
    operator, settings, mailoutbox, django_capture_on_commit_callbacks
):
    from onboarding import signup
    from onboarding.models import Signup
    from onboarding.tests.helpers import signup_fields, token_from

    settings.SIGNUP_MODE = "approval"
    with django_capture_on_commit_callbacks(execute=True):
        signup.start_signup(**signup_fields())
    signup.verify_signup(token=token_from(mailoutbox[-1]))
    row = Signup.objects.get()
    listing = operator.get("/admin/onboarding/signup/?status=awaiting_approval").content.decode()
    assert "Gamma Goods" in listing and "Approve the selected signups" in listing
    with django_capture_on_commit_callbacks(execute=True):
        response = operator.post(
            "/admin/onboarding/signup/", {"action": "approve", "_selected_action": [row.pk]}, follow=True
        )
    assert "Approved 1 signup." in response.content.decode()
    assert Tenant.objects.filter(slug="gamma").exists()
    assert mailoutbox[-1].to == ["grace@gamma.test"]
    again = operator.post(
        "/admin/onboarding/signup/", {"action": "approve", "_selected_action": [row.pk]}, follow=True
    )
    assert "Only a verified signup waiting for approval can be approved." in again.content.decode()


def test_a_signups_page_is_read_only(operator):
    from onboarding.models import Signup

    row = Signup.objects.create(
        business_name="X", slug="xco", owner_name="X", email="x@x.test", password_hash="h", nonce="n"
    )
    page = operator.get(f"/admin/onboarding/signup/{row.pk}/change/").content.decode()
    assert "X" in page and 'name="business_name"' not in page  # shown, not editable
    assert "password" not in page.lower().split('id="content"', 1)[-1]  # its hash is never shown
    assert operator.get("/admin/onboarding/signup/add/").status_code == 403


def test_checklist_states_are_only_looked_at_in_the_platform_admin(operator):
    assert operator.get("/admin/onboarding/checkliststate/add/").status_code == 403
    assert operator.get("/admin/onboarding/checkliststate/").status_code == 200
