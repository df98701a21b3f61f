"""The composer's server side and the bot end to end, against the WhatsApp side's services, the
sandbox Graph API and the stub broker (fixtures shared with whatsapp/tests)."""

from __future__ import annotations

import datetime as dt

from django.utils import timezone
from django_tenants.utils import schema_context

from conftest import login
from conversations.models import AutoReplyRule, Conversation, Message
from whatsapp import payloads
from whatsapp.testing import PNID_A, deliver, run_jobs


def test_a_reply_is_stored_once_however_often_its_key_is_posted(client_a, tenant_a, owner_a, conversation_a):
    login(client_a, tenant_a, owner_a)
    url = f"/inbox/c/{conversation_a.pk}/send/"
    first = client_a.post(url, {"text": "Hello there", "idempotency_key": "k-1"}, HTTP_HX_REQUEST="true")
    second = client_a.post(url, {"text": "Hello there", "idempotency_key": "k-1"}, HTTP_HX_REQUEST="true")
    assert first.status_code == 200 and second.status_code == 200
    assert b"Hello there" in first.content
    with schema_context(tenant_a.schema_name):
        assert Message.objects.filter(idempotency_key="k-1").count() == 1
        conversation = Conversation.objects.get(pk=conversation_a.pk)
        assert conversation.bot_active is False and conversation.first_response_at is not None


def test_the_reply_goes_to_meta_and_its_ticks_advance(
    client_a, tenant_a, owner_a, conversation_a, django_capture_on_commit_callbacks
):
    login(client_a, tenant_a, owner_a)
    with django_capture_on_commit_callbacks(execute=True):
        client_a.post(f"/inbox/c/{conversation_a.pk}/send/", {"text": "Tick me", "idempotency_key": "k-2"})
    run_jobs()
    with schema_context(tenant_a.schema_name):
        message = Message.objects.get(idempotency_key="k-2")
    assert message.wamid and message.status in ("sent", "delivered", "read")
    bubble = client_a.get(f"/inbox/m/{message.pk}/").content.decode()
    assert f'class="tick status-{message.status}"' in bubble


def test_outside_the_window_free_text_is_refused_with_a_clear_reason(
    client_a, tenant_a, owner_a, conversation_a
):
    with schema_context(tenant_a.schema_name):
        conversation_a.contact.last_inbound_at = timezone.now() - dt.timedelta(hours=25)
        conversation_a.contact.save()
    login(client_a, tenant_a, owner_a)
    response = client_a.post(
        f"/inbox/c/{conversation_a.pk}/send/", {"text": "late", "idempotency_key": "k-3"}
    )
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "outside_window"
    page = client_a.get(f"/inbox/c/{conversation_a.pk}/", HTTP_HX_REQUEST="true").content.decode()
    assert "The 24-hour window closed" in page and 'data-window-open="0"' in page


def test_an_empty_or_too_long_reply_gets_a_stable_error(client_a, tenant_a, owner_a, conversation_a):
    login(client_a, tenant_a, owner_a)
    url = f"/inbox/c/{conversation_a.pk}/send/"
    assert client_a.post(url, {"text": "  "}).json()["error"]["code"] == "empty_text"
    assert client_a.post(url, {"text": "x" * 4097}).json()["error"]["code"] == "text_too_long"


def test_a_note_is_stored_and_never_sent(client_a, tenant_a, owner_a, conversation_a):
    login(client_a, tenant_a, owner_a)
    response = client_a.post(f"/inbox/c/{conversation_a.pk}/note/", {"text": "VIP, be nice"})
    assert response.status_code == 200 and b"Private note" in response.content
    run_jobs()
    assert not sandbox_sent_texts(conversation_a, tenant_a)


def sandbox_sent_texts(conversation, tenant):
    with schema_context(tenant.schema_name):
        return list(
            Message.objects.filter(
                conversation=conversation, wamid__isnull=False, direction="out"
            ).values_list("text", flat=True)
        )


def test_sending_into_another_tenants_conversation_is_not_found(client_b, tenant_b, owner_b, conversation_a):
    login(client_b, tenant_b, owner_b)
    response = client_b.post(f"/inbox/c/{conversation_a.pk}/send/", {"text": "hi", "idempotency_key": "x"})
    assert response.status_code == 404


def test_inbound_webhook_bot_answers_agent_takes_over_and_replies(
    public_client, client_a, tenant_a, owner_a, channel_a, django_capture_on_commit_callbacks
):
    with schema_context(tenant_a.schema_name):
        AutoReplyRule.objects.create(keyword="price", reply="Our prices start at 10 EUR.")
    deliver(
        public_client,
        payloads.text_event(phone_number_id=PNID_A, wa_id="15550001111", text="What's the price?"),
    )
    run_jobs()
    with schema_context(tenant_a.schema_name):
        conversation = Conversation.objects.get(contact__wa_id="15550001111")
        bot_reply = Message.objects.get(conversation=conversation, direction="out", sender__isnull=True)
        assert bot_reply.text == "Our prices start at 10 EUR." and bot_reply.wamid
        assert conversation.bot_active
    login(client_a, tenant_a, owner_a)
    assert client_a.post(f"/inbox/c/{conversation.pk}/take/").status_code == 200
    deliver(
        public_client, payloads.text_event(phone_number_id=PNID_A, wa_id="15550001111", text="price again?")
    )
    with schema_context(tenant_a.schema_name):
        assert (
            Message.objects.filter(conversation=conversation, sender__isnull=True, direction="out").count()
            == 1
        )
    client_a.post(
        f"/inbox/c/{conversation.pk}/send/", {"text": "I'm Ann, happy to help", "idempotency_key": "t-1"}
    )
    run_jobs()
    with schema_context(tenant_a.schema_name):
        texts = list(
            Message.objects.filter(conversation=conversation)
            .exclude(type="system")
            .order_by("id")
            .values_list("text", flat=True)
        )
    assert texts == [
        "What's the price?",
        "Our prices start at 10 EUR.",
        "price again?",
        "I'm Ann, happy to help",
    ]
    # The redelivered inbound webhook does not make the bot speak twice.
    deliver(
        public_client,
        payloads.text_event(phone_number_id=PNID_A, wa_id="15550001111", text="What's the price?"),
    )
