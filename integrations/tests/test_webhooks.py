from __future__ import annotations

import json
import time
from datetime import timedelta
from typing import Any

import dramatiq
import pytest
from django.test import TestCase
from django.utils import timezone
from django_tenants.utils import schema_context

from conftest import login, make_agent
from conversations import events
from conversations.models import Conversation, Message
from crm.services import create_contact
from integrations import services
from integrations.models import WebhookDelivery, WebhookEndpoint
from whatsapp.testing import broker, run_jobs

HOOK = "http://localhost/hooks/crm"


def subscribe(tenant: Any, receiver: Any, events_: list[str], url: str = HOOK) -> WebhookEndpoint:
    with schema_context(tenant.schema_name):
        endpoint, secret = services.create_endpoint(url=url, events=events_)
    receiver.secret = secret
    return endpoint


def run_one_delayed() -> None:
    """The next delayed job, now: what the broker does when its time comes (no sleeping)."""
    message = dramatiq.Message.decode(broker.queues["webhooks.DQ"].get_nowait())
    broker.queues["webhooks.DQ"].task_done()
    with TestCase.captureOnCommitCallbacks(execute=True):
        broker.get_actor(message.actor_name).fn(*message.args, **message.kwargs)


def delayed() -> list[dramatiq.Message]:
    queue = broker.queues.get("webhooks.DQ")
    return [dramatiq.Message.decode(data) for data in list(queue.queue)] if queue else []


def test_creating_an_endpoint_shows_its_secret_once_and_stores_it_encrypted(owner_client, receiver, tenant_a):
    response = owner_client.post(
        "/api/v1/webhooks/",
        {"url": HOOK, "events": ["message.created", "contact.created"], "description": "Zapier"},
        content_type="application/json",
    )
    assert response.status_code == 201, response.content
    created = response.json()
    assert created["secret"].startswith("whsec_")
    assert created["events"] == ["message.created", "contact.created"]
    detail = owner_client.get(f"/api/v1/webhooks/{created['id']}/")
    listed = owner_client.get("/api/v1/webhooks/")
    assert "secret" not in detail.json()
    assert created["secret"] not in listed.content.decode()
    assert created["secret"] not in owner_client.get("/settings/integrations/").content.decode()
    with schema_context(tenant_a.schema_name):
        stored = WebhookEndpoint.objects.get()
        assert created["secret"] not in stored.secret_encrypted


def test_a_new_contact_reaches_the_receiver_signed_with_the_event_envelope(receiver, tenant_a):
    subscribe(tenant_a, receiver, ["contact.created"])
    with schema_context(tenant_a.schema_name):
        with TestCase.captureOnCommitCallbacks(execute=True):
            contact = create_contact(phone="+14155551111", name="Ann")
        assert WebhookDelivery.objects.get().status == "pending"  # queued: the caller never waited for it
        assert receiver.received == []
        run_jobs()
        delivery = WebhookDelivery.objects.get()
    [request] = receiver.received
    assert receiver.verifies(request)
    body = request.json()
    assert set(body) == {"id", "event", "created_at", "tenant", "data"}
    assert (body["event"], body["data"]["id"], body["data"]["phone"]) == (
        "contact.created",
        contact.pk,
        "+14155551111",
    )
    assert request.headers["x-webhook-id"] == body["id"] == str(delivery.event_id)
    assert request.headers["x-webhook-event"] == "contact.created"
    assert abs(int(request.headers["x-webhook-timestamp"]) - time.time()) < 60
    assert request.headers["content-type"] == "application/json"
    assert (delivery.status, delivery.attempts, delivery.status_code) == ("succeeded", 1, 200)
    assert delivery.response_excerpt == '{"ok": true}' and delivery.duration_ms is not None


def test_a_tampered_body_does_not_verify(receiver, tenant_a):
    subscribe(tenant_a, receiver, ["contact.created"])
    with schema_context(tenant_a.schema_name):
        with TestCase.captureOnCommitCallbacks(execute=True):
            create_contact(phone="+14155551112", name="Ann")
        run_jobs()
    [request] = receiver.received
    forged = type(request)(request.headers, request.body.replace(b"Ann", b"Bob"))
    assert receiver.verifies(request) and not receiver.verifies(forged)
    assert services.verify(request.body, receiver.secret, request.headers["x-webhook-signature"])


def test_messages_and_resolutions_are_delivered_only_to_subscribers_of_them(receiver, tenant_a, owner_a):
    subscribe(tenant_a, receiver, ["message.created", "conversation.resolved"])
    with schema_context(tenant_a.schema_name):
        other, _ = services.create_endpoint(url="http://localhost/other", events=["contact.updated"])
        contact = create_contact(phone="+14155552222", name="Bea")
        conversation = Conversation.objects.create(contact=contact)
        with TestCase.captureOnCommitCallbacks(execute=True):
            message = Message.objects.create(
                conversation=conversation,
                direction="in",
                type="text",
                text="Hi <b>there</b>",
                status="received",
                timestamp=timezone.now(),
            )
            events.message_created(message)
        from conversations.services.workflow import set_conversation_status

        with TestCase.captureOnCommitCallbacks(execute=True):
            set_conversation_status(conversation=conversation, status="resolved", by=owner_a)
        run_jobs()
        assert not WebhookDelivery.objects.filter(endpoint=other).exists()
    kinds = [r.json()["event"] for r in receiver.received]
    assert kinds == ["message.created", "conversation.resolved"]
    first, second = (r.json()["data"] for r in receiver.received)
    assert (first["text"], first["contact"]["phone"]) == ("Hi <b>there</b>", "+14155552222")
    assert (second["id"], second["status"]) == (conversation.pk, "resolved")


def test_nothing_is_sent_for_a_change_that_was_rolled_back(receiver, tenant_a):
    subscribe(tenant_a, receiver, ["contact.created"])
    with schema_context(tenant_a.schema_name):
        with TestCase.captureOnCommitCallbacks(execute=False) as callbacks:
            create_contact(phone="+14155553333")
        assert callbacks  # only run on commit; a rollback drops them
        assert not WebhookDelivery.objects.exists()


def test_a_failing_receiver_is_retried_with_exponential_backoff_for_a_day_then_given_up(receiver, tenant_a):
    receiver.status = [500]
    subscribe(tenant_a, receiver, ["contact.created"])
    assert services.RETRY_DELAYS == (60, 240, 960, 3840, 15360, 61440)
    assert (
        services.retry_schedule()[-1]
        < timedelta(hours=24)
        <= services.retry_schedule()[-1] + timedelta(hours=2)
    )
    with schema_context(tenant_a.schema_name):
        with TestCase.captureOnCommitCallbacks(execute=True):
            create_contact(phone="+14155554444")
        run_jobs(include_delayed=False)
        delivery = WebhookDelivery.objects.get()
        for attempt, delay in enumerate(services.RETRY_DELAYS, start=1):
            delivery.refresh_from_db()
            assert (delivery.status, delivery.attempts, delivery.status_code) == ("retrying", attempt, 500)
            assert delivery.response_excerpt == "<b>down</b>"
            expected = timezone.now() + timedelta(seconds=delay)
            assert abs((delivery.next_retry_at - expected).total_seconds()) < 5
            [job] = delayed()
            assert abs(job.options["eta"] / 1000 - (time.time() + delay)) < 5
            run_one_delayed()
        delivery.refresh_from_db()
        assert (delivery.status, delivery.attempts, delivery.next_retry_at) == ("failed", 7, None)
        assert delayed() == []
        assert WebhookEndpoint.objects.get().failure_streak == 1
    assert len(receiver.received) == 7
    assert len({r.headers["x-webhook-id"] for r in receiver.received}) == 1


def test_a_retry_that_succeeds_ends_the_schedule(receiver, tenant_a):
    receiver.status = [503, 200]
    subscribe(tenant_a, receiver, ["contact.created"])
    with schema_context(tenant_a.schema_name):
        with TestCase.captureOnCommitCallbacks(execute=True):
            create_contact(phone="+14155554445")
        run_jobs()
        delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.attempts, delivery.status_code) == ("succeeded", 2, 200)
    assert delivery.next_retry_at is None and delayed() == []


def test_a_job_handed_out_twice_sends_once(receiver, tenant_a):
    subscribe(tenant_a, receiver, ["contact.created"])
    with schema_context(tenant_a.schema_name):
        with TestCase.captureOnCommitCallbacks(execute=True):
            create_contact(phone="+14155554446")
        delivery = WebhookDelivery.objects.get()
        assert services.attempt_delivery(delivery_id=delivery.pk, attempt=0) == "succeeded"
        assert services.attempt_delivery(delivery_id=delivery.pk, attempt=0) == "stale"
    assert len(receiver.received) == 1


def test_redelivery_sends_the_same_event_again_as_a_new_delivery(owner_client, receiver, tenant_a):
    endpoint = subscribe(tenant_a, receiver, ["contact.created"])
    with schema_context(tenant_a.schema_name):
        with TestCase.captureOnCommitCallbacks(execute=True):
            create_contact(phone="+14155555555")
        run_jobs()
        first = WebhookDelivery.objects.get()
    with TestCase.captureOnCommitCallbacks(execute=True):
        response = owner_client.post(f"/api/v1/webhooks/{endpoint.pk}/deliveries/{first.pk}/redeliver/")
    assert response.status_code == 202, response.content
    assert response.json()["redelivery_of"] == first.pk
    with schema_context(tenant_a.schema_name):
        run_jobs()
    one, two = receiver.received
    assert one.body == two.body and one.headers["x-webhook-id"] == two.headers["x-webhook-id"]
    assert receiver.verifies(two)
    log = owner_client.get(f"/api/v1/webhooks/{endpoint.pk}/deliveries/").json()
    rows = log.get("results", log)
    assert [(r["status"], r["status_code"], r["attempts"]) for r in rows] == [("succeeded", 200, 1)] * 2
    assert {"response_excerpt", "duration_ms", "next_retry_at", "event_id"} <= set(rows[0])


def test_the_delivery_page_redelivers_and_shows_the_log_escaped(owner_client, receiver, tenant_a):
    receiver.status = [418]
    endpoint = subscribe(tenant_a, receiver, ["contact.created"])
    with schema_context(tenant_a.schema_name):
        WebhookEndpoint.objects.filter(pk=endpoint.pk).update(description="<script>alert(1)</script>")
        with TestCase.captureOnCommitCallbacks(execute=True):
            create_contact(phone="+14155555556")
        run_jobs(include_delayed=False)
        delivery = WebhookDelivery.objects.get()
    page = owner_client.get(f"/settings/integrations/{endpoint.pk}/").content.decode()
    assert "418" in page and "&lt;b&gt;down&lt;/b&gt;" in page and "<b>down</b>" not in page
    listing = owner_client.get("/settings/integrations/").content.decode()
    assert "<script>alert(1)</script>" not in listing and "&lt;script&gt;" in listing
    WebhookDelivery.objects.filter(pk=delivery.pk).update(status="failed")
    with TestCase.captureOnCommitCallbacks(execute=True):
        response = owner_client.post(
            f"/settings/integrations/{endpoint.pk}/deliveries/{delivery.pk}/redeliver/"
        )
    assert response.status_code == 302
    with schema_context(tenant_a.schema_name):
        assert WebhookDelivery.objects.filter(redelivery_of=delivery).count() == 1


def test_a_private_address_is_refused_at_save_without_the_operator_setting(owner_client, settings, tenant_a):
    settings.OUTBOUND_ALLOW_PRIVATE_NETWORKS = False
    for url, code in [
        ("http://localhost/hook", "address_not_allowed"),
        ("http://169.254.169.254/latest/meta-data/", "address_not_allowed"),
        ("http://10.0.0.5/hook", "address_not_allowed"),
        ("http://example.com:6379/", "port_not_allowed"),
        ("ftp://example.com/", "scheme_not_allowed"),
        ("http://user:pw@example.com/", "credentials_in_url"),
    ]:
        response = owner_client.post(
            "/api/v1/webhooks/", {"url": url, "events": ["contact.created"]}, content_type="application/json"
        )
        assert response.status_code == 400, (url, response.content)
        assert response.json()["error"]["code"] == code
    with schema_context(tenant_a.schema_name):
        assert not WebhookEndpoint.objects.exists()


def test_a_private_address_is_refused_at_send_when_the_setting_is_off_again(receiver, settings, tenant_a):
    subscribe(tenant_a, receiver, ["contact.created"])
    settings.OUTBOUND_ALLOW_PRIVATE_NETWORKS = False
    with schema_context(tenant_a.schema_name):
        with TestCase.captureOnCommitCallbacks(execute=True):
            create_contact(phone="+14155556666")
        run_jobs()
        delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.attempts) == ("failed", 1)
    assert delivery.error.startswith("address_not_allowed")
    assert receiver.received == [] and delayed() == []


def test_bad_input_is_refused_with_a_stable_code(owner_client, receiver, tenant_a):
    for body, code in [
        ({"url": HOOK, "events": []}, "validation_error"),
        ({"url": HOOK, "events": ["contact.exploded"]}, "validation_error"),
        ({"url": "", "events": ["contact.created"]}, "validation_error"),
        ({"url": "not a url", "events": ["contact.created"]}, "scheme_not_allowed"),
    ]:
        response = owner_client.post("/api/v1/webhooks/", body, content_type="application/json")
        assert response.status_code == 400, (body, response.content)
        assert response.json()["error"]["code"] == code, (body, response.json())
    with schema_context(tenant_a.schema_name):
        assert not WebhookEndpoint.objects.exists()
        endpoint, _ = services.create_endpoint(url=HOOK, events=["contact.created"])
    response = owner_client.patch(
        f"/api/v1/webhooks/{endpoint.pk}/", {"events": ["nope"]}, content_type="application/json"
    )
    assert response.status_code == 400
    response = owner_client.patch(
        f"/api/v1/webhooks/{endpoint.pk}/", {"active": False}, content_type="application/json"
    )
    assert response.json()["active"] is False


def test_another_tenants_endpoint_is_not_found(owner_client, receiver, tenant_a, tenant_b, owner_b, client_b):
    endpoint = subscribe(tenant_b, receiver, ["contact.created"])
    with schema_context(tenant_b.schema_name):
        delivery = WebhookDelivery.objects.create(endpoint=endpoint, event="contact.created", body="{}")
    base = f"/api/v1/webhooks/{endpoint.pk}/"
    assert owner_client.get(base).status_code == 404
    assert owner_client.get(base + "deliveries/").status_code == 404
    assert owner_client.post(base + f"deliveries/{delivery.pk}/redeliver/").status_code == 404
    assert owner_client.delete(base).status_code == 404
    assert owner_client.get(f"/settings/integrations/{endpoint.pk}/").status_code == 404
    assert owner_client.get("/api/v1/webhooks/").json().get("results", []) == []
    with schema_context(tenant_b.schema_name):
        assert WebhookEndpoint.objects.filter(pk=endpoint.pk).exists()


@pytest.mark.parametrize("role", ["agent", "supervisor"])
def test_only_owners_and_admins_manage_webhooks(role, client_a, tenant_a, receiver):
    endpoint = subscribe(tenant_a, receiver, ["contact.created"])
    user = make_agent(tenant_a, email=f"{role}@alpha.test", role=role)
    client = login(client_a, tenant_a, user.user)
    assert client.get("/api/v1/webhooks/").status_code == 403
    assert (
        client.post(
            "/api/v1/webhooks/", {"url": HOOK, "events": ["contact.created"]}, content_type="application/json"
        ).status_code
        == 403
    )
    assert client.get(f"/api/v1/webhooks/{endpoint.pk}/deliveries/").status_code == 403
    assert client.delete(f"/api/v1/webhooks/{endpoint.pk}/").status_code == 403
    assert client.get("/settings/integrations/").status_code == 403
    admin = login(client_a, tenant_a, make_agent(tenant_a, email="admin@alpha.test", role="admin").user)
    assert admin.get("/api/v1/webhooks/").status_code == 200


def test_the_settings_page_adds_an_endpoint_and_shows_the_secret_once(owner_client, receiver, tenant_a):
    response = owner_client.post(
        "/settings/integrations/", {"url": HOOK, "events": ["message.created", "campaign.finished"]}
    )
    assert response.status_code == 200
    page = response.content.decode()
    assert "whsec_" in page
    again = owner_client.get("/settings/integrations/").content.decode()
    assert "whsec_" not in again and HOOK in again
    bad = owner_client.post("/settings/integrations/", {"url": HOOK, "events": []})
    assert bad.status_code == 400
    with schema_context(tenant_a.schema_name):
        endpoint = WebhookEndpoint.objects.get()
        assert endpoint.events == ["message.created", "campaign.finished"]
    deleted = owner_client.post(f"/settings/integrations/{endpoint.pk}/delete/")
    assert deleted.status_code == 302
    with schema_context(tenant_a.schema_name):
        assert not WebhookEndpoint.objects.exists()


def test_the_webhooks_api_is_in_the_openapi_schema(owner_client):
    schema = owner_client.get("/api/schema/", HTTP_ACCEPT="application/json")
    text = schema.content.decode()
    for path in ("/api/v1/webhooks/", "/api/v1/webhooks/{id}/deliveries/", "redeliver"):
        assert path in text, path
    assert json is not None


def test_an_inbound_whatsapp_message_reaches_the_integration_signed(
    public_client, channel_a, tenant_a, receiver
):
    from whatsapp.testing import deliver, fixture

    subscribe(tenant_a, receiver, ["message.created", "conversation.created"])
    deliver(public_client, fixture("text"))
    run_jobs()
    kinds = sorted(r.json()["event"] for r in receiver.received)
    assert kinds == ["conversation.created", "message.created"]
    assert all(receiver.verifies(r) for r in receiver.received)
    [message] = [r.json()["data"] for r in receiver.received if r.json()["event"] == "message.created"]
    assert message["direction"] == "in" and message["contact"]["phone"]
