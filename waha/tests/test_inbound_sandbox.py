"""Inbound end to end against the WAHA sandbox: its signed webhooks, its ids, its echoes and acks."""

from __future__ import annotations

from django_tenants.utils import schema_context

from conversations import services
from conversations.models import Conversation, MediaFile, Message
from crm.models import Contact, ContactIdentity
from waha.models import WahaEvent
from waha.testing import deliver_webhooks
from whatsapp.testing import run_jobs

CUSTOMER = "+4915112345678"


def receive(client, sandbox, **run) -> None:
    for response in deliver_webhooks(client, sandbox):
        assert response.status_code == 200, response.content
    run_jobs(**run)


def test_a_customers_message_from_the_sandbox_is_stored_once(
    public_client, tenant_a, waha_number_a, waha_sandbox
):
    session = waha_number_a.session.session
    ident = waha_sandbox.emit_inbound(session, CUSTOMER, "Hello from the sandbox", name="Greta")
    receive(public_client, waha_sandbox)  # `message` and `message.any`: one message
    with schema_context(tenant_a.schema_name):
        message = Message.objects.get()
        assert (message.wamid, message.text, message.direction) == (ident, "Hello from the sandbox", "in")
        assert message.conversation.contact.phone == CUSTOMER
        assert message.conversation.contact.name == "Greta"
        assert WahaEvent.objects.filter(status=WahaEvent.Status.PROCESSED).count() == 2


def test_our_reply_its_echo_and_its_acks_make_one_read_message(
    public_client, tenant_a, waha_number_a, waha_sandbox, django_capture_on_commit_callbacks
):
    session = waha_number_a.session.session
    waha_sandbox.emit_inbound(session, CUSTOMER, "Do you deliver?")
    receive(public_client, waha_sandbox)
    with schema_context(tenant_a.schema_name), django_capture_on_commit_callbacks(execute=True):
        conversation = Conversation.objects.get()
        reply = services.send_text_message(conversation=conversation, text="Yes, every day.")
    run_jobs()  # the send: the sandbox answers with WAHA's id, echoes it and acks it (SERVER, DEVICE, READ)
    receive(public_client, waha_sandbox)
    with schema_context(tenant_a.schema_name):
        outbound = Message.objects.filter(direction=Message.Direction.OUTBOUND)
        assert list(outbound.values_list("pk", flat=True)) == [reply.pk]
        assert outbound.get().status == Message.Status.READ


def test_a_message_typed_on_the_phone_shows_once_as_outbound(
    public_client, tenant_a, waha_number_a, waha_sandbox
):
    session = waha_number_a.session.session
    ident = waha_sandbox.emit_from_phone(session, CUSTOMER, "Typed on the phone")
    receive(public_client, waha_sandbox)
    with schema_context(tenant_a.schema_name):
        message = Message.objects.get()
        assert (message.wamid, message.direction, message.origin) == (ident, "out", "business_app")
        assert message.status == Message.Status.READ  # its acks followed


def test_revoke_and_edit_named_by_bare_ids_find_their_message(
    public_client, tenant_a, waha_number_a, waha_sandbox
):
    session = waha_number_a.session.session
    first = waha_sandbox.emit_inbound(session, CUSTOMER, "delete me")
    second = waha_sandbox.emit_inbound(session, CUSTOMER, "Meet at 5")
    receive(public_client, waha_sandbox)
    waha_sandbox.emit_revoked(session, first)
    waha_sandbox.emit_edited(session, second, "Meet at 6")
    receive(public_client, waha_sandbox)
    with schema_context(tenant_a.schema_name):
        assert Message.objects.get(wamid=first).payload["revoked"] is True
        assert Message.objects.get(wamid=second).text == "Meet at 6"
        assert not WahaEvent.objects.exclude(status=WahaEvent.Status.PROCESSED).exists()


def test_a_reaction_from_the_sandbox_lands_on_its_message(
    public_client, tenant_a, waha_number_a, waha_sandbox
):
    session = waha_number_a.session.session
    ident = waha_sandbox.emit_inbound(session, CUSTOMER, "Nice?")
    receive(public_client, waha_sandbox)
    waha_sandbox.emit_reaction(session, CUSTOMER, ident, "🎉")
    receive(public_client, waha_sandbox)
    with schema_context(tenant_a.schema_name):
        assert Message.objects.get(wamid=ident).reactions == {"contact": "🎉"}


def test_an_at_lid_sender_with_its_number_joins_the_numbers_contact(
    public_client, tenant_a, waha_number_a, waha_sandbox
):
    session = waha_number_a.session.session
    waha_sandbox.emit_inbound(session, CUSTOMER, "by number")
    receive(public_client, waha_sandbox)
    waha_sandbox.emit_inbound(session, CUSTOMER, "by lid", lid="98765432109876")
    receive(public_client, waha_sandbox)
    with schema_context(tenant_a.schema_name):
        contact = Contact.objects.get()
        assert contact.phone == CUSTOMER
        assert ContactIdentity.objects.get(contact=contact).value == "98765432109876@lid"
        assert Message.objects.filter(conversation__contact=contact).count() == 2


def test_a_photo_from_the_sandbox_is_downloaded_with_the_api_key(
    public_client, tenant_a, waha_number_a, waha_sandbox
):
    session = waha_number_a.session.session
    photo = b"\xff\xd8\xff\xe0" + b"jpeg" * 100
    media = {"content": photo, "mimetype": "image/jpeg", "filename": "photo.jpg"}
    waha_sandbox.emit_inbound(session, CUSTOMER, "look", media=media)
    receive(public_client, waha_sandbox)
    with schema_context(tenant_a.schema_name):
        message = Message.objects.get()
        assert message.type == "image"
        file = MediaFile.objects.get(message=message)
        assert file.status == MediaFile.Status.READY, file.error
        with file.file.open("rb") as handle:
            assert handle.read() == photo
