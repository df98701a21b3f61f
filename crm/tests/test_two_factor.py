from __future__ import annotations

import re
import time
import uuid
from typing import Any

import pyotp
import pytest
from django.core.cache import cache
from django_tenants.utils import schema_context

from conftest import PASSWORD, login, make_agent
from core.audit import AuditEvent
from core.crypto import decrypt
from crm.models import RecoveryCode, TwoFactor
from crm.services import two_factor
from crm.tests.helpers import api_client, issue_key


@pytest.fixture(autouse=True)
def _fresh_counters() -> None:
    cache.clear()  # the code-failure counters of an earlier run (this helper's own Redis db)


def person(tenant: Any, role: str = "agent") -> Any:
    return make_agent(tenant, email=f"{role}.{uuid.uuid4().hex[:8]}@alpha.test", role=role).user


def totp_of(tenant: Any, user: Any) -> pyotp.TOTP:
    with schema_context(tenant.schema_name):
        return pyotp.TOTP(decrypt(TwoFactor.objects.get(user=user).secret_encrypted))


def next_code(totp: pyotp.TOTP) -> str:
    # The step after the one enrolment used (a code is accepted once; the window allows one step ahead).
    return totp.at(time.time() + 30)


def enrol(tenant: Any, user: Any) -> tuple[pyotp.TOTP, list[str]]:
    with schema_context(tenant.schema_name):
        device = two_factor.start_two_factor(user=user)
        totp = pyotp.TOTP(decrypt(device.secret_encrypted))
        codes = two_factor.confirm_two_factor(user=user, code=totp.now())
    return totp, codes


def password_step(client: Any, user: Any, next_url: str = "/contacts/") -> Any:
    return client.post(f"/login/?next={next_url}", {"username": user.email, "password": PASSWORD})


def signed_in(client: Any) -> bool:
    return client.get("/settings/two-factor/").status_code == 200


def actions(tenant: Any, user: Any) -> list[str]:
    with schema_context(tenant.schema_name):
        return list(AuditEvent.objects.filter(actor_id=str(user.pk)).values_list("action", flat=True))


def test_enrolment_shows_a_qr_code_and_key_then_ten_recovery_codes_once(client_a, tenant_a):
    user = person(tenant_a)
    login(client_a, tenant_a, user)
    page = client_a.post("/settings/two-factor/", {"action": "start"}).content.decode()
    assert "<svg" in page and "Key:" in page
    totp = totp_of(tenant_a, user)
    assert totp.secret[:4] in page.replace(" ", "")
    wrong = client_a.post("/settings/two-factor/", {"action": "confirm", "code": "000000"})
    assert wrong.status_code == 400
    done = client_a.post("/settings/two-factor/", {"action": "confirm", "code": totp.now()})
    assert done.status_code == 200
    codes = re.findall(r"<li>([a-z0-9]{5}-[a-z0-9]{5})</li>", done.content.decode())
    assert len(codes) == 10 and len(set(codes)) == 10
    again = client_a.get("/settings/two-factor/").content.decode()
    assert not any(code in again for code in codes) and "10 recovery codes left" in again
    with schema_context(tenant_a.schema_name):
        stored = set(RecoveryCode.objects.values_list("code_hash", flat=True))
        assert len(stored) == 10 and not stored & set(codes)
        assert TwoFactor.objects.get(user=user).confirmed_at is not None
    assert "two_factor.enabled" in actions(tenant_a, user)


def test_an_enrolled_user_signs_in_with_a_code_after_the_password(client_a, tenant_a):
    user = person(tenant_a)
    totp, _ = enrol(tenant_a, user)
    response = password_step(client_a, user)
    assert response.status_code == 302 and response["Location"] == "/login/two-factor/"
    assert not signed_in(client_a)  # the password alone gives no session
    page = client_a.get("/login/two-factor/")
    assert page.status_code == 200 and b"recovery code" in page.content
    code = next_code(totp)
    response = client_a.post("/login/two-factor/", {"code": code})
    assert response.status_code == 302 and response["Location"] == "/contacts/"
    assert signed_in(client_a)
    assert "auth.sign_in" in actions(tenant_a, user)
    # The same code again (replayed by someone who saw it) is refused.
    other = client_a.__class__(HTTP_HOST=client_a.defaults["HTTP_HOST"])
    password_step(other, user)
    assert other.post("/login/two-factor/", {"code": code}).status_code == 400
    assert not signed_in(other)


def test_a_recovery_code_signs_in_once(client_a, tenant_a):
    user = person(tenant_a, "admin")
    _, codes = enrol(tenant_a, user)
    password_step(client_a, user)
    response = client_a.post("/login/two-factor/", {"code": codes[3].upper().replace("-", " ")})
    assert response.status_code == 302 and signed_in(client_a)
    assert "two_factor.recovery_code_used" in actions(tenant_a, user)
    client_a.post("/logout/")
    assert not signed_in(client_a)
    password_step(client_a, user)
    assert client_a.post("/login/two-factor/", {"code": codes[3]}).status_code == 400
    assert not signed_in(client_a)
    with schema_context(tenant_a.schema_name):
        assert two_factor.recovery_codes_left(user) == 9


def test_wrong_codes_are_throttled_per_user_even_with_the_right_code_after(client_a, tenant_a):
    user = person(tenant_a)
    totp, _ = enrol(tenant_a, user)
    password_step(client_a, user)
    for _ in range(5):
        assert client_a.post("/login/two-factor/", {"code": "123456"}).status_code == 400
    response = client_a.post("/login/two-factor/", {"code": next_code(totp)})
    assert response.status_code == 429 and b"Too many wrong codes" in response.content
    assert not signed_in(client_a)
    assert "two_factor.failed" in actions(tenant_a, user)


def test_the_second_step_needs_a_fresh_password_step(client_a, tenant_a):
    response = client_a.get("/login/two-factor/")
    assert response.status_code == 302 and response["Location"] == "/login/"
    user = person(tenant_a)
    totp, _ = enrol(tenant_a, user)
    password_step(client_a, user)
    session = client_a.session
    session["two_factor_pending"]["at"] = int(time.time()) - 3600
    session.save()
    assert client_a.post("/login/two-factor/", {"code": next_code(totp)}).status_code == 302
    assert not signed_in(client_a)


def test_owners_and_admins_enrol_at_their_next_sign_in_when_the_workspace_requires_it(client_a, tenant_a):
    owner = person(tenant_a, "owner")
    agent = person(tenant_a, "agent")
    login(client_a, tenant_a, owner)
    assert client_a.post("/settings/two-factor/", {"action": "policy", "required": "on"}).status_code == 302
    client_a.post("/logout/")
    # An agent is not asked.
    assert password_step(client_a, agent)["Location"] == "/contacts/"
    client_a.post("/logout/")
    # The owner is enrolled before getting a session.
    assert password_step(client_a, owner)["Location"] == "/login/two-factor/"
    page = client_a.get("/login/two-factor/").content.decode()
    assert "<svg" in page and "Set up" in page
    assert not signed_in(client_a)
    totp = totp_of(tenant_a, owner)
    assert client_a.post("/login/two-factor/", {"code": "000000"}).status_code == 400
    done = client_a.post("/login/two-factor/", {"code": totp.now()})
    assert done.status_code == 200 and len(re.findall(r"<li>", done.content.decode())) == 10
    assert signed_in(client_a)
    # Required: it cannot be turned off.
    response = client_a.post("/settings/two-factor/", {"action": "disable", "code": next_code(totp)})
    assert response.status_code == 409
    with schema_context(tenant_a.schema_name):
        assert two_factor.is_enrolled(owner)


def test_only_owners_and_admins_set_the_policy(client_a, tenant_a):
    login(client_a, tenant_a, person(tenant_a, "supervisor"))
    assert client_a.post("/settings/two-factor/", {"action": "policy", "required": "on"}).status_code == 403
    with schema_context(tenant_a.schema_name):
        assert not two_factor.security_settings().require_two_factor_for_admins


def test_turning_it_off_needs_a_code(client_a, tenant_a):
    user = person(tenant_a)
    totp, _ = enrol(tenant_a, user)
    login(client_a, tenant_a, user)
    assert client_a.post("/settings/two-factor/", {"action": "disable", "code": "999999"}).status_code == 400
    response = client_a.post("/settings/two-factor/", {"action": "disable", "code": next_code(totp)})
    assert response.status_code == 302
    with schema_context(tenant_a.schema_name):
        assert not TwoFactor.objects.filter(user=user).exists()
    assert "two_factor.disabled" in actions(tenant_a, user)
    assert password_step(client_a, user)["Location"] == "/contacts/"


def test_the_admin_sign_in_does_not_bypass_the_second_factor(client_a, tenant_a):
    user = person(tenant_a, "admin")
    enrol(tenant_a, user)
    response = client_a.post("/admin/login/?next=/admin/", {"username": user.email, "password": PASSWORD})
    assert response.status_code == 200 and b"/login/" in response.content
    assert client_a.get("/admin/").status_code == 302


def test_api_keys_are_not_affected(tenant_a):
    user = person(tenant_a, "admin")
    enrol(tenant_a, user)
    with schema_context(tenant_a.schema_name):
        two_factor.set_two_factor_requirement(required=True)
    key = issue_key(tenant_a, user=user, name="personal")
    assert api_client(tenant_a, key).get("/api/v1/tags/").status_code == 200
    assert (
        api_client(tenant_a, issue_key(tenant_a, role="admin", name="ci")).get("/api/v1/tags/").status_code
        == 200
    )


def test_the_policy_is_in_the_api_for_admins_only(tenant_a):
    admin = api_client(tenant_a, issue_key(tenant_a, role="admin", name="admin-key"))
    assert admin.get("/api/v1/settings/security/").json() == {"require_two_factor_for_admins": False}
    response = admin.patch(
        "/api/v1/settings/security/", {"require_two_factor_for_admins": True}, content_type="application/json"
    )
    assert response.status_code == 200 and response.json()["require_two_factor_for_admins"] is True
    bad = admin.patch(
        "/api/v1/settings/security/",
        {"require_two_factor_for_admins": "maybe"},
        content_type="application/json",
    )
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "validation_error"
    supervisor = api_client(tenant_a, issue_key(tenant_a, role="supervisor", name="sup-key"))
    assert supervisor.get("/api/v1/settings/security/").status_code == 403
    with schema_context(tenant_a.schema_name):
        assert two_factor.security_settings().require_two_factor_for_admins
