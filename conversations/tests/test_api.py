"""API v1: conversations and messages (the WhatsApp channel's endpoints)."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone
from django_tenants.utils import schema_context

from conftest import login
from conversations.models import Conversation, Message
from crm.models import Contact
from whatsapp.testing import WABA_A, queued_jobs, run_jobs


def items(response):
    body = response.json()
    return body["results"] if isinstance(body, dict) else body


@pytest.fixture(autouse=True)
def _forget_idempotency_keys(settings):
    """Records live in Redis, outside the test's rolled-back transaction."""
    import redis

    client = redis.Redis.from_url(settings.REDIS_URL)
    for key in client.scan_iter("*idem:*"):
        client.delete(key)


@pytest.fixture
def api_a(client_a, tenant_a, owner_a):
    return login(client_a, tenant_a, owner_a)


def _conversation(tenant, channel, phone, *, inbound_ago=dt.timedelta(minutes=5)):
    with schema_context(tenant.schema_name):
        contact = Contact.objects.create(
            name=f"C {phone}",
            phone=phone,
            wa_id=phone.lstrip("+"),
            last_inbound_at=timezone.now() - inbound_ago,
        )
        conversation = Conversation.objects.create(
            contact=contact, channel=channel, last_message_at=timezone.now()
        )
        Message.objects.create(
            conversation=conversation,
            direction="in",
            text="hi",
            preview="hi",
            status="received",
            timestamp=timezone.now(),
        )
        return conversation


def test_conversations_are_listed_with_their_last_message_and_window(
    api_a, conversation_a, tenant_a, channel_a
):
    other = _conversation(tenant_a, channel_a, "+447911123456")
    response = api_a.get("/api/v1/conversations/")
    assert response.status_code == 200
    rows = {r["id"]: r for r in items(response)}
    assert set(rows) == {other.pk, conversation_a.pk}
    assert rows[other.pk]["last_message_preview"] == "hi"
    assert rows[other.pk]["window_open"] is True
    assert rows[other.pk]["contact"]["phone"] == "+447911123456"


def test_the_conversation_list_makes_the_same_queries_however_long_it_is(
    api_a, tenant_a, channel_a, django_assert_max_num_queries
):
    for i in range(3):
        _conversation(tenant_a, channel_a, f"+4479111234{i:02d}")
    with django_assert_max_num_queries(12) as few:
        api_a.get("/api/v1/conversations/")
    for i in range(3, 15):
        _conversation(tenant_a, channel_a, f"+4479111234{i:02d}")
    with django_assert_max_num_queries(len(few.captured_queries)):
        response = api_a.get("/api/v1/conversations/")
    assert len(items(response)) == 15


def test_messages_of_a_conversation_are_listed_with_constant_queries(
    api_a, conversation_a, tenant_a, django_assert_max_num_queries
):
    with schema_context(tenant_a.schema_name):
        for i in range(10):
            Message.objects.create(
                conversation=conversation_a,
                direction="in",
                text=f"m{i}",
                status="received",
                timestamp=timezone.now(),
            )
    with django_assert_max_num_queries(12):
        response = api_a.get(f"/api/v1/conversations/{conversation_a.pk}/messages/")
    assert response.status_code == 200
    assert len(items(response)) == 10


def test_sending_a_text_queues_it_and_the_job_sends_it(
    api_a, conversation_a, tenant_a, sandbox, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = api_a.post(
            f"/api/v1/conversations/{conversation_a.pk}/messages/",
            {"type": "text", "text": "On its way"},
            content_type="application/json",
        )
    assert response.status_code == 201, response.content
    assert response.json()["status"] == "queued"
    assert queued_jobs() == ["send_message"]
    with schema_context(tenant_a.schema_name):
        run_jobs()
        assert Message.objects.get(pk=response.json()["id"]).status == "sent"
    assert sandbox.sent()[0]["body"]["text"]["body"] == "On its way"


def test_outside_the_window_a_free_form_message_gets_422_with_a_clear_message(api_a, tenant_a, channel_a):
    conversation = _conversation(tenant_a, channel_a, "+447911123499", inbound_ago=dt.timedelta(hours=30))
    response = api_a.post(
        f"/api/v1/conversations/{conversation.pk}/messages/",
        {"type": "text", "text": "hello?"},
        content_type="application/json",
    )
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "outside_window"
    assert "template" in error["message"]


def test_a_message_without_its_fields_is_a_validation_error(api_a, conversation_a):
    response = api_a.post(
        f"/api/v1/conversations/{conversation_a.pk}/messages/",
        {"type": "text"},
        content_type="application/json",
    )
    assert response.status_code == 400
    assert response.json()["error"]["details"]["text"]


def test_a_template_starts_a_conversation_with_a_contact(api_a, tenant_a, channel_a, sandbox):
    from whatsapp.services import sync_templates

    sandbox.set_templates(
        WABA_A,
        [
            {
                "name": "welcome",
                "language": "en",
                "status": "APPROVED",
                "components": [{"type": "BODY", "text": "Hi {{1}}!"}],
            }
        ],
    )
    with schema_context(tenant_a.schema_name):
        sync_templates(channel=channel_a)
        contact = Contact.objects.create(name="New", phone="+447911123400", wa_id="447911123400")
    response = api_a.post(
        "/api/v1/messages/",
        {"contact": contact.pk, "type": "template", "template": "welcome", "parameters": {"body": ["Ann"]}},
        content_type="application/json",
    )
    assert response.status_code == 201, response.content
    assert response.json()["preview"] == "Hi Ann!"
    with schema_context(tenant_a.schema_name):
        assert Conversation.objects.get(contact=contact).messages.count() == 1
    wrong = api_a.post(
        "/api/v1/messages/",
        {"contact": contact.pk, "type": "template", "template": "welcome", "parameters": {"body": []}},
        content_type="application/json",
    )
    assert wrong.status_code == 422
    assert wrong.json()["error"]["code"] == "template_parameters"


def test_the_same_idempotency_key_and_body_returns_the_first_response_and_creates_nothing(
    api_a, conversation_a, tenant_a
):
    url = f"/api/v1/conversations/{conversation_a.pk}/messages/"
    body = {"type": "text", "text": "Only once"}
    first = api_a.post(url, body, content_type="application/json", headers={"Idempotency-Key": "k-123"})
    second = api_a.post(url, body, content_type="application/json", headers={"Idempotency-Key": "k-123"})
    assert first.status_code == second.status_code == 201
    assert first.json() == second.json()
    assert second.headers["Idempotent-Replayed"] == "true"
    with schema_context(tenant_a.schema_name):
        assert Message.objects.filter(text="Only once").count() == 1
    other = api_a.post(
        url,
        {"type": "text", "text": "Something else"},
        content_type="application/json",
        headers={"Idempotency-Key": "k-123"},
    )
    assert other.status_code == 422
    assert other.json()["error"]["code"] == "idempotency_key_reused"


def test_idempotency_keys_are_per_caller(api_a, conversation_a, tenant_a):
    from conftest import make_agent

    url = f"/api/v1/conversations/{conversation_a.pk}/messages/"
    api_a.post(
        url,
        {"type": "text", "text": "mine"},
        content_type="application/json",
        headers={"Idempotency-Key": "same"},
    )
    from django.test import Client

    # A supervisor: the owner's reply assigned the conversation to the owner (auto-assignment), so an
    # agent would no longer see it.
    colleague = make_agent(tenant_a, email="colleague@alpha.test", role="supervisor")
    other = login(Client(HTTP_HOST="alpha.localhost"), tenant_a, colleague.user)
    response = other.post(
        url,
        {"type": "text", "text": "theirs"},
        content_type="application/json",
        headers={"Idempotency-Key": "same"},
    )
    assert response.status_code == 201
    with schema_context(tenant_a.schema_name):
        assert Message.objects.filter(direction="out", type="text").count() == 2


def test_a_failed_message_is_retried_through_the_api(
    api_a, conversation_a, tenant_a, sandbox, django_capture_on_commit_callbacks
):
    with schema_context(tenant_a.schema_name):
        message = Message.objects.create(
            conversation=conversation_a,
            direction="out",
            type="text",
            text="again",
            status="failed",
            payload={"text": {"body": "again"}},
            error_code=131026,
            timestamp=timezone.now(),
        )
    with django_capture_on_commit_callbacks(execute=True):
        response = api_a.post(f"/api/v1/messages/{message.pk}/retry/")
    assert response.status_code == 200
    assert response.json()["status"] == "queued"
    with schema_context(tenant_a.schema_name):
        run_jobs()
        message.refresh_from_db()
        assert message.status == "sent"
    not_failed = api_a.post(f"/api/v1/messages/{message.pk}/retry/")
    assert not_failed.status_code == 422
    assert not_failed.json()["error"]["code"] == "not_retryable"


def test_media_is_uploaded_then_sent_by_id(api_a, conversation_a, tenant_a, sandbox, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    upload = SimpleUploadedFile("shop.jpg", b"\xff\xd8\xff" + b"x" * 100, content_type="image/jpeg")
    response = api_a.post("/api/v1/whatsapp/media/", {"file": upload})
    assert response.status_code == 201, response.content
    media_id = response.json()["id"]
    sent = api_a.post(
        f"/api/v1/conversations/{conversation_a.pk}/messages/",
        {"type": "image", "media": media_id, "caption": "Our shop"},
        content_type="application/json",
    )
    assert sent.status_code == 201, sent.content
    assert sent.json()["payload"]["image"]["caption"] == "Our shop"
    too_big = SimpleUploadedFile("big.jpg", b"x" * (5 * 1024 * 1024 + 1), content_type="image/jpeg")
    refused = api_a.post("/api/v1/whatsapp/media/", {"file": too_big})
    assert refused.status_code == 422
    assert refused.json()["error"]["code"] == "media_too_large"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/api/v1/conversations/{id}/"),
        ("get", "/api/v1/conversations/{id}/messages/"),
        ("post", "/api/v1/conversations/{id}/messages/"),
        ("post", "/api/v1/messages/{message}/retry/"),
    ],
)
def test_another_tenants_conversation_is_not_found(
    method, path, client_b, tenant_b, owner_b, tenant_a, channel_a
):
    conversation = _conversation(tenant_a, channel_a, "+447911123477")
    with schema_context(tenant_a.schema_name):
        message = conversation.messages.first()
    with schema_context(tenant_b.schema_name):
        assert not Conversation.objects.filter(pk=conversation.pk).exists()
        assert not Message.objects.filter(pk=message.pk).exists()
    client = login(client_b, tenant_b, owner_b)
    url = path.format(id=conversation.pk, message=message.pk)
    response = getattr(client, method)(url, {"type": "text", "text": "x"}, content_type="application/json")
    assert response.status_code == 404
    listed = client_b.get("/api/v1/conversations/")
    assert items(listed) == []


def test_anonymous_callers_are_refused(client_a, conversation_a):
    response = client_a.get("/api/v1/conversations/")
    assert response.status_code in (401, 403)
    assert "error" in response.json()
