"""WAHA events mapped into the same contacts, conversations and messages as the Cloud API's."""

from __future__ import annotations

import pytest
from django.utils import timezone
from django_tenants.utils import schema_context

from conftest import login
from conversations.models import Conversation, InboxEvent, MediaFile, Message
from crm.models import Contact, ContactIdentity
from waha import webhook
from waha.delivery import chat_id_for
from waha.models import WahaEvent, WahaSession
from waha.testing import make_waha_number, post_signed_waha
from whatsapp.testing import queued_jobs, run_jobs

CUSTOMER = "4915112345678"
CHAT = f"{CUSTOMER}@c.us"
ME = "15550001111@c.us"


@pytest.fixture(autouse=True)
def _fresh_routes():
    webhook.forget_routes()
    yield
    webhook.forget_routes()


@pytest.fixture
def number(tenant_a):
    return make_waha_number(tenant_a, session="default")


def envelope(event: str, payload: dict, *, session: str = "default") -> dict:
    return {
        "id": "evt_x",
        "timestamp": 1764500001000,
        "event": event,
        "session": session,
        "me": {"id": ME, "pushName": "Alpha"},
        "payload": payload,
        "engine": "GOWS",
    }


def message_payload(message_id: str = "AAA1", *, body: str = "Hi there", chat: str = CHAT, **extra) -> dict:
    payload = {
        "id": f"false_{chat}_{message_id}",
        "timestamp": 1764500000,
        "from": chat,
        "fromMe": False,
        "to": ME,
        "body": body,
        "hasMedia": False,
        "media": None,
        "ack": 1,
        "ackName": "SERVER",
        "replyTo": None,
        "_data": {"notifyName": "Greta"},
    }
    payload.update(extra)
    return payload


def echo_payload(message_id: str, *, body: str = "Sent from the phone", chat: str = CHAT) -> dict:
    return {
        "id": f"true_{chat}_{message_id}",
        "timestamp": 1764500100,
        "from": ME,
        "fromMe": True,
        "to": chat,
        "body": body,
        "hasMedia": False,
        "ack": 1,
        "ackName": "SERVER",
    }


def deliver(client, number, body: dict, **run) -> None:
    response = post_signed_waha(client, number, body)
    assert response.status_code == 200, response.content
    run_jobs(**run)


def in_tenant(tenant):
    return schema_context(tenant.schema_name)


def our_send(tenant, number, *, wamid: str | None, text: str = "Our reply", status: str = "sent") -> Message:
    """An outbound message as the delivery stores it (WAHA's id once sent)."""
    with in_tenant(tenant):
        contact = Contact.objects.create(phone=f"+{CUSTOMER}", wa_id=CUSTOMER, attributes={})
        conversation = Conversation.objects.create(contact=contact, channel=number.channel, bot_active=False)
        return Message.objects.create(
            conversation=conversation,
            direction=Message.Direction.OUTBOUND,
            type=Message.Type.TEXT,
            text=text,
            status=status,
            wamid=wamid,
            timestamp=timezone.now(),
            send_started_at=timezone.now() if wamid is None else None,
        )


def test_a_customers_message_becomes_an_inbound_message_with_its_realtime_event(
    public_client, tenant_a, number
):
    deliver(public_client, number, envelope("message", message_payload()))
    with in_tenant(tenant_a):
        message = Message.objects.get()
        assert (message.direction, message.type, message.text) == ("in", "text", "Hi there")
        assert message.wamid == f"false_{CHAT}_AAA1"
        contact = message.conversation.contact
        assert (contact.phone, contact.wa_id, contact.name) == (f"+{CUSTOMER}", CUSTOMER, "Greta")
        assert message.conversation.channel_id == number.channel.pk
        assert message.conversation.unread_count == 1
        kinds = [event.payload["type"] for event in InboxEvent.objects.all()]
        assert "message.created" in kinds
        assert WahaSession.objects.get(pk=number.session.pk).last_activity_at is not None


def test_a_redelivered_message_and_its_message_any_copy_are_stored_once(public_client, tenant_a, number):
    deliver(public_client, number, envelope("message", message_payload()))
    deliver(public_client, number, envelope("message", message_payload()))
    deliver(public_client, number, envelope("message.any", message_payload()))
    with in_tenant(tenant_a):
        assert Message.objects.count() == 1
        assert Contact.objects.count() == 1
        assert WahaEvent.objects.filter(status=WahaEvent.Status.PROCESSED).count() == 3


def test_acks_never_move_a_status_backwards(public_client, tenant_a, number):
    sent = our_send(tenant_a, number, wamid=f"true_{CHAT}_OUT1")
    for ack, name in ((3, "READ"), (2, "DEVICE"), (1, "SERVER"), (-1, "ERROR"), (4, "PLAYED")):
        payload = {
            "id": f"true_{CHAT}_OUT1",
            "from": ME,
            "to": CHAT,
            "fromMe": True,
            "ack": ack,
            "ackName": name,
        }
        deliver(public_client, number, envelope("message.ack", payload))
    with in_tenant(tenant_a):
        message = Message.objects.get(pk=sent.pk)
        assert message.status == Message.Status.READ
        assert message.read_at is not None and message.delivered_at is not None


def test_an_error_ack_fails_a_sent_message(public_client, tenant_a, number):
    sent = our_send(tenant_a, number, wamid=f"true_{CHAT}_OUT2")
    payload = {"id": f"true_{CHAT}_OUT2", "fromMe": True, "ack": -1, "ackName": "ERROR"}
    deliver(public_client, number, envelope("message.ack", payload))
    with in_tenant(tenant_a):
        message = Message.objects.get(pk=sent.pk)
        assert message.status == Message.Status.FAILED
        assert message.error_title


def test_an_ack_matches_a_send_stored_by_its_bare_id(public_client, tenant_a, number):
    sent = our_send(tenant_a, number, wamid="OUT3")
    payload = {"id": f"true_{CHAT}_OUT3", "fromMe": True, "ack": 2, "ackName": "DEVICE"}
    deliver(public_client, number, envelope("message.ack", payload))
    with in_tenant(tenant_a):
        assert Message.objects.get(pk=sent.pk).status == Message.Status.DELIVERED


def test_an_ack_that_overtook_its_message_waits_for_it(public_client, tenant_a, number):
    payload = {"id": f"true_{CHAT}_LATE", "fromMe": True, "ack": 3, "ackName": "READ"}
    deliver(public_client, number, envelope("message.ack", payload), include_delayed=False)
    with in_tenant(tenant_a):
        event = WahaEvent.objects.get()
        assert event.status == WahaEvent.Status.PENDING and event.next_attempt_at is not None
    sent = our_send(tenant_a, number, wamid=f"true_{CHAT}_LATE")
    run_jobs()
    with in_tenant(tenant_a):
        assert Message.objects.get(pk=sent.pk).status == Message.Status.READ
        assert WahaEvent.objects.get().status == WahaEvent.Status.PROCESSED


def test_an_ack_of_a_message_never_seen_is_eventually_ignored(public_client, tenant_a, number):
    payload = {"id": f"true_{CHAT}_NEVER", "fromMe": True, "ack": 3, "ackName": "READ"}
    deliver(public_client, number, envelope("message.ack", payload))
    with in_tenant(tenant_a):
        event = WahaEvent.objects.get()
        assert event.status == WahaEvent.Status.IGNORED
        assert "not stored" in event.error


def test_a_message_sent_from_the_phone_shows_once_as_outbound(public_client, tenant_a, number):
    deliver(public_client, number, envelope("message.any", echo_payload("PHONE1")))
    deliver(public_client, number, envelope("message.any", echo_payload("PHONE1")))
    with in_tenant(tenant_a):
        message = Message.objects.get()
        assert message.direction == Message.Direction.OUTBOUND
        assert message.status == Message.Status.SENT
        assert message.origin == Message.Origin.BUSINESS_APP
        assert message.text == "Sent from the phone"
        assert message.conversation.contact.phone == f"+{CUSTOMER}"
        assert message.conversation.contact.last_inbound_at is None  # no window opened by our own message
        assert message.conversation.unread_count == 0


@pytest.mark.parametrize("stored_id", [f"true_{CHAT}_API1", "API1"])
def test_the_echo_of_our_own_send_does_not_duplicate_it(public_client, tenant_a, number, stored_id):
    sent = our_send(tenant_a, number, wamid=stored_id)
    deliver(public_client, number, envelope("message.any", echo_payload("API1", body="Our reply")))
    with in_tenant(tenant_a):
        assert list(Message.objects.values_list("pk", flat=True)) == [sent.pk]


def test_an_echo_that_overtakes_its_sends_id_waits_and_does_not_duplicate(public_client, tenant_a, number):
    sending = our_send(tenant_a, number, wamid=None, status=Message.Status.QUEUED)
    deliver(
        public_client,
        number,
        envelope("message.any", echo_payload("API2", body="Our reply")),
        include_delayed=False,
    )
    with in_tenant(tenant_a):
        assert Message.objects.count() == 1
        assert WahaEvent.objects.get().status == WahaEvent.Status.PENDING
        # The send's answer arrives: the delivery stores WAHA's id.
        Message.objects.filter(pk=sending.pk).update(wamid=f"true_{CHAT}_API2", status=Message.Status.SENT)
    run_jobs()
    with in_tenant(tenant_a):
        assert list(Message.objects.values_list("pk", flat=True)) == [sending.pk]
        assert WahaEvent.objects.get().status == WahaEvent.Status.PROCESSED


def test_an_at_lid_sender_is_kept_as_an_identity_of_one_contact(public_client, tenant_a, number):
    chat = "123456789012345@lid"
    deliver(public_client, number, envelope("message", message_payload("L1", chat=chat)))
    deliver(public_client, number, envelope("message", message_payload("L2", chat=chat, body="again")))
    with in_tenant(tenant_a):
        contact = Contact.objects.get()
        assert contact.phone == "" and contact.wa_id == ""
        identity = ContactIdentity.objects.get(contact=contact)
        assert (identity.kind, identity.value) == (ContactIdentity.Kind.WHATSAPP_WEB, chat)
        assert Message.objects.filter(conversation__contact=contact).count() == 2
        assert Conversation.objects.count() == 1


def test_a_lid_identity_is_never_a_cloud_api_recipient(tenant_a):
    from crm.services.identities import identity_for_sending

    with in_tenant(tenant_a):
        contact = Contact.objects.create(attributes={})
        ContactIdentity.objects.create(contact=contact, kind=ContactIdentity.Kind.WHATSAPP_WEB, value="1@lid")
        assert identity_for_sending(contact=contact, scope="") == ("", "")


def test_group_chats_are_ignored_unless_enabled(public_client, tenant_a, number):
    group = "120363025246125888@g.us"
    deliver(public_client, number, envelope("message", message_payload("G1", chat=group, participant=CHAT)))
    with in_tenant(tenant_a):
        assert not Message.objects.exists() and not Contact.objects.exists()
        assert WahaEvent.objects.get().status == WahaEvent.Status.IGNORED
        WahaSession.objects.filter(pk=number.session.pk).update(groups_enabled=True)
    deliver(public_client, number, envelope("message", message_payload("G2", chat=group, participant=CHAT)))
    with in_tenant(tenant_a):
        message = Message.objects.get()
        assert message.conversation.contact.name.startswith("WhatsApp group")
        assert message.preview.startswith("Greta: ")
        # A reply from the inbox goes to the group.
        assert chat_id_for(message.conversation.contact) == group


def test_status_broadcasts_are_ignored(public_client, tenant_a, number):
    deliver(public_client, number, envelope("message", message_payload("S1", chat="status@broadcast")))
    with in_tenant(tenant_a):
        assert not Message.objects.exists()
        assert WahaEvent.objects.get().status == WahaEvent.Status.IGNORED


def test_an_event_of_another_session_name_is_ignored(public_client, tenant_a, number):
    deliver(public_client, number, envelope("message", message_payload(), session="someone-else"))
    with in_tenant(tenant_a):
        assert not Message.objects.exists()
        assert WahaEvent.objects.get().status == WahaEvent.Status.IGNORED


def test_a_revoked_message_is_shown_as_deleted(public_client, tenant_a, number):
    deliver(public_client, number, envelope("message", message_payload("R1")))
    revoked = {"revokedMessageId": f"false_{CHAT}_R1", "before": None, "after": None}
    deliver(public_client, number, envelope("message.revoked", revoked))
    deliver(public_client, number, envelope("message.revoked", revoked))
    with in_tenant(tenant_a):
        message = Message.objects.get()
        assert message.payload["revoked"] is True
        assert "deleted" in message.preview
        assert InboxEvent.objects.filter(payload__type="message.updated").count() == 1


def test_an_edited_message_gets_its_new_text_and_keeps_the_original(public_client, tenant_a, number):
    deliver(public_client, number, envelope("message", message_payload("E1", body="Meet at 5")))
    edited = {
        "id": "false_x_E1b",
        "from": CHAT,
        "fromMe": False,
        "body": "Meet at 6",
        "editedMessageId": f"false_{CHAT}_E1",
    }
    deliver(public_client, number, envelope("message.edited", edited))
    with in_tenant(tenant_a):
        message = Message.objects.get()
        assert message.text == "Meet at 6"
        assert message.payload["original_text"] == "Meet at 5"
        assert message.payload["edited_at"]
        assert message.preview == "Meet at 6"


def test_reactions_from_the_customer_and_from_the_phone(public_client, tenant_a, number):
    deliver(public_client, number, envelope("message", message_payload("T1")))
    reaction = {
        "id": f"false_{CHAT}_RX1",
        "from": CHAT,
        "fromMe": False,
        "reaction": {"text": "👍", "messageId": f"false_{CHAT}_T1"},
    }
    deliver(public_client, number, envelope("message.reaction", reaction))
    deliver(public_client, number, envelope("message.reaction", reaction))
    mine = {
        "id": f"true_{CHAT}_RX2",
        "from": ME,
        "fromMe": True,
        "reaction": {"text": "❤️", "messageId": f"false_{CHAT}_T1"},
    }
    deliver(public_client, number, envelope("message.reaction", mine))
    with in_tenant(tenant_a):
        target = Message.objects.get(wamid=f"false_{CHAT}_T1")
        assert target.reactions == {"contact": "👍", "business": "❤️"}
        reactions = Message.objects.filter(type=Message.Type.REACTION)
        assert reactions.count() == 1 and reactions.get().reply_to_id == target.pk


def test_a_reply_quotes_its_message_and_a_location_is_a_location(public_client, tenant_a, number):
    deliver(public_client, number, envelope("message", message_payload("Q1", body="Where are you?")))
    reply = message_payload(
        "Q2",
        body="",
        replyTo={"id": f"false_{CHAT}_Q1"},
        location={"latitude": 52.52, "longitude": "13.405", "description": "Shop"},
    )
    deliver(public_client, number, envelope("message", reply))
    with in_tenant(tenant_a):
        message = Message.objects.get(wamid=f"false_{CHAT}_Q2")
        assert message.type == Message.Type.LOCATION
        assert message.reply_to.wamid == f"false_{CHAT}_Q1"
        assert message.payload["location"]["latitude"] == 52.52
        assert message.preview == "📍 Shop"


def process_stored_events(tenant) -> None:
    """What the processing job does, here: its on-commit work (the download job) is queued, not run."""
    from django.test import TestCase

    from waha.events import process_waha_events

    with in_tenant(tenant), TestCase.captureOnCommitCallbacks(execute=True):
        process_waha_events.fn(list(WahaEvent.objects.values_list("pk", flat=True)))


@pytest.mark.parametrize(
    ("mimetype", "kind"),
    [
        ("image/jpeg", "image"),
        ("video/mp4", "video"),
        ("audio/ogg; codecs=opus", "audio"),
        ("application/pdf", "document"),
    ],
)
def test_media_is_stored_pending_with_a_download_job(public_client, tenant_a, number, mimetype, kind):
    media = {
        "url": "http://127.0.0.1:9/api/files/default/file.bin",
        "mimetype": mimetype,
        "filename": "file.bin",
    }
    payload = message_payload("M1", body="caption", hasMedia=True, media=media)
    assert post_signed_waha(public_client, number, envelope("message", payload)).status_code == 200
    queued_jobs()  # the processing job: run by hand below
    from tenants.jobs import broker

    broker.flush_all()
    process_stored_events(tenant_a)
    assert queued_jobs() == ["download_waha_media"]
    with in_tenant(tenant_a):
        message = Message.objects.get()
        assert message.type == kind and message.text == "caption"
        file = MediaFile.objects.get(message=message)
        assert file.status == MediaFile.Status.PENDING and file.kind == kind
        assert message.payload[kind]["url"] == media["url"]


def test_media_without_a_file_url_is_marked_failed_with_a_reason(public_client, tenant_a, number):
    deliver(public_client, number, envelope("message", message_payload("M3", hasMedia=True, media=None)))
    with in_tenant(tenant_a):
        file = MediaFile.objects.get()
        assert file.status == MediaFile.Status.FAILED and file.error


def test_a_session_status_event_updates_the_session(public_client, tenant_a, number):
    deliver(public_client, number, envelope("session.status", {"status": "SCAN_QR_CODE"}))
    with in_tenant(tenant_a):
        assert WahaSession.objects.get(pk=number.session.pk).status == "SCAN_QR_CODE"


def test_another_tenants_number_never_sees_the_message(public_client, tenant_a, tenant_b, number):
    make_waha_number(tenant_b, session="default", display_phone="+15550002222", me_id="15550002222@c.us")
    deliver(public_client, number, envelope("message", message_payload()))
    with in_tenant(tenant_b):
        assert not Message.objects.exists() and not WahaEvent.objects.exists()


def test_the_inbox_shows_a_deleted_message_as_deleted_and_an_edited_one_as_edited(
    public_client, client_a, tenant_a, owner_a, number
):
    deliver(public_client, number, envelope("message", message_payload("V1", body="secret plan")))
    deliver(public_client, number, envelope("message", message_payload("V2", body="Meet at 5")))
    revoked = {"revokedMessageId": f"false_{CHAT}_V1"}
    deliver(public_client, number, envelope("message.revoked", revoked))
    edited = {"body": "Meet at 6", "editedMessageId": f"false_{CHAT}_V2"}
    deliver(public_client, number, envelope("message.edited", edited))
    login(client_a, tenant_a, owner_a)
    with in_tenant(tenant_a):
        deleted, changed = Message.objects.order_by("id")
    page = client_a.get(f"/inbox/m/{deleted.pk}/").content.decode()
    assert "This message was deleted" in page and "secret plan" not in page
    page = client_a.get(f"/inbox/m/{changed.pk}/").content.decode()
    assert "Meet at 6" in page and "Edited" in page
