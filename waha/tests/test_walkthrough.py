"""The `make run` walkthrough against the WAHA sandbox, every part real but the phone: link a number by
"scanning" its QR code, receive a message, answer it from the inbox's reply path, see the ticks; then
lose the connection and get it back. Webhooks go from the sandbox to our webhook through the test client
(the sandbox's outbox), jobs run in this thread."""

from __future__ import annotations

from typing import Any

from django.core.management import call_command
from django.test import TestCase
from django_tenants.utils import schema_context

from conversations.models import Channel, Conversation, Message
from conversations.services import Draft, send_reply
from crm.models import Contact
from waha import sessions
from waha.models import WahaSession
from waha.sandbox import Sandbox
from waha.testing import deliver_webhooks
from whatsapp.testing import run_jobs

CUSTOMER = "+15557654321"


def deliver(client: Any, sandbox: Sandbox, *, wait_for: int = 0) -> None:
    """WAHA's webhooks reach our app (each answered 200), then the workers process them."""
    responses = deliver_webhooks(client, sandbox, wait_for=wait_for)
    assert all(r.status_code == 200 for r in responses), [(r.status_code, r.content) for r in responses]
    with TestCase.captureOnCommitCallbacks(execute=True):
        run_jobs()


def test_link_by_qr_receive_answer_and_see_the_ticks(
    tenant_a: Any, owner_a: Any, waha_sandbox: Sandbox, public_client: Any
) -> None:
    # Settings → WhatsApp numbers → Link with QR code, on the platform's WAHA server (the sandbox).
    connected = sessions.connect(tenant=tenant_a, server_url="", api_key="", session="alpha-shop")
    assert connected.webhook_url.endswith(f"/webhooks/waha/{connected.waha_session.webhook_id}/")
    assert connected.waha_session.status == "SCAN_QR_CODE"
    with schema_context(tenant_a.schema_name):
        assert sessions.client_for(connected.waha_session).get_qr("alpha-shop").startswith("2@")
    deliver(public_client, waha_sandbox)

    # The phone scans it: session.status WORKING reaches our webhook; the number is ready.
    waha_sandbox.link("alpha-shop", phone="+15550001111", push_name="Alpha Shop")
    deliver(public_client, waha_sandbox)
    with schema_context(tenant_a.schema_name):
        waha = WahaSession.objects.get(pk=connected.waha_session.pk)
        assert (waha.status, waha.me_id) == ("WORKING", "15550001111@c.us")
        channel = Channel.objects.get(pk=connected.channel.pk)
        assert channel.status == Channel.Status.ACTIVE and channel.display_phone == "+15550001111"

    # A customer writes (make manage ARGS="simulate_inbound ... --number +15550001111").
    call_command("simulate_inbound", tenant="alpha", number="+15550001111", sender=CUSTOMER, text="Hi there")
    deliver(public_client, waha_sandbox)
    with schema_context(tenant_a.schema_name):
        contact = Contact.objects.get(phone=CUSTOMER)
        conversation = Conversation.objects.get(contact=contact, channel=channel)
        inbound = Message.objects.get(conversation=conversation, direction="in")
        assert inbound.text == "Hi there"

        # Answered from the inbox's reply path, like any Cloud API conversation.
        with TestCase.captureOnCommitCallbacks(execute=True):
            reply = send_reply(conversation=conversation, draft=Draft(kind="text", text="Hello!"), by=owner_a)
    run_jobs()
    sent = waha_sandbox.sent("alpha-shop", endpoint="sendText")
    assert [(s["chat_id"], s["body"]["text"]) for s in sent] == [("15557654321@c.us", "Hello!")]

    # The echo (message.any, fromMe) and the acks come back: one outbound message, read.
    deliver(public_client, waha_sandbox, wait_for=4)
    with schema_context(tenant_a.schema_name):
        assert [m.pk for m in Message.objects.filter(conversation=conversation, text="Hello!")] == [reply.pk]
        reply.refresh_from_db()
        assert reply.wamid == sent[0]["id"] and reply.status == "read"


def test_a_dropped_connection_is_reported_and_a_restart_brings_it_back(
    tenant_a: Any, waha_sandbox: Sandbox, public_client: Any
) -> None:
    connected = sessions.connect(tenant=tenant_a, server_url="", api_key="", session="alpha-shop")
    waha_sandbox.link("alpha-shop")
    deliver(public_client, waha_sandbox)

    waha_sandbox.disconnect("alpha-shop")
    deliver(public_client, waha_sandbox)
    with schema_context(tenant_a.schema_name):
        waha = WahaSession.objects.get(pk=connected.waha_session.pk)
        assert waha.status == "FAILED" and waha.next_reconnect_at is not None
        assert Channel.objects.get(pk=connected.channel.pk).status != Channel.Status.ACTIVE
        sessions.reconnect(waha_session=waha)
    deliver(public_client, waha_sandbox)
    with schema_context(tenant_a.schema_name):
        assert WahaSession.objects.get(pk=connected.waha_session.pk).status == "WORKING"
        assert Channel.objects.get(pk=connected.channel.pk).status == Channel.Status.ACTIVE
