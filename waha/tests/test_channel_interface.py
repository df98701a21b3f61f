"""The channel interface, once per provider: the same calls through conversations (the reply path, the
adapter registry, the inbox and the API) against the Cloud API's sandbox and the WAHA sandbox, so both
providers stay equal where they should be and differ only by their declared capabilities (a WAHA number
has no templates, no interactive messages and no 24-hour window)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import pytest
from django.test import TestCase
from django.utils import timezone
from django_tenants.utils import schema_context

from conftest import login
from conversations import channels
from conversations.errors import MessageRejected
from conversations.models import Conversation, Message
from conversations.services import Draft, send_reply
from conversations.services.reading import indicate_typing
from crm.models import Contact
from tenants.db import connection
from waha.testing import deliver_webhooks, make_sandbox_number
from whatsapp.models import MessageTemplate
from whatsapp.testing import PNID_A, WABA_A, _sandbox_server, connect_number, deliver, run_jobs, sandbox  # noqa: F401 - the Graph API sandbox fixtures

CUSTOMER = "16505551234"
PNG = b"\x89PNG\r\n\x1a\n" + b"0" * 64
# What each provider declares; everything else in this module is the same for both.
EXPECTED = {
    "cloud_api": {"templates", "interactive", "reactions", "read_receipts", "typing", "service_window"},
    "waha": {"reactions", "read_receipts", "typing"},
}
WAHA_KINDS = {
    "sendText": "text",
    "sendImage": "image",
    "sendFile": "document",
    "sendVoice": "audio",
    "sendLocation": "location",
    "reaction": "reaction",
}


@dataclass
class Number:
    """A number of one provider, and what its provider saw."""

    provider: str
    channel: Any
    sandbox: Any
    session: str = ""

    def sent_kinds(self) -> list[str]:
        if self.provider == "cloud_api":
            return [s["body"]["type"] for s in self.sandbox.sent(PNID_A)]
        return [
            WAHA_KINDS[s["endpoint"]] for s in self.sandbox.sent(self.session) if s["endpoint"] in WAHA_KINDS
        ]

    def reaction_target(self) -> str:
        if self.provider == "cloud_api":
            return next(s["body"]["reaction"]["message_id"] for s in self.sandbox.sent(PNID_A))
        return next(s["body"]["messageId"] for s in self.sandbox.sent(self.session, "reaction"))

    def reads(self) -> list[tuple[str, bool]]:
        """(the message marked read, with "typing…")."""
        if self.provider == "cloud_api":
            with self.sandbox.lock:
                receipts = list(self.sandbox.state.read_receipts)
            return [(r["message_id"], "typing_indicator" in r) for r in receipts]
        typing = bool(self.sandbox.sent(self.session, "startTyping"))
        return [(s["body"]["messageIds"][0], typing) for s in self.sandbox.sent(self.session, "sendSeen")]


@pytest.fixture(params=["cloud_api", "waha"])
def number(request, tenant_a) -> Number:
    if request.param == "cloud_api":
        sandbox = request.getfixturevalue("sandbox")
        channel = connect_number(
            sandbox, tenant_a, PNID_A, WABA_A, "token-alpha", display_phone="+15550783881"
        )
        return Number("cloud_api", channel, sandbox)
    sandbox = request.getfixturevalue("waha_sandbox")
    waha = make_sandbox_number(sandbox, tenant_a, session="alpha-iface")
    return Number("waha", waha.channel, sandbox, session="alpha-iface")


def conversation_for(tenant: Any, number: Number, *, wrote_ago: dt.timedelta) -> Conversation:
    with schema_context(tenant.schema_name):
        contact = Contact.objects.create(
            name="Sheena", phone="+" + CUSTOMER, wa_id=CUSTOMER, last_inbound_at=timezone.now() - wrote_ago
        )
        return Conversation.objects.create(contact=contact, channel=number.channel)


@pytest.fixture
def conversation(tenant_a, number) -> Conversation:
    return conversation_for(tenant_a, number, wrote_ago=dt.timedelta(minutes=1))


def inbound(tenant: Any, conversation: Conversation, wamid: str) -> Message:
    with schema_context(tenant.schema_name):
        return Message.objects.create(
            conversation=conversation,
            direction="in",
            type="text",
            text="Hi",
            status="received",
            wamid=wamid,
            timestamp=timezone.now(),
        )


def reply(tenant: Any, conversation: Conversation, owner: Any, **draft: Any) -> Message:
    with schema_context(tenant.schema_name), TestCase.captureOnCommitCallbacks(execute=True):
        return send_reply(conversation=conversation, draft=Draft(**draft), by=owner)


def sent(tenant: Any, message: Message) -> Message:
    run_jobs()
    with schema_context(tenant.schema_name):
        found = Message.objects.get(pk=message.pk)
    assert found.status in ("sent", "delivered", "read"), found.error_title
    assert found.wamid
    return found


def test_capabilities_are_declared_by_the_provider(number):
    adapter = channels.adapter_for(number.channel)
    assert adapter.provider == number.provider
    assert set(adapter.capabilities) == EXPECTED[number.provider]
    for capability in channels.CAPABILITIES:
        assert channels.supports(number.channel, capability) == (capability in EXPECTED[number.provider])


def test_a_text_reply_is_sent_and_gets_the_providers_id(tenant_a, owner_a, number, conversation):
    message = sent(tenant_a, reply(tenant_a, conversation, owner_a, kind="text", text="Hello"))
    assert number.sent_kinds() == ["text"]
    with schema_context(tenant_a.schema_name):
        # The id is unique and is what acks and echoes are matched on.
        assert Message.objects.filter(wamid=message.wamid).count() == 1


def test_an_image_is_uploaded_through_the_adapter_and_sent(tenant_a, owner_a, number, conversation):
    adapter = channels.adapter_for(number.channel)
    with schema_context(tenant_a.schema_name):
        media = adapter.upload_media(
            channel=number.channel, content=PNG, filename="p.png", mime_type="image/png"
        )
    sent(tenant_a, reply(tenant_a, conversation, owner_a, kind="media", media=media, text="Look"))
    assert number.sent_kinds() == ["image"]


def test_a_reaction_names_the_customers_message(tenant_a, owner_a, number, conversation):
    target_id = "wamid.HBgTARGET" if number.provider == "cloud_api" else f"false_{CUSTOMER}@c.us_AAAA"
    target = inbound(tenant_a, conversation, target_id)
    sent(tenant_a, reply(tenant_a, conversation, owner_a, kind="reaction", target=target, emoji="👍"))
    assert number.sent_kinds() == ["reaction"] and number.reaction_target() == target_id
    with schema_context(tenant_a.schema_name):
        assert Message.objects.get(pk=target.pk).reactions == {"business": "👍"}


def test_marking_read_with_typing(tenant_a, number, conversation):
    target_id = "wamid.HBgREAD" if number.provider == "cloud_api" else f"false_{CUSTOMER}@c.us_BBBB"
    received = inbound(tenant_a, conversation, target_id)
    with schema_context(tenant_a.schema_name):
        channels.adapter_for(number.channel).enqueue_read_receipt(
            message_id=received.pk, schema=connection.schema_name, typing=True
        )
    run_jobs()
    assert number.reads() == [(target_id, True)]


def test_templates_only_where_the_provider_has_them(tenant_a, owner_a, number, conversation):
    with schema_context(tenant_a.schema_name):
        template = MessageTemplate.objects.create(
            waba_id=WABA_A,
            name="order_ready",
            language="en_US",
            category="UTILITY",
            status="APPROVED",
            components=[{"type": "BODY", "text": "Your order is ready."}],
        )
        listed = channels.adapter_for(number.channel).approved_templates(channel=number.channel)
    if number.provider == "cloud_api":
        assert listed == [template]
        sent(tenant_a, reply(tenant_a, conversation, owner_a, kind="template", template=template))
        assert number.sent_kinds() == ["template"]
        return
    assert listed == []
    with pytest.raises(MessageRejected) as caught:
        reply(tenant_a, conversation, owner_a, kind="template", template=template)
    assert caught.value.code == "templates_unsupported"
    with pytest.raises(MessageRejected) as caught:
        reply(tenant_a, conversation, owner_a, kind="template", template="order_ready")
    assert caught.value.code == "templates_unsupported"
    run_jobs()
    assert number.sent_kinds() == []
    with schema_context(tenant_a.schema_name):
        assert not Message.objects.filter(conversation=conversation).exists()


def test_interactive_messages_only_where_the_provider_has_them(tenant_a, owner_a, number, conversation):
    interactive = {
        "type": "button",
        "body": {"text": "Pick one"},
        "action": {"buttons": [{"type": "reply", "reply": {"id": "y", "title": "Yes"}}]},
    }
    if number.provider == "cloud_api":
        sent(tenant_a, reply(tenant_a, conversation, owner_a, kind="interactive", interactive=interactive))
        return
    with pytest.raises(MessageRejected) as caught:
        reply(tenant_a, conversation, owner_a, kind="interactive", interactive=interactive)
    assert caught.value.code == "interactive_unsupported"


def test_the_24_hour_window_binds_only_a_provider_that_has_it(tenant_a, owner_a, number):
    late = conversation_for(tenant_a, number, wrote_ago=dt.timedelta(days=2))
    if number.provider == "cloud_api":
        with pytest.raises(MessageRejected) as caught:
            reply(tenant_a, late, owner_a, kind="text", text="Still there?")
        assert caught.value.code == "outside_window"
        return
    sent(tenant_a, reply(tenant_a, late, owner_a, kind="text", text="Still there?"))
    assert number.sent_kinds() == ["text"]


def test_the_inbox_and_the_api_show_the_window_and_templates_per_provider(
    client_a, tenant_a, owner_a, number
):
    late = conversation_for(tenant_a, number, wrote_ago=dt.timedelta(days=2))
    login(client_a, tenant_a, owner_a)
    page = client_a.get(f"/inbox/c/{late.pk}/", HTTP_HX_REQUEST="true").content.decode()
    row = client_a.get(f"/api/v1/conversations/{late.pk}/").json()
    if number.provider == "cloud_api":
        assert "The 24-hour window closed" in page and 'data-window-open="0"' in page
        assert 'value="template"' in page
        assert row["window_open"] is False and row["window_closes_at"]
        return
    assert "24-hour" not in page and 'data-window-open="1"' in page
    assert 'value="template"' not in page
    assert row["window_open"] is True and row["window_closes_at"] is None


def test_the_start_composer_offers_free_text_on_a_number_without_a_window(
    client_a, tenant_a, owner_a, number
):
    with schema_context(tenant_a.schema_name):
        contact = Contact.objects.create(name="New", phone="+" + CUSTOMER, wa_id=CUSTOMER)
    login(client_a, tenant_a, owner_a)
    page = client_a.get(f"/inbox/start/{contact.pk}/?channel={number.channel.pk}").content.decode()
    if number.provider == "cloud_api":
        assert 'data-window="closed"' in page and 'id="start-text"' not in page
        return
    assert 'id="start-text"' in page and "24-hour" not in page


def test_the_providers_echo_and_ticks_come_back_to_the_one_sent_message(
    public_client, tenant_a, owner_a, number, conversation
):
    """The id stored at send time is the one the provider's webhooks name: the echo of our own send
    (WAHA's message.any) adds nothing, and the ticks advance on the sent message."""
    message = sent(tenant_a, reply(tenant_a, conversation, owner_a, kind="text", text="Tick me"))
    if number.provider == "cloud_api":
        for body in number.sandbox.wait_for_outbox(3):
            deliver(public_client, body)
    else:
        responses = deliver_webhooks(public_client, number.sandbox, wait_for=4)  # message.any and three acks
        assert all(r.status_code == 200 for r in responses)
        run_jobs()
    with schema_context(tenant_a.schema_name):
        # (besides the system line of the reply's auto-assignment)
        outbound = Message.objects.filter(conversation=conversation, direction="out").exclude(type="system")
        assert outbound.count() == 1
        assert outbound.get().pk == message.pk and outbound.get().status == "read"


def test_typing_on_an_old_message_only_without_a_window(tenant_a, owner_a, number):
    late = conversation_for(tenant_a, number, wrote_ago=dt.timedelta(days=2))
    old_id = "wamid.HBgOLD" if number.provider == "cloud_api" else f"false_{CUSTOMER}@c.us_OLD1"
    with schema_context(tenant_a.schema_name):
        Message.objects.create(
            conversation=late,
            direction="in",
            type="text",
            text="Hi",
            status="received",
            wamid=old_id,
            timestamp=timezone.now() - dt.timedelta(days=2),
        )
        with TestCase.captureOnCommitCallbacks(execute=True):
            queued = indicate_typing(conversation=late, by=owner_a)
    run_jobs()
    if number.provider == "cloud_api":
        assert queued is False and number.reads() == []  # no reply can go there: no "typing…"
        return
    assert queued is True and number.reads() == [(old_id, True)]
