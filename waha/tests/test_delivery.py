"""Outbound through WAHA (waha.delivery): each message type, the id WAHA returns stored where the Cloud
API keeps the wamid, retries by class, never a second send after an uncertain outcome, per-number
pacing, read receipts and typing, and received files downloaded only from the session's server."""

from __future__ import annotations

import base64
import datetime as dt

import pytest
from django.core.files.storage import default_storage
from django.test import TestCase
from django.utils import timezone
from django_tenants.utils import schema_context

from conversations import channels
from conversations.errors import MediaRejected
from conversations.models import MediaFile, Message
from conversations.services import Draft, send_reply
from crm.models import Contact, ContactIdentity
from tenants.db import connection
from tenants.jobs import broker
from waha import delivery
from waha.client import WahaError
from waha.models import WahaSession
from whatsapp import limiter
from whatsapp.actors import requeue_stuck_sends
from whatsapp.delivery import INTERRUPTED_TITLE
from whatsapp.testing import queued_jobs, run_jobs

PNG = b"\x89PNG\r\n\x1a\n" + b"0" * 64


def reply(tenant, conversation, owner, **draft):
    """send_reply as the inbox calls it; its on-commit hook queues the send."""
    with schema_context(tenant.schema_name), TestCase.captureOnCommitCallbacks(execute=True):
        return send_reply(conversation=conversation, draft=Draft(**draft), by=owner)


def fresh(tenant, message):
    with schema_context(tenant.schema_name):
        return Message.objects.get(pk=message.pk)


def test_a_text_reply_goes_to_waha_and_its_id_is_kept_as_the_wamid(
    tenant_a, owner_a, waha_a, waha_conversation_a, fake_waha
):
    message = reply(tenant_a, waha_conversation_a, owner_a, kind="text", text="Hello from the web")
    run_jobs()
    sent = fake_waha.requests("/api/sendText")
    assert len(sent) == 1
    assert sent[0]["json"] == {
        "session": "default",
        "chatId": "16505550199@c.us",
        "text": "Hello from the web",
    }
    message = fresh(tenant_a, message)
    assert message.status == "sent" and message.wamid == "true_16505550199@c.us_FAKE000001"
    with schema_context(tenant_a.schema_name):
        assert WahaSession.objects.get(pk=waha_a.session.pk).last_activity_at is not None


def test_a_quoted_reply_names_the_quoted_message(tenant_a, owner_a, waha_conversation_a, fake_waha):
    with schema_context(tenant_a.schema_name):
        quoted = Message.objects.create(
            conversation=waha_conversation_a,
            direction="in",
            type="text",
            text="Hi?",
            status="received",
            wamid="false_16505550199@c.us_AAAA",
            timestamp=timezone.now(),
        )
    reply(tenant_a, waha_conversation_a, owner_a, kind="text", text="Yes", reply_to=quoted)
    run_jobs()
    assert fake_waha.requests("/api/sendText")[0]["json"]["reply_to"] == "false_16505550199@c.us_AAAA"


@pytest.mark.parametrize(
    ("filename", "mime", "endpoint"),
    [
        ("photo.png", "image/png", "/api/sendImage"),
        ("terms.pdf", "application/pdf", "/api/sendFile"),
        ("note.ogg", "audio/ogg", "/api/sendVoice"),
    ],
)
def test_media_go_to_waha_as_base64_data(
    tenant_a, owner_a, waha_a, waha_conversation_a, fake_waha, filename, mime, endpoint
):
    adapter = channels.adapter_for(waha_a.channel)
    with schema_context(tenant_a.schema_name):
        media = adapter.upload_media(channel=waha_a.channel, content=PNG, filename=filename, mime_type=mime)
    caption = "" if mime.startswith("audio") else "Look"
    message = reply(tenant_a, waha_conversation_a, owner_a, kind="media", media=media, text=caption)
    run_jobs()
    body = fake_waha.requests(endpoint)[0]["json"]
    assert base64.b64decode(body["file"]["data"]) == PNG
    assert body["file"]["mimetype"] == mime and body["file"]["filename"] == filename
    assert body.get("caption", "") == caption
    assert fresh(tenant_a, message).wamid.startswith("true_")


def test_a_location_and_a_reaction_are_sent(tenant_a, owner_a, waha_conversation_a, fake_waha):
    with schema_context(tenant_a.schema_name):
        target = Message.objects.create(
            conversation=waha_conversation_a,
            direction="in",
            type="text",
            text="Hi",
            status="received",
            wamid="false_16505550199@c.us_BBBB",
            timestamp=timezone.now(),
        )
        location = Message.objects.create(
            conversation=waha_conversation_a,
            direction="out",
            type="location",
            payload={"location": {"latitude": 52.52, "longitude": 13.405, "name": "Shop"}},
            status="queued",
            timestamp=timezone.now(),
        )
    reaction = reply(tenant_a, waha_conversation_a, owner_a, kind="reaction", target=target, emoji="👍")
    with schema_context(tenant_a.schema_name):
        delivery.enqueue_send(message_id=location.pk, schema=tenant_a.schema_name)
    run_jobs()
    assert fake_waha.requests("/api/reaction")[0]["json"] == {
        "session": "default",
        "messageId": "false_16505550199@c.us_BBBB",
        "reaction": "👍",
    }
    assert fake_waha.requests("/api/sendLocation")[0]["json"]["latitude"] == 52.52
    assert fresh(tenant_a, reaction).wamid == f"reaction:{reaction.pk}"
    assert fresh(tenant_a, location).status == "sent"


def test_a_server_error_is_retried_and_sent_once(tenant_a, owner_a, waha_conversation_a, fake_waha):
    fake_waha.script("/api/sendText", status=500)
    message = reply(tenant_a, waha_conversation_a, owner_a, kind="text", text="Again")
    with schema_context(tenant_a.schema_name):
        assert delivery.deliver_message(message_id=message.pk).action == "retry"
        waiting = Message.objects.get(pk=message.pk)
        assert waiting.status == "queued" and waiting.next_attempt_at and waiting.send_started_at is None
        assert waiting.error_title.startswith("Retrying:")
        Message.objects.filter(pk=message.pk).update(next_attempt_at=None)
        assert delivery.deliver_message(message_id=message.pk).action == "sent"
        assert delivery.deliver_message(message_id=message.pk).action == "skip"
    assert len(fake_waha.requests("/api/sendText")) == 2  # the failed attempt and the one that worked
    assert fresh(tenant_a, message).status == "sent"


def test_an_uncertain_send_fails_visibly_and_is_never_sent_again(
    tenant_a, owner_a, waha_conversation_a, fake_waha
):
    fake_waha.script("/api/sendText", drop=True)
    message = reply(tenant_a, waha_conversation_a, owner_a, kind="text", text="Maybe")
    run_jobs()
    failed = fresh(tenant_a, message)
    assert failed.status == "failed" and failed.error_title == INTERRUPTED_TITLE and not failed.wamid
    with schema_context(tenant_a.schema_name):
        delivery.enqueue_send(message_id=message.pk, schema=tenant_a.schema_name)
        delivery.requeue_stuck_waha_sends()
    run_jobs()
    assert len(fake_waha.requests("/api/sendText")) == 1


def test_a_claim_left_by_a_dead_worker_is_failed_not_resent(
    tenant_a, owner_a, waha_conversation_a, fake_waha
):
    message = reply(tenant_a, waha_conversation_a, owner_a, kind="text", text="Claimed")
    with schema_context(tenant_a.schema_name):
        Message.objects.filter(pk=message.pk).update(send_started_at=timezone.now())
        assert delivery.deliver_message(message_id=message.pk).action == "skip"  # a live attempt's
        Message.objects.filter(pk=message.pk).update(send_started_at=timezone.now() - dt.timedelta(hours=1))
        assert delivery.deliver_message(message_id=message.pk).action == "skip"
    assert fake_waha.requests("/api/sendText") == []
    assert fresh(tenant_a, message).error_title == INTERRUPTED_TITLE


@pytest.mark.parametrize(
    ("status", "wanted"), [(401, "refused the API key"), (422, "WAHA refused the message")]
)
def test_auth_and_permanent_errors_fail_with_the_reason(
    tenant_a, owner_a, waha_a, waha_conversation_a, fake_waha, status, wanted
):
    fake_waha.script("/api/sendText", status=status, body={"statusCode": status, "message": "Nope"})
    message = reply(tenant_a, waha_conversation_a, owner_a, kind="text", text="x")
    run_jobs()
    failed = fresh(tenant_a, message)
    assert failed.status == "failed" and wanted in failed.error_title
    assert len(fake_waha.requests("/api/sendText")) == 1
    if status == 401:
        with schema_context(tenant_a.schema_name):
            assert "API key" in WahaSession.objects.get(pk=waha_a.session.pk).last_error


@pytest.mark.parametrize(
    ("status", "outcome"), [("SCAN_QR_CODE", "failed"), ("STOPPED", "failed"), ("STARTING", "retry")]
)
def test_a_session_that_is_not_working_sends_nothing(
    tenant_a, owner_a, waha_a, waha_conversation_a, fake_waha, status, outcome
):
    with schema_context(tenant_a.schema_name):
        WahaSession.objects.filter(pk=waha_a.session.pk).update(status=status)
    message = reply(tenant_a, waha_conversation_a, owner_a, kind="text", text="x")
    with schema_context(tenant_a.schema_name):
        assert delivery.deliver_message(message_id=message.pk).action == outcome
    assert fake_waha.requests() == []
    if outcome == "failed":
        assert f"({status})" in fresh(tenant_a, message).error_title


def test_sends_are_paced_by_the_numbers_limiter(tenant_a, owner_a, waha_a, waha_conversation_a, fake_waha):
    schema = tenant_a.schema_name
    # Another worker holds the number's next slots for five seconds: this send waits, sending nothing.
    limiter.back_off(schema=schema, phone_number_id=waha_a.channel.phone_number_id, seconds=5)
    message = reply(tenant_a, waha_conversation_a, owner_a, kind="text", text="Paced")
    with schema_context(schema):
        outcome = delivery.deliver_message(message_id=message.pk)
    assert outcome.action == "wait" and outcome.delay > 0
    assert fake_waha.requests() == [] and fresh(tenant_a, message).status == "queued"
    limiter.reset(schema=schema, phone_number_id=waha_a.channel.phone_number_id)


def test_the_limiter_is_asked_at_the_numbers_cap(
    tenant_a, owner_a, waha_a, waha_conversation_a, fake_waha, monkeypatch
):
    asked = []
    real = limiter.acquire

    def spy(**kwargs):
        asked.append(kwargs)
        return real(**kwargs)

    monkeypatch.setattr(limiter, "acquire", spy)
    reply(tenant_a, waha_conversation_a, owner_a, kind="text", text="Capped")
    run_jobs()
    assert asked[0]["cap"] == 2 and asked[0]["phone_number_id"] == f"waha:{waha_a.webhook_id}"


def test_read_receipts_and_typing(tenant_a, waha_conversation_a, fake_waha):
    with schema_context(tenant_a.schema_name):
        received = Message.objects.create(
            conversation=waha_conversation_a,
            direction="in",
            type="text",
            text="Hi",
            status="received",
            wamid="false_16505550199@c.us_CCCC",
            timestamp=timezone.now(),
        )
        channels.adapter_for(waha_conversation_a.channel).enqueue_read_receipt(
            message_id=received.pk, schema=connection.schema_name, typing=True
        )
    run_jobs()
    assert fake_waha.requests("/api/sendSeen")[0]["json"] == {
        "session": "default",
        "chatId": "16505550199@c.us",
        "messageIds": ["false_16505550199@c.us_CCCC"],
    }
    assert len(fake_waha.requests("/api/startTyping")) == 1


def test_a_lid_contact_is_addressed_by_its_lid(tenant_a):
    with schema_context(tenant_a.schema_name):
        contact = Contact.objects.create(name="Hidden")
        assert delivery.chat_id_for(contact) == ""
        ContactIdentity.objects.create(contact=contact, kind="bsuid", value="123456789@lid")
        assert delivery.chat_id_for(contact) == "123456789@lid"


def _pending_media(tenant, conversation, **fields):
    with schema_context(tenant.schema_name):
        message = Message.objects.create(
            conversation=conversation,
            direction="in",
            type="image",
            status="received",
            wamid=f"false_16505550199@c.us_M{MediaFile.objects.count()}",
            timestamp=timezone.now(),
        )
        return MediaFile.objects.create(
            channel=conversation.channel,
            message=message,
            direction="in",
            kind="image",
            mime_type="image/png",
            **fields,
        )


def test_a_received_file_is_downloaded_with_the_key_and_stored(tenant_a, waha_conversation_a, fake_waha):
    url = fake_waha.add_file("/api/files/default/in.png", PNG, "image/png")
    media = _pending_media(tenant_a, waha_conversation_a)
    with schema_context(tenant_a.schema_name):
        delivery.enqueue_media_download(media_id=media.pk, schema=tenant_a.schema_name, url=url)
    run_jobs()
    with schema_context(tenant_a.schema_name):
        media.refresh_from_db()
        assert media.status == "ready" and media.size == len(PNG) and media.media_id == url
        with default_storage.open(media.file.name, "rb") as handle:
            assert handle.read() == PNG
    assert fake_waha.requests("/api/files/default/in.png")[0]["headers"]["X-Api-Key"] == "waha-test-key"


def test_a_file_url_on_another_host_is_refused_without_a_request(tenant_a, waha_conversation_a, fake_waha):
    media = _pending_media(tenant_a, waha_conversation_a)
    with schema_context(tenant_a.schema_name):
        result = delivery.download_media(media_file_id=media.pk, url="http://169.254.169.254/api/files/x.png")
        media.refresh_from_db()
    assert result == "failed" and media.status == "failed" and "refused" in media.error
    assert fake_waha.requests() == []


def test_a_failed_download_is_retried_then_given_up_and_can_be_retried_by_hand(
    tenant_a, waha_conversation_a, fake_waha
):
    url = fake_waha.add_file("/api/files/default/flaky.png", PNG, "image/png")
    media = _pending_media(tenant_a, waha_conversation_a, media_id=url)
    fake_waha.script("/api/files/default/flaky.png", status=503, times=20)
    with schema_context(tenant_a.schema_name):
        with pytest.raises(WahaError):
            delivery.download_media(media_file_id=media.pk)  # retryable: the actor tries again
        MediaFile.objects.filter(pk=media.pk).update(attempts=99)
        assert delivery.download_media(media_file_id=media.pk) == "failed"
        media.refresh_from_db()
        assert media.status == "failed"
    fake_waha.reset()
    fake_waha.add_file("/api/files/default/flaky.png", PNG, "image/png")
    with schema_context(tenant_a.schema_name), TestCase.captureOnCommitCallbacks(execute=True):
        channels.adapter_for(media.channel).retry_media_download(media=media)
    run_jobs()
    with schema_context(tenant_a.schema_name):
        media.refresh_from_db()
        assert media.status == "ready"


def test_an_oversized_received_image_is_rejected(tenant_a, waha_conversation_a, fake_waha):
    url = fake_waha.add_file("/api/files/default/huge.png", b"0" * (5 * 1024 * 1024 + 1), "image/png")
    media = _pending_media(tenant_a, waha_conversation_a)
    with schema_context(tenant_a.schema_name):
        assert delivery.download_media(media_file_id=media.pk, url=url) == "failed"
        media.refresh_from_db()
    assert media.status == "failed"


def test_the_cloud_api_sweeper_leaves_waha_messages_to_the_waha_sweeper(
    tenant_a, owner_a, waha_conversation_a, fake_waha
):
    message = reply(tenant_a, waha_conversation_a, owner_a, kind="text", text="Lost job")
    broker.flush_all()  # the job was lost (the broker was down at enqueue)
    with schema_context(tenant_a.schema_name):
        Message.objects.filter(pk=message.pk).update(created_at=timezone.now() - dt.timedelta(minutes=5))
    requeue_stuck_sends()
    assert queued_jobs() == []
    delivery.requeue_stuck_waha_sends()
    assert queued_jobs() == ["send_waha_message"]
    run_jobs()
    assert fresh(tenant_a, message).status == "sent"


def test_another_tenants_job_cannot_send_this_tenants_message(
    tenant_a, tenant_b, owner_a, waha_conversation_a, fake_waha
):
    message = reply(tenant_a, waha_conversation_a, owner_a, kind="text", text="Mine")
    broker.flush_all()
    delivery.enqueue_send(message_id=message.pk, schema=tenant_b.schema_name)
    run_jobs()
    assert fake_waha.requests() == [] and fresh(tenant_a, message).status == "queued"


def test_outbound_files_are_checked_before_they_are_kept(tenant_a, waha_a):
    adapter = channels.adapter_for(waha_a.channel)
    with schema_context(tenant_a.schema_name), pytest.raises(MediaRejected) as caught:
        adapter.upload_media(
            channel=waha_a.channel,
            content=b"x" * (5 * 1024 * 1024 + 1),
            filename="a.png",
            mime_type="image/png",
        )
    assert caught.value.code == "media_too_large"


def test_a_number_on_its_own_server_without_a_key_never_sends_the_platform_key(
    tenant_a, owner_a, fake_waha, settings
):
    """The platform's WAHA_API_KEY goes to the platform's WAHA_URL only: a tenant's number on a server
    the owner entered, with no key of its own, sends without one (and its server refuses it)."""
    from conversations.models import Conversation
    from waha.testing import make_waha_number

    settings.WAHA_URL = "http://waha.platform.invalid:3000"
    settings.WAHA_API_KEY = "platform-secret-key"
    number = make_waha_number(tenant_a, server_url=fake_waha.url, api_key="", display_phone="+15550003333")
    with schema_context(tenant_a.schema_name):
        contact = Contact.objects.create(
            name="Kim", phone="+16505550177", wa_id="16505550177", last_inbound_at=timezone.now()
        )
        conversation = Conversation.objects.create(contact=contact, channel=number.channel)

    message = reply(tenant_a, conversation, owner_a, kind="text", text="no key here")
    run_jobs()

    sent = fake_waha.requests("/api/sendText")
    assert sent, "the send reached the number's own server"
    assert all(value != settings.WAHA_API_KEY for request in sent for value in request["headers"].values())
    assert all("x-api-key" not in {name.lower() for name in request["headers"]} for request in sent)
    assert fresh(tenant_a, message).status == "failed"  # its server wants a key it was never given
