from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone
from django_tenants.utils import schema_context

from conversations.models import Message
from tenants.models import WebhookEvent
from whatsapp import crypto, payloads
from whatsapp.testing import CUSTOMER, PNID_A, connect_number, fixture, post_webhook, queued_jobs, run_jobs


def test_the_handshake_echoes_the_challenge_with_the_right_verify_token(public_client, settings):
    response = public_client.get(
        "/webhooks/whatsapp/",
        {
            "hub.mode": "subscribe",
            "hub.verify_token": settings.WHATSAPP_VERIFY_TOKEN,
            "hub.challenge": "1158201444",
        },
    )
    assert response.status_code == 200
    assert response.content == b"1158201444"


@pytest.mark.parametrize("token", ["wrong", ""])
def test_the_handshake_refuses_a_wrong_verify_token(public_client, token):
    response = public_client.get(
        "/webhooks/whatsapp/", {"hub.mode": "subscribe", "hub.verify_token": token, "hub.challenge": "1"}
    )
    assert response.status_code == 403
    assert b"1" not in response.content.split(b'"')[-1]


def _signed_variants(body: bytes, secret: str) -> dict[str, dict[str, str]]:
    good = payloads.sign(body, secret)
    return {
        "missing": {},
        "empty": {"X-Hub-Signature-256": ""},
        "no sha256= prefix": {"X-Hub-Signature-256": good.removeprefix("sha256=")},
        "sha1 scheme": {"X-Hub-Signature-256": "sha1=" + good.removeprefix("sha256=")[:40]},
        "wrong digest": {"X-Hub-Signature-256": "sha256=" + "0" * 64},
        "another secret": {"X-Hub-Signature-256": payloads.sign(body, "not-the-app-secret")},
        "truncated digest": {"X-Hub-Signature-256": good[:-2]},
    }


@pytest.mark.parametrize(
    "variant",
    [
        "missing",
        "empty",
        "no sha256= prefix",
        "sha1 scheme",
        "wrong digest",
        "another secret",
        "truncated digest",
    ],
)
def test_every_signature_failure_is_refused_and_nothing_is_stored(public_client, settings, variant):
    body = payloads.encode(fixture("text"))
    headers = _signed_variants(body, settings.WHATSAPP_APP_SECRET)[variant]
    response = public_client.post(
        "/webhooks/whatsapp/", data=body, content_type="application/json", headers=headers
    )
    assert response.status_code == 403
    assert WebhookEvent.objects.count() == 0
    assert queued_jobs() == []


def test_a_body_changed_after_signing_is_refused(public_client, settings):
    body = payloads.encode(fixture("text"))
    signature = payloads.sign(body, settings.WHATSAPP_APP_SECRET)
    tampered = body.replace(b"another color", b"another price")
    response = public_client.post(
        "/webhooks/whatsapp/",
        data=tampered,
        content_type="application/json",
        headers={"X-Hub-Signature-256": signature},
    )
    assert response.status_code == 403
    assert WebhookEvent.objects.count() == 0


def test_a_body_over_3_mb_is_refused_with_413(public_client):
    body = b'{"object":"whatsapp_business_account","pad":"' + b"x" * (3 * 1024 * 1024) + b'"}'
    response = post_webhook(public_client, body)
    assert response.status_code == 413
    assert WebhookEvent.objects.count() == 0


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"{not json", "invalid_json"),
        (b'{"object":"page","entry":[]}', "not_whatsapp"),
        (b"[1,2]", "not_whatsapp"),
    ],
)
def test_invalid_json_or_another_object_is_a_400(public_client, body, code):
    response = post_webhook(public_client, body)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == code
    assert WebhookEvent.objects.count() == 0


def test_a_valid_event_is_stored_before_the_200_and_processed_by_a_job(public_client, channel_a, tenant_a):
    response = post_webhook(public_client, fixture("text"))
    assert response.status_code == 200
    event = WebhookEvent.objects.get()
    assert event.status == WebhookEvent.Status.PENDING
    assert event.phone_number_ids == [PNID_A]
    assert queued_jobs() == ["process_webhook_events"]
    run_jobs()
    event.refresh_from_db()
    assert event.status == WebhookEvent.Status.PROCESSED
    assert event.tenant == tenant_a
    with schema_context(tenant_a.schema_name):
        assert Message.objects.get().text == "Does it come in another color?"


def test_an_unknown_number_gets_200_and_the_event_is_kept_as_unrouted(public_client, channel_a):
    body = payloads.text_event(phone_number_id="999999999999", wa_id=CUSTOMER, text="hello?")
    response = post_webhook(public_client, body)
    assert response.status_code == 200
    run_jobs()
    event = WebhookEvent.objects.get()
    assert event.status == WebhookEvent.Status.UNROUTED
    assert "999999999999" in event.error
    assert bytes(event.body) == payloads.encode(body)


def test_events_are_accepted_while_the_broker_is_down_and_the_sweeper_processes_them(
    public_client, channel_a, tenant_a, monkeypatch, settings
):
    from tenants.jobs import broker
    from whatsapp.actors import sweep_webhook_events

    def broker_down(*args, **kwargs):
        raise ConnectionError("Redis is down")

    with monkeypatch.context() as patch:
        patch.setattr(broker, "enqueue", broker_down)
        response = post_webhook(public_client, fixture("text"))
    assert response.status_code == 200
    assert queued_jobs() == []
    WebhookEvent.objects.update(received_at=timezone.now() - dt.timedelta(minutes=5))
    sweep_webhook_events.fn()
    run_jobs()
    assert WebhookEvent.objects.get().status == WebhookEvent.Status.PROCESSED
    with schema_context(tenant_a.schema_name):
        assert Message.objects.count() == 1


def test_a_number_with_its_own_app_secret_is_verified_with_it(public_client, tenant_a, sandbox):
    connect_number(sandbox, tenant_a, PNID_A, "1", "t", app_secret="override-secret")
    response = post_webhook(public_client, fixture("text"), secret="override-secret")
    assert response.status_code == 200
    run_jobs()
    with schema_context(tenant_a.schema_name):
        assert Message.objects.count() == 1


def test_replaying_an_event_from_the_platform_admin_duplicates_nothing(
    public_client, channel_a, tenant_a, django_capture_on_commit_callbacks
):
    from django.contrib.auth import get_user_model

    post_webhook(public_client, fixture("text"))
    run_jobs()
    admin = get_user_model().objects.create_superuser("root", "root@example.test", "Sturdy-Pass-42")
    public_client.force_login(admin)
    event = WebhookEvent.objects.get()
    with django_capture_on_commit_callbacks(execute=True):
        response = public_client.post(
            "/admin/tenants/webhookevent/", {"action": "replay", "_selected_action": [event.pk]}
        )
    assert response.status_code == 302
    run_jobs()
    event.refresh_from_db()
    assert event.status == WebhookEvent.Status.PROCESSED
    assert event.attempts == 2
    with schema_context(tenant_a.schema_name):
        assert Message.objects.count() == 1


def test_a_number_added_in_the_tenant_admin_is_routed_and_its_token_never_shown(
    client_a, tenant_a, owner_a, sandbox
):
    from conftest import login
    from conversations.models import Channel
    from tenants.models import NumberRoute

    sandbox.add_number("106540352242999", waba_id="102290129340398", tokens=["EAAG-secret-token"])
    login(client_a, tenant_a, owner_a)
    response = client_a.post(
        "/admin/conversations/channel/add/",
        {
            "name": "Support",
            "phone_number_id": "106540352242999",
            "waba_id": "102290129340398",
            "display_phone": "+15550783882",
            "throughput_cap": 80,
            "status": "active",
            "access_token": "EAAG-secret-token",
        },
    )
    assert response.status_code == 302, response.content[:2000]
    assert NumberRoute.objects.get(phone_number_id="106540352242999").tenant == tenant_a
    with schema_context(tenant_a.schema_name):
        channel = Channel.objects.get(phone_number_id="106540352242999")
        assert crypto.decrypt(channel.access_token_encrypted) == "EAAG-secret-token"
        assert "EAAG-secret-token" not in channel.access_token_encrypted
    page = client_a.get(f"/admin/conversations/channel/{channel.pk}/change/")
    assert page.status_code == 200
    assert b"EAAG-secret-token" not in page.content
