"""POST /webhooks/waha/<id>/: the number's own key verifies the body before anything is read or stored;
a 200 means the event is stored in the tenant's schema, whatever Redis and the workers do."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import random

import pytest
from django.utils import timezone
from django_tenants.utils import schema_context

from conversations.models import Conversation, Message
from crm.models import Contact
from tenants.models import WahaRoute
from waha import webhook
from waha.events import sweep_waha_events
from waha.models import WahaEvent
from waha.testing import make_waha_number, post_signed_waha, sign_waha, webhook_path
from whatsapp.testing import queued_jobs, run_jobs

CUSTOMER = "4915112345678"


@pytest.fixture(autouse=True)
def _fresh_routes():
    webhook.forget_routes()
    yield
    webhook.forget_routes()


@pytest.fixture
def number_a(tenant_a):
    return make_waha_number(tenant_a, session="default")


@pytest.fixture
def number_b(tenant_b):
    return make_waha_number(
        tenant_b, session="default", display_phone="+15550002222", me_id="15550002222@c.us"
    )


def text_event(text: str = "Hello from WhatsApp Web", *, message_id: str = "false_4915112345678@c.us_AAA1"):
    return {
        "id": "evt_01",
        "timestamp": 1764500000000,
        "event": "message",
        "session": "default",
        "me": {"id": "15550001111@c.us", "pushName": "Alpha"},
        "payload": {
            "id": message_id,
            "timestamp": 1764500000,
            "from": f"{CUSTOMER}@c.us",
            "fromMe": False,
            "to": "15550001111@c.us",
            "body": text,
            "hasMedia": False,
            "ack": 1,
            "ackName": "SERVER",
            "replyTo": None,
            "_data": {"notifyName": "Greta"},
        },
        "engine": "GOWS",
    }


def stored_anything(*tenants) -> bool:
    for tenant in tenants:
        with schema_context(tenant.schema_name):
            if WahaEvent.objects.exists() or Message.objects.exists() or Contact.objects.exists():
                return True
            if Conversation.objects.exists():
                return True
    return bool(queued_jobs())


def test_a_signed_event_is_stored_in_the_tenants_schema_and_processed(public_client, tenant_a, number_a):
    response = post_signed_waha(public_client, number_a, text_event())
    assert response.status_code == 200, response.content
    with schema_context(tenant_a.schema_name):
        event = WahaEvent.objects.get()
        assert event.status == WahaEvent.Status.PENDING
        assert event.event == "message"
        assert event.webhook_id == number_a.webhook_id
    run_jobs()
    with schema_context(tenant_a.schema_name):
        assert WahaEvent.objects.get().status == WahaEvent.Status.PROCESSED
        message = Message.objects.get()
        assert message.text == "Hello from WhatsApp Web"
        assert message.conversation.contact.phone == f"+{CUSTOMER}"


def _wrong_key(number, other):
    return {"key": "not-the-key"}


def _other_tenants_key(number, other):
    return {"key": other.webhook_key}


def _missing_signature(number, other):
    return {"X-Webhook-Hmac": ""}


def _other_algorithm(number, other):
    return {"X-Webhook-Hmac-Algorithm": "sha256"}


def _missing_algorithm(number, other):
    return {"X-Webhook-Hmac-Algorithm": ""}


def _sha256_signature(number, other):
    body = json.dumps(text_event()).encode()
    digest = hmac.new(number.webhook_key.encode(), body, hashlib.sha256).hexdigest()
    return {"X-Webhook-Hmac": digest, "X-Webhook-Hmac-Algorithm": "sha256"}


def _non_ascii_signature(number, other):
    return {"X-Webhook-Hmac": "é" * 128}


@pytest.mark.parametrize(
    "forge",
    [
        _wrong_key,
        _other_tenants_key,
        _missing_signature,
        _other_algorithm,
        _missing_algorithm,
        _sha256_signature,
        _non_ascii_signature,
    ],
)
def test_a_body_the_numbers_own_key_did_not_sign_stores_nothing(
    public_client, tenant_a, tenant_b, number_a, number_b, forge
):
    options = forge(number_a, number_b)
    key = options.pop("key", None)
    response = post_signed_waha(public_client, number_a, text_event(), key=key, **options)
    assert response.status_code == 401
    assert response.json()["error"]["code"] in (
        "invalid_signature",
        "missing_signature",
        "unsupported_algorithm",
    )
    assert not stored_anything(tenant_a, tenant_b)


def test_an_unknown_webhook_id_is_404_and_stores_nothing(public_client, tenant_a, tenant_b, number_a):
    body = json.dumps(text_event()).encode()
    for path in (
        "/webhooks/waha/unknown-webhook-id/",
        "/webhooks/waha/x/",
        "/webhooks/waha/%00%00%00%00%00/",
    ):
        response = public_client.post(
            path, data=body, content_type="application/json", headers=sign_waha(body, number_a.webhook_key)
        )
        assert response.status_code == 404, path
    assert not stored_anything(tenant_a, tenant_b)


def test_number_as_key_cannot_post_into_tenant_bs_route(
    public_client, tenant_a, tenant_b, number_a, number_b
):
    """Signed correctly for A, posted to B's address: B's key decides, and refuses it."""
    body = json.dumps(text_event()).encode()
    response = public_client.post(
        webhook_path(number_b.webhook_id),
        data=body,
        content_type="application/json",
        headers=sign_waha(body, number_a.webhook_key),
    )
    assert response.status_code == 401
    assert not stored_anything(tenant_a, tenant_b)


def test_a_rotated_key_takes_effect_and_a_removed_route_is_refused(
    public_client, tenant_a, number_a, monkeypatch
):
    from core import crypto

    assert post_signed_waha(public_client, number_a, text_event()).status_code == 200  # cached now
    route = WahaRoute.objects.get(webhook_id=number_a.webhook_id)
    route.hmac_key_encrypted = crypto.encrypt("rotated-key")
    route.save()
    assert post_signed_waha(public_client, number_a, text_event()).status_code == 401
    assert post_signed_waha(public_client, number_a, text_event(), key="rotated-key").status_code == 200

    # Rotated by another process (no signal here): a failing signature re-reads the route first.
    monkeypatch.setattr(webhook, "RECHECK_SECONDS", 0.0)
    WahaRoute.objects.filter(pk=route.pk).update(hmac_key_encrypted=crypto.encrypt("third-key"))
    assert post_signed_waha(public_client, number_a, text_event(), key="third-key").status_code == 200

    route.delete()
    assert post_signed_waha(public_client, number_a, text_event(), key="third-key").status_code == 404


def test_an_unreadable_key_refuses_every_signature(public_client, tenant_a, number_a):
    WahaRoute.objects.filter(webhook_id=number_a.webhook_id).update(hmac_key_encrypted="garbage")
    assert post_signed_waha(public_client, number_a, text_event()).status_code == 401
    assert post_signed_waha(public_client, number_a, text_event(), key="").status_code == 401
    assert not stored_anything(tenant_a)


def test_events_are_stored_while_the_broker_is_down_and_the_sweeper_processes_them(
    public_client, tenant_a, number_a, monkeypatch
):
    from tenants.jobs import broker

    def broker_down(*args, **kwargs):
        raise ConnectionError("Redis is down")

    with monkeypatch.context() as patch:
        patch.setattr(broker, "enqueue", broker_down)
        response = post_signed_waha(public_client, number_a, text_event())
    assert response.status_code == 200
    assert queued_jobs() == []
    with schema_context(tenant_a.schema_name):
        assert WahaEvent.objects.get().status == WahaEvent.Status.PENDING
        sweep_waha_events.fn()
        assert queued_jobs() == []  # too fresh: its own job may still come
        WahaEvent.objects.update(received_at=timezone.now() - dt.timedelta(minutes=5))
    sweep_waha_events.fn()
    run_jobs()
    with schema_context(tenant_a.schema_name):
        assert WahaEvent.objects.get().status == WahaEvent.Status.PROCESSED
        assert Message.objects.count() == 1


def test_a_suspended_tenants_events_wait_for_its_restore(public_client, tenant_a, number_a):
    from tenants.models import Tenant

    Tenant.objects.filter(pk=tenant_a.pk).update(is_active=False)
    webhook.forget_routes()
    response = post_signed_waha(public_client, number_a, text_event())
    assert response.status_code == 200
    assert queued_jobs() == []
    with schema_context(tenant_a.schema_name):
        WahaEvent.objects.update(received_at=timezone.now() - dt.timedelta(minutes=5))
    sweep_waha_events.fn()
    assert queued_jobs() == []
    Tenant.objects.filter(pk=tenant_a.pk).update(is_active=True)
    sweep_waha_events.fn()
    run_jobs()
    with schema_context(tenant_a.schema_name):
        assert Message.objects.count() == 1


def test_a_body_over_the_limit_is_refused_unread(public_client, tenant_a, number_a, settings):
    settings.WAHA_WEBHOOK_MAX_BYTES = 1000
    event = text_event("x" * 2000)
    response = post_signed_waha(public_client, number_a, event)
    assert response.status_code == 413
    assert not stored_anything(tenant_a)


def test_only_post_is_accepted(public_client, number_a):
    assert public_client.get(webhook_path(number_a.webhook_id)).status_code == 405


def test_the_webhook_is_served_on_a_tenant_host_too(client_b, tenant_a, number_a):
    """The webhook id names the number, not the host: even posted on another tenant's host it lands in
    its own tenant."""
    response = post_signed_waha(client_b, number_a, text_event())
    assert response.status_code == 200
    run_jobs()
    with schema_context(tenant_a.schema_name):
        assert Message.objects.count() == 1


HOSTILE_BODIES = [
    b"",
    b"not json",
    b"[]",
    b"null",
    b'{"event": 5}',
    b'{"event": "message"}',
    b'{"event": "message", "payload": []}',
    b'{"event": "message", "payload": {"id": {"x": 1}, "from": ["a"], "body": {"b": 2}}}',
    b'{"event": "message", "session": "default", "payload": {"id": "false_1@c.us_A", "from": "1@c.us"}}',
    b'{"event": "message.ack", "payload": {"id": null, "ack": "READ", "ackName": 7}}',
    b'{"event": "message.revoked", "payload": {"revokedMessageId": 12}}',
    b'{"event": "message.edited", "payload": {"editedMessageId": true, "body": null}}',
    b'{"event": "message.reaction", "payload": {"reaction": "x"}}',
    b'{"event": "session.status", "payload": {"status": {"a": 1}}, "me": "x"}',
    b'{"event": "message", "session": "default", "payload": {"id": "false_4915112345678@c.us_\\u0000",'
    b' "from": "4915112345678@c.us", "body": "nul \\u0000 and lone \\ud800", "timestamp": 1e400}}',
    b"[" * 100_000 + b"]" * 100_000,
    bytes(range(256)),
    b'{"event": "message", "timestamp": "soon",'
    b' "payload": {"location": {"latitude": "NaN", "longitude": 1e999}}}',
]


@pytest.mark.parametrize("body", HOSTILE_BODIES)
def test_a_signed_hostile_body_never_causes_a_500(public_client, tenant_a, number_a, body):
    response = post_signed_waha(public_client, number_a, body)
    assert response.status_code == 200
    run_jobs()
    with schema_context(tenant_a.schema_name):
        event = WahaEvent.objects.get()
        assert event.status != WahaEvent.Status.PENDING
        assert bytes(event.body) == body


def test_random_signed_bodies_never_cause_a_500(public_client, tenant_a, number_a):
    rng = random.Random(19)
    base = json.dumps(text_event()).encode()
    for _ in range(25):
        body = bytearray(base)
        for _ in range(rng.randint(1, 8)):
            body[rng.randrange(len(body))] = rng.randrange(256)
        response = post_signed_waha(public_client, number_a, bytes(body))
        assert response.status_code == 200
    run_jobs()
    with schema_context(tenant_a.schema_name):
        assert not WahaEvent.objects.filter(status=WahaEvent.Status.PENDING).exists()


def test_the_scheduler_runs_the_sweeper_and_the_cleanup(settings):
    assert settings.PERIODIC_JOBS["waha_sweep_events"] == ("waha.events.sweep_waha_events", 30)
    assert settings.PERIODIC_JOBS["waha_cleanup_events"] == ("waha.events.cleanup_waha_events", 3600)


def test_processed_events_past_their_retention_are_deleted_and_failed_ones_kept(
    public_client, tenant_a, number_a
):
    from waha.events import cleanup_waha_events

    post_signed_waha(public_client, number_a, text_event())
    post_signed_waha(public_client, number_a, b"not json")
    run_jobs()
    with schema_context(tenant_a.schema_name):
        WahaEvent.objects.update(received_at=timezone.now() - dt.timedelta(days=400))
    cleanup_waha_events.fn()
    with schema_context(tenant_a.schema_name):
        assert list(WahaEvent.objects.values_list("status", flat=True)) == [WahaEvent.Status.FAILED]
        assert Message.objects.count() == 1


def test_a_post_to_a_cached_route_costs_one_insert(
    public_client, tenant_a, number_a, django_assert_max_num_queries
):
    post_signed_waha(public_client, number_a, text_event())
    with django_assert_max_num_queries(2):  # the tenant's search_path, and the INSERT
        response = post_signed_waha(public_client, number_a, text_event())
    assert response.status_code == 200
