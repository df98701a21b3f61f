"""Settings → WhatsApp numbers: who may use it, the manual connection (Meta verifies the token first),
Embedded Signup's code exchange against the sandbox (subscribed_apps, register, templates), each number's
health and actions, and the owners' e-mails when a number needs re-authorisation or its quality drops.
Meta is the sandbox throughout."""

from __future__ import annotations

from typing import Any

import pytest
from django.core import mail
from django_tenants.utils import schema_context

from conftest import login, make_agent
from conversations.models import Channel
from core.models import AuditEvent
from tenants.models import NumberRoute
from whatsapp import crypto
from whatsapp.models import BusinessAccount, MessageTemplate, NumberHealth
from whatsapp.sandbox import DEMO_TEMPLATES
from whatsapp.services import set_channel_status
from whatsapp.testing import PNID_A, PNID_B, WABA_A, WABA_B, post_webhook, run_jobs

PAGE = "/settings/whatsapp/"
CONNECT = "/settings/whatsapp/connect/"
SIGNUP = "/settings/whatsapp/embedded-signup/"
NEW_PNID = "306540352242922"
NEW_WABA = "302290129340398"


@pytest.fixture
def admin_a(tenant_a: Any, client_a: Any) -> Any:
    return login(client_a, tenant_a, make_agent(tenant_a, email="admin@alpha.test", role="admin").user)


@pytest.fixture
def owner_client(tenant_a: Any, client_a: Any, owner_a: Any) -> Any:
    return login(client_a, tenant_a, owner_a)


@pytest.fixture
def signup_on(settings: Any) -> None:
    settings.META_APP_ID = "1234567890"
    settings.META_EMBEDDED_SIGNUP_CONFIG_ID = "987654321"


def _connect(
    client: Any, pnid: str = NEW_PNID, waba: str = NEW_WABA, token: str = "tok-new", **extra: Any
) -> Any:
    return client.post(
        CONNECT, {"phone_number_id": pnid, "waba_id": waba, "access_token": token, **extra}, follow=False
    )


def _nothing_stored(tenant: Any, pnid: str) -> bool:
    with schema_context(tenant.schema_name):
        channel = Channel.objects.filter(phone_number_id=pnid).exists()
    return not channel and not NumberRoute.objects.filter(phone_number_id=pnid).exists()


# -- who may -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["agent", "supervisor"])
def test_agents_and_supervisors_get_403_on_every_numbers_url(tenant_a, client_a, channel_a, role):
    login(client_a, tenant_a, make_agent(tenant_a, email=f"{role}@alpha.test", role=role).user)

    assert client_a.get(PAGE).status_code == 403
    assert _connect(client_a).status_code == 403
    assert client_a.post(SIGNUP, {"code": "x", "phone_number_id": "1", "waba_id": "2"}).status_code == 403
    assert client_a.post(f"/settings/whatsapp/{channel_a.pk}/disable/").status_code == 403
    with schema_context(tenant_a.schema_name):
        assert Channel.objects.get(pk=channel_a.pk).is_active


def test_an_anonymous_visitor_is_sent_to_sign_in(client_a):
    response = client_a.get(PAGE)
    assert response.status_code == 302 and "/login/" in response["Location"]


def test_an_admin_sees_the_numbers_the_webhook_url_and_the_verify_token(admin_a, channel_a, settings):
    settings.WHATSAPP_VERIFY_TOKEN = "verify-me-123"
    response = admin_a.get(PAGE)
    assert response.status_code == 200
    body = response.content.decode()
    assert "+15550783881" in body and PNID_A in body
    assert "http://localhost/webhooks/whatsapp/" in body or "/webhooks/whatsapp/" in body
    assert "verify-me-123" in body
    assert 'href="/settings/whatsapp/"' in body  # the settings nav links the page


def test_another_tenants_number_is_404_for_every_action(admin_a, channel_b):
    for action in ("refresh", "disable", "test-event", "app-secret"):
        assert admin_a.post(f"/settings/whatsapp/{channel_b.pk}/{action}/").status_code == 404
    assert admin_a.get(f"{PAGE}?reconnect={channel_b.pk}").status_code == 404


# -- Embedded Signup on the page -----------------------------------------------------------------------


def test_without_an_app_id_the_signup_button_is_hidden_with_a_reason(admin_a, settings):
    settings.META_APP_ID = ""
    body = admin_a.get(PAGE).content.decode()
    assert "embedded-signup-off" in body and "META_APP_ID" in body
    assert "data-signup-start" not in body and "embedded-signup.js" not in body


def test_the_page_renders_the_sdk_bootstrap_with_the_config_id(admin_a, signup_on):
    response = admin_a.get(PAGE)
    body = response.content.decode()
    assert 'data-config-id="987654321"' in body and 'data-app-id="1234567890"' in body
    assert 'data-sdk-url="https://connect.facebook.net/en_US/sdk.js"' in body
    assert "js/embedded-signup.js" in body
    csp = response["Content-Security-Policy"]
    assert "https://connect.facebook.net" in csp and "frame-src" in csp
    # Only this page lets Meta's SDK in.
    assert "connect.facebook.net" not in admin_a.get("/settings/team/")["Content-Security-Policy"]


def test_the_code_exchange_subscribes_registers_connects_and_syncs_templates(
    admin_a, tenant_a, sandbox, signup_on
):
    sandbox.add_signup_code("code-abc", phone_number_id=NEW_PNID, waba_id=NEW_WABA, token="biz-token")
    sandbox.set_templates(NEW_WABA, DEMO_TEMPLATES)

    response = admin_a.post(SIGNUP, {"code": "code-abc", "phone_number_id": NEW_PNID, "waba_id": NEW_WABA})

    assert response.status_code == 200, response.content
    data = response.json()
    assert data["ok"] and data["templates"] == 2
    assert NEW_WABA in sandbox.state.subscribed_apps
    assert len(sandbox.state.registered[NEW_PNID]) == 6
    with schema_context(tenant_a.schema_name):
        channel = Channel.objects.get(phone_number_id=NEW_PNID)
        assert crypto.decrypt(channel.access_token_encrypted) == "biz-token"
        assert channel.is_active and channel.templates_synced_at is not None
        assert MessageTemplate.objects.filter(waba_id=NEW_WABA).count() == 2
        health = NumberHealth.objects.get(channel=channel)
        assert (health.quality_rating, health.throughput, health.name_status) == (
            "GREEN",
            "STANDARD",
            "APPROVED",
        )
        assert crypto.decrypt(health.two_step_pin_encrypted) == sandbox.state.registered[NEW_PNID]
        assert BusinessAccount.objects.get(waba_id=NEW_WABA).messaging_limit == "TIER_2K"
        assert AuditEvent.objects.filter(action="number.connected", target_id=str(channel.pk)).exists()
    assert NumberRoute.objects.get(phone_number_id=NEW_PNID).tenant_id == tenant_a.pk

    # A code is single-use, as Meta's.
    again = admin_a.post(SIGNUP, {"code": "code-abc", "phone_number_id": NEW_PNID, "waba_id": NEW_WABA})
    assert again.status_code == 422 and again.json()["error"]["code"] == "code_invalid"


@pytest.mark.parametrize(
    ("edge", "code", "expected"),
    [
        ("access_token", 100, "code_invalid"),
        ("subscribed_apps", 200, "subscription_failed"),
        ("register", 133005, "registration_failed"),
    ],
)
def test_a_signup_step_meta_refuses_is_a_clear_error_and_stores_nothing(
    admin_a, tenant_a, sandbox, signup_on, edge, code, expected
):
    sandbox.add_signup_code("code-x", phone_number_id=NEW_PNID, waba_id=NEW_WABA, token="biz-token")
    sandbox.fail_management(edge, code)

    response = admin_a.post(SIGNUP, {"code": "code-x", "phone_number_id": NEW_PNID, "waba_id": NEW_WABA})

    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == expected and "Meta" in error["message"]
    assert _nothing_stored(tenant_a, NEW_PNID)


def test_a_wrong_app_secret_or_an_unknown_code_is_refused(admin_a, tenant_a, sandbox, signup_on):
    response = admin_a.post(
        SIGNUP, {"code": "never-issued", "phone_number_id": NEW_PNID, "waba_id": NEW_WABA}
    )
    assert response.status_code == 422 and response.json()["error"]["code"] == "code_invalid"
    bad = admin_a.post(SIGNUP, {"code": "", "phone_number_id": "", "waba_id": ""})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_request"
    assert _nothing_stored(tenant_a, NEW_PNID)


def test_the_signup_endpoint_is_off_without_an_app_id(admin_a, sandbox, settings):
    settings.META_APP_ID = ""
    response = admin_a.post(SIGNUP, {"code": "c", "phone_number_id": NEW_PNID, "waba_id": NEW_WABA})
    assert response.status_code == 404 and response.json()["error"]["code"] == "signup_not_configured"


def test_the_signup_cannot_take_another_tenants_number(admin_a, tenant_a, channel_b, sandbox, signup_on):
    sandbox.add_signup_code("code-b", phone_number_id=PNID_B, waba_id=WABA_B, token="token-beta")

    response = admin_a.post(SIGNUP, {"code": "code-b", "phone_number_id": PNID_B, "waba_id": WABA_B})

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "number_taken"
    assert "beta" not in response.content.decode().lower()
    assert NumberRoute.objects.get(phone_number_id=PNID_B).tenant.slug == "beta"


# -- manual connection ---------------------------------------------------------------------------------


def test_a_manual_connection_is_verified_then_stored_with_its_details_and_templates(
    admin_a, tenant_a, sandbox
):
    sandbox.add_number(NEW_PNID, waba_id=NEW_WABA, tokens=["tok-new"], display_phone="+1 555-000-1234")
    sandbox.set_templates(NEW_WABA, DEMO_TEMPLATES)

    response = _connect(admin_a, name="Front desk")

    assert response.status_code == 302
    with schema_context(tenant_a.schema_name):
        channel = Channel.objects.get(phone_number_id=NEW_PNID)
        assert channel.name == "Front desk" and channel.is_active
        assert NumberHealth.objects.get(channel=channel).quality_rating == "GREEN"
        assert MessageTemplate.objects.filter(waba_id=NEW_WABA).count() == 2
    page = admin_a.get(response["Location"]).content.decode()
    assert "Connected" in page and "2 templates synced" in page and "Front desk" in page
    assert "TIER_2K" in page  # the account's messaging limit


@pytest.mark.parametrize(
    ("token", "code", "status"),
    [("expired", "token_invalid", 422), ("someone-elses-token", "number_not_verified", 422)],
)
def test_a_wrong_token_is_refused_inline_with_its_code(admin_a, tenant_a, sandbox, token, code, status):
    sandbox.add_number(NEW_PNID, waba_id=NEW_WABA, tokens=["tok-new"])

    response = _connect(admin_a, token=token)

    assert response.status_code == status
    assert f"[{code}]" in response.content.decode()
    assert _nothing_stored(tenant_a, NEW_PNID)


def test_a_number_not_in_that_account_is_refused(admin_a, tenant_a, sandbox):
    sandbox.add_number(NEW_PNID, waba_id=NEW_WABA, tokens=["tok-new"])
    sandbox.add_number("406540352242922", waba_id="402290129340398", tokens=["tok-new"])

    response = _connect(admin_a, waba="402290129340398")

    assert response.status_code == 422 and "[number_not_verified]" in response.content.decode()
    assert _nothing_stored(tenant_a, NEW_PNID)


def test_ids_that_are_not_digits_are_refused_before_meta_is_asked(admin_a, tenant_a, sandbox):
    response = _connect(admin_a, pnid="../../me", waba="1 OR 1")
    assert response.status_code == 400
    assert "digits only" in response.content.decode()


def test_another_tenants_number_is_refused_without_naming_the_tenant(admin_a, tenant_a, channel_b, sandbox):
    # With a token that proves the number: it is taken, and nothing says by whom.
    response = _connect(admin_a, pnid=PNID_B, waba=WABA_B, token="token-beta")
    body = response.content.decode()
    assert response.status_code == 409 and "[number_taken]" in body
    assert "Beta GmbH" not in body and "beta.localhost" not in body
    # Without one: not even that it is connected somewhere.
    response = _connect(admin_a, pnid=PNID_B, waba=WABA_B, token="guess")
    assert response.status_code == 422 and "[number_not_verified]" in response.content.decode()
    assert "another workspace" not in response.content.decode()
    with schema_context(tenant_a.schema_name):
        assert not Channel.objects.filter(phone_number_id=PNID_B).exists()
    assert NumberRoute.objects.get(phone_number_id=PNID_B).tenant.slug == "beta"


def test_a_number_already_connected_here_needs_reconnect_which_swaps_the_token(
    admin_a, tenant_a, channel_a, sandbox
):
    response = _connect(admin_a, pnid=PNID_A, waba=WABA_A, token="token-alpha")
    assert response.status_code == 409 and "[already_connected]" in response.content.decode()

    with schema_context(tenant_a.schema_name):
        set_channel_status(channel=channel_a, status=Channel.Status.NEEDS_REAUTH, reason="190: expired")
    form = admin_a.get(f"{PAGE}?reconnect={channel_a.pk}").content.decode()
    assert f'value="{PNID_A}"' in form and "Verify and reconnect" in form
    sandbox.add_number(PNID_A, waba_id=WABA_A, tokens=["token-alpha-2"])

    response = _connect(admin_a, pnid=PNID_A, waba=WABA_A, token="token-alpha-2", reconnect=channel_a.pk)

    assert response.status_code == 302
    with schema_context(tenant_a.schema_name):
        channel = Channel.objects.get(pk=channel_a.pk)
        assert channel.is_active and crypto.decrypt(channel.access_token_encrypted) == "token-alpha-2"
        assert AuditEvent.objects.filter(action="number.reconnected", target_id=str(channel.pk)).exists()


def test_hostile_names_from_staff_and_meta_are_escaped(admin_a, tenant_a, sandbox):
    hostile = '<script>alert("x")</script>'
    sandbox.add_number(NEW_PNID, waba_id=NEW_WABA, tokens=["tok-new"], verified_name=hostile)
    assert _connect(admin_a, name=hostile).status_code == 302
    with schema_context(tenant_a.schema_name):
        Channel.objects.filter(phone_number_id=NEW_PNID).update(status_reason=hostile)

    body = admin_a.get(PAGE).content.decode()

    assert hostile not in body
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in body


# -- per number ------------------------------------------------------------------------------------------


def test_refresh_reads_quality_and_the_accounts_limit(admin_a, tenant_a, channel_a, sandbox):
    sandbox.set_number(PNID_A, quality_rating="YELLOW", messaging_limit="TIER_10K")

    response = admin_a.post(f"/settings/whatsapp/{channel_a.pk}/refresh/", follow=True)

    assert "quality YELLOW" in response.content.decode()
    with schema_context(tenant_a.schema_name):
        assert NumberHealth.objects.get(channel=channel_a).quality_rating == "YELLOW"
        assert BusinessAccount.objects.get(waba_id=WABA_A).messaging_limit == "TIER_10K"


def test_a_refused_token_on_refresh_marks_the_number_and_mails_the_owner_once(
    admin_a, tenant_a, channel_a, sandbox, django_capture_on_commit_callbacks
):
    with schema_context(tenant_a.schema_name):
        Channel.objects.filter(pk=channel_a.pk).update(access_token_encrypted=crypto.encrypt("expired"))
    with django_capture_on_commit_callbacks(execute=True):
        first = admin_a.post(f"/settings/whatsapp/{channel_a.pk}/refresh/", follow=True)
        admin_a.post(f"/settings/whatsapp/{channel_a.pk}/refresh/")

    assert "[token_invalid]" in first.content.decode()
    assert "needs re-authorisation" in first.content.decode()
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["owner@alpha.test"]
    assert "needs re-authorisation" in mail.outbox[0].subject


def test_the_delivery_reauth_transition_mails_owners_once(
    tenant_a, channel_a, django_capture_on_commit_callbacks
):
    with schema_context(tenant_a.schema_name), django_capture_on_commit_callbacks(execute=True):
        for _ in range(3):  # three sends failing with 190
            set_channel_status(channel=channel_a, status=Channel.Status.NEEDS_REAUTH, reason="190: expired")
    assert [m.to for m in mail.outbox] == [["owner@alpha.test"]]
    assert "/settings/whatsapp/" in mail.outbox[0].body


def _quality_event(event: str, display: str = "15550783881") -> dict[str, Any]:
    return {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": WABA_A,
                "time": 1751247548,
                "changes": [
                    {
                        "field": "phone_number_quality_update",
                        "value": {
                            "display_phone_number": display,
                            "event": event,
                            "current_limit": "TIER_1K",
                        },
                    }
                ],
            }
        ],
    }


def test_quality_webhooks_mail_the_owners_once_per_drop(public_client, tenant_a, channel_a):
    for event in ("FLAGGED", "FLAGGED", "DOWNGRADE", "UNFLAGGED", "FLAGGED"):
        assert post_webhook(public_client, _quality_event(event)).status_code == 200
        run_jobs()

    # FLAGGED (mail), FLAGGED again and DOWNGRADE (no worse: no mail), UNFLAGGED (recovered), FLAGGED (mail).
    assert len(mail.outbox) == 2
    assert all("flagged" in m.body for m in mail.outbox)
    with schema_context(tenant_a.schema_name):
        health = NumberHealth.objects.get(channel=channel_a)
        assert (health.quality_event, health.quality_rating) == ("FLAGGED", "RED")
        assert BusinessAccount.objects.get(waba_id=WABA_A).messaging_limit == "TIER_1K"


def test_disable_stops_the_number_and_is_audited(admin_a, tenant_a, channel_a):
    response = admin_a.post(f"/settings/whatsapp/{channel_a.pk}/disable/", follow=True)
    assert "is disabled" in response.content.decode()
    with schema_context(tenant_a.schema_name):
        channel = Channel.objects.get(pk=channel_a.pk)
        assert channel.status == Channel.Status.DISABLED
        assert AuditEvent.objects.filter(action="number.disabled", target_id=str(channel.pk)).exists()


def test_only_the_owner_sets_a_numbers_app_secret(admin_a, tenant_a, channel_a, owner_a, client_a):
    assert "Own app secret" not in admin_a.get(PAGE).content.decode()
    assert (
        admin_a.post(f"/settings/whatsapp/{channel_a.pk}/app-secret/", {"app_secret": "s3"}).status_code
        == 403
    )

    login(client_a, tenant_a, owner_a)
    assert "Own app secret" in client_a.get(PAGE).content.decode()
    client_a.post(f"/settings/whatsapp/{channel_a.pk}/app-secret/", {"app_secret": "own-secret"})

    route = NumberRoute.objects.get(phone_number_id=PNID_A)
    assert crypto.decrypt(route.app_secret_encrypted) == "own-secret"
    with schema_context(tenant_a.schema_name):
        event = AuditEvent.objects.get(action="number.app_secret_changed")
        assert "own-secret" not in str(event.details)


def test_an_unverified_number_gets_no_app_secret(tenant_a, client_a, owner_a, channel_a):
    NumberRoute.objects.filter(phone_number_id=PNID_A).update(verified_at=None)
    login(client_a, tenant_a, owner_a)
    response = client_a.post(
        f"/settings/whatsapp/{channel_a.pk}/app-secret/", {"app_secret": "x"}, follow=True
    )
    assert "[number_not_verified]" in response.content.decode()
    assert NumberRoute.objects.get(phone_number_id=PNID_A).app_secret_encrypted == ""


def test_send_test_event_asks_the_sandbox_for_a_signed_webhook(admin_a, channel_a, sandbox, monkeypatch):
    from whatsapp.services import numbers

    monkeypatch.setattr(numbers, "TEST_EVENT_WAIT_SECONDS", 0)
    response = admin_a.post(f"/settings/whatsapp/{channel_a.pk}/test-event/", follow=True)

    # No webhook URL configured in this sandbox: the body waits in its outbox, signed for the app.
    assert "no webhook URL" in response.content.decode()
    (body,) = sandbox.take_outbox()
    assert PNID_A.encode() in body


def test_in_production_the_check_reports_the_latest_webhook(admin_a, public_client, channel_a, settings):
    settings.WHATSAPP_SANDBOX_TEST_EVENTS = False
    response = admin_a.post(f"/settings/whatsapp/{channel_a.pk}/test-event/", follow=True)
    assert "no webhook for this number in the last 7 days" in response.content.decode()

    ping = {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": WABA_A,
                "changes": [
                    {
                        "field": "messages",
                        "value": {"messaging_product": "whatsapp", "metadata": {"phone_number_id": PNID_A}},
                    }
                ],
            }
        ],
    }
    assert post_webhook(public_client, ping).status_code == 200
    response = admin_a.post(f"/settings/whatsapp/{channel_a.pk}/test-event/", follow=True)
    assert "The latest webhook for this number arrived" in response.content.decode()


def test_the_page_costs_the_same_queries_for_one_number_or_five(admin_a, tenant_a, channel_a, sandbox):
    from django.db import connection as db
    from django.test.utils import CaptureQueriesContext

    def count() -> int:
        admin_a.get(PAGE)  # flash messages consumed, session settled
        with CaptureQueriesContext(db) as captured:
            assert admin_a.get(PAGE).status_code == 200
        return len(captured.captured_queries)

    one = count()
    for index in range(4):
        pnid, waba = f"7065403522429{index:02d}", f"70229012934{index:04d}"
        sandbox.add_number(pnid, waba_id=waba, tokens=["t"])
        _connect(admin_a, pnid=pnid, waba=waba, token="t")
    assert count() == one
