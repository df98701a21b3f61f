"""A number also used in the WhatsApp Business app (coexistence): echoes of what the business sends from
the phone are stored once as outbound messages and never sent again, past chats are imported quietly and
idempotently, address-book names reach the contacts, and the number's throughput drops to 20/s."""

from __future__ import annotations

import datetime as dt
import json
import time
from typing import Any

import httpx
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_tenants.utils import schema_context

from conftest import login
from conversations.models import (
    AutoReplyRule,
    BotSettings,
    Channel,
    Conversation,
    InboxEvent,
    Message,
)
from crm.models import Contact
from whatsapp import delivery, limiter, payloads
from whatsapp.testing import CUSTOMER, PNID_A, deliver, post_webhook, queued_jobs, run_jobs

BUSINESS = "15550783881"


def _bot_on(tenant: Any) -> None:
    """A bot that would answer anything: nothing here may wake it."""
    with schema_context(tenant.schema_name):
        BotSettings.objects.update_or_create(
            pk=1, defaults={"welcome_enabled": True, "welcome_text": "Welcome!"}
        )
        AutoReplyRule.objects.create(keyword="hello", reply="Hi from the bot")


def echo(
    text: str = "Sent from my phone", *, wamid: str | None = None, to: str = CUSTOMER, **kw: Any
) -> dict:
    return payloads.echo_event(phone_number_id=PNID_A, to=to, text=text, business=BUSINESS, wamid=wamid, **kw)


# -- echoes ----------------------------------------------------------------------------------


def test_an_echo_is_stored_once_as_sent_from_the_business_app_and_never_sent(
    public_client: Any, tenant_a: Any, channel_a: Channel, conversation_a: Conversation, sandbox: Any
) -> None:
    _bot_on(tenant_a)
    body = echo("See you <b>tomorrow</b>", wamid="wamid.ECHO.1", timestamp=int(time.time()) - 5)
    deliver(public_client, body)
    deliver(public_client, body)  # Meta redelivers
    with schema_context(tenant_a.schema_name):
        message = Message.objects.get(wamid="wamid.ECHO.1")
        assert (message.direction, message.origin, message.status, message.sender_id) == (
            "out",
            "business_app",
            "sent",
            None,
        )
        assert message.conversation_id == conversation_a.pk
        assert message.text == "See you <b>tomorrow</b>"
        assert Message.objects.filter(conversation=conversation_a).count() == 1  # no bot answer
        conversation = Conversation.objects.get(pk=conversation_a.pk)
        assert conversation.unread_count == 0
        assert conversation.last_message_at == message.timestamp
        assert Channel.objects.get(pk=channel_a.pk).coexistence is True
        # The realtime inbox hears of it like any new message.
        assert (
            InboxEvent.objects.filter(payload__type="message.created", payload__message=message.pk).count()
            == 1
        )
    assert sandbox.sent() == []
    assert "send_message" not in queued_jobs()


def test_an_echo_is_shown_in_the_thread_as_sent_from_the_business_app_escaped(
    client_a: Any, public_client: Any, tenant_a: Any, owner_a: Any, conversation_a: Conversation
) -> None:
    deliver(public_client, echo("<script>alert(1)</script>", wamid="wamid.ECHO.2"))
    page = login(client_a, tenant_a, owner_a).get(f"/inbox/c/{conversation_a.pk}/")
    assert page.status_code == 200
    assert b"Sent from the WhatsApp Business app" in page.content
    assert b"<script>alert(1)</script>" not in page.content


def test_an_echo_to_a_new_customer_opens_a_conversation_without_the_bot(
    public_client: Any, tenant_a: Any, channel_a: Channel
) -> None:
    _bot_on(tenant_a)
    deliver(public_client, echo("Hello, your order is ready", wamid="wamid.ECHO.3", to="4915112345678"))
    with schema_context(tenant_a.schema_name):
        contact = Contact.objects.get(wa_id="4915112345678")
        assert contact.phone == "+4915112345678"
        assert contact.last_inbound_at is None  # an echo never opens the customer-service window
        conversation = Conversation.objects.get(contact=contact)
        assert conversation.bot_active is False
        assert list(conversation.messages.values_list("origin", "direction")) == [("business_app", "out")]


def test_an_echo_of_a_message_already_stored_adds_nothing(
    public_client: Any, tenant_a: Any, conversation_a: Conversation
) -> None:
    with schema_context(tenant_a.schema_name):
        Message.objects.create(
            conversation=conversation_a,
            direction="out",
            text="x",
            status="sent",
            wamid="wamid.KNOWN",
            timestamp=timezone.now(),
        )
    deliver(public_client, echo("x", wamid="wamid.KNOWN"))
    with schema_context(tenant_a.schema_name):
        assert Message.objects.filter(wamid="wamid.KNOWN").get().origin == ""


def test_an_echo_signed_with_another_secret_or_for_an_unknown_number_stores_nothing(
    public_client: Any, tenant_a: Any, channel_a: Channel
) -> None:
    assert post_webhook(public_client, echo(wamid="wamid.ECHO.4"), secret="not-the-secret").status_code in (
        401,
        403,
    )
    other = payloads.echo_event(phone_number_id="999000111", to=CUSTOMER, text="x", wamid="wamid.ECHO.5")
    assert post_webhook(public_client, other).status_code in (200, 403)
    run_jobs()
    with schema_context(tenant_a.schema_name):
        assert not Message.objects.filter(wamid__in=["wamid.ECHO.4", "wamid.ECHO.5"]).exists()
        assert Channel.objects.get(pk=channel_a.pk).coexistence is False


def test_a_status_of_an_echo_arriving_first_applies_when_the_echo_is_stored(
    public_client: Any, tenant_a: Any, conversation_a: Conversation
) -> None:
    status = payloads.event(
        phone_number_id=PNID_A,
        statuses=[payloads.status(wamid="wamid.ECHO.6", status="read", recipient=CUSTOMER)],
    )
    deliver(public_client, status)
    deliver(public_client, echo("x", wamid="wamid.ECHO.6"))
    with schema_context(tenant_a.schema_name):
        message = Message.objects.get(wamid="wamid.ECHO.6")
        assert message.status == "read" and message.read_at is not None


# -- history ----------------------------------------------------------------------------------


def _history(threads: dict[str, list[tuple[str, bool, int]]], **kw: Any) -> dict:
    return payloads.history_event(
        phone_number_id=PNID_A,
        business=BUSINESS,
        threads={
            wa_id: [
                payloads.history_message(
                    customer=wa_id,
                    business=BUSINESS,
                    text=text,
                    from_me=from_me,
                    timestamp=at,
                    wamid=f"wamid.H.{wa_id}.{at}",
                )
                for text, from_me, at in items
            ]
            for wa_id, items in threads.items()
        },
        **kw,
    )


def test_history_imports_past_chats_with_their_times_and_directions_quietly_and_once(
    public_client: Any, tenant_a: Any, channel_a: Channel, sandbox: Any
) -> None:
    _bot_on(tenant_a)
    day = int((timezone.now() - dt.timedelta(days=30)).timestamp())
    body = _history(
        {
            "4915112345678": [("hello, do you ship?", False, day), ("Yes, everywhere", True, day + 60)],
            "919876543210": [("price?", False, day + 100)],
        },
        progress=55,
    )
    deliver(public_client, body)
    deliver(public_client, body)  # redelivered
    with schema_context(tenant_a.schema_name):
        german = Contact.objects.get(wa_id="4915112345678")
        conversation = Conversation.objects.get(contact=german)
        assert conversation.status == "resolved" and conversation.unread_count == 0
        assert conversation.bot_active is False
        assert conversation.created_at == dt.datetime.fromtimestamp(day, tz=dt.UTC)
        assert conversation.last_message_at == dt.datetime.fromtimestamp(day + 60, tz=dt.UTC)
        rows = list(
            conversation.messages.order_by("timestamp").values_list("direction", "text", "status", "origin")
        )
        assert rows == [
            ("in", "hello, do you ship?", "received", "history"),
            ("out", "Yes, everywhere", "read", "history"),
        ]
        assert Message.objects.count() == 3  # nothing twice, no bot reply
        assert not InboxEvent.objects.exists()  # no realtime storm
        assert german.last_inbound_at == dt.datetime.fromtimestamp(day, tz=dt.UTC)
        assert Channel.objects.get(pk=channel_a.pk).coexistence is True
    assert sandbox.sent() == []


def test_history_adds_to_an_existing_conversation_without_reopening_or_unread(
    public_client: Any, tenant_a: Any, conversation_a: Conversation
) -> None:
    with schema_context(tenant_a.schema_name):
        Conversation.objects.filter(pk=conversation_a.pk).update(status="resolved", unread_count=0)
    day = int((timezone.now() - dt.timedelta(days=3)).timestamp())
    deliver(
        public_client, _history({CUSTOMER: [("old question", False, day), ("old answer", True, day + 5)]})
    )
    with schema_context(tenant_a.schema_name):
        conversation = Conversation.objects.get(pk=conversation_a.pk)
        assert (conversation.status, conversation.unread_count) == ("resolved", 0)
        assert conversation.messages.count() == 2
        assert Conversation.objects.count() == 1


def test_a_realtime_message_already_imported_from_history_is_not_stored_twice(
    public_client: Any, tenant_a: Any, channel_a: Channel
) -> None:
    at = int(time.time()) - 60
    deliver(public_client, _history({CUSTOMER: [("hi", False, at)]}))
    deliver(
        public_client,
        payloads.text_event(
            phone_number_id=PNID_A, wa_id=CUSTOMER, text="hi", wamid=f"wamid.H.{CUSTOMER}.{at}"
        ),
    )
    with schema_context(tenant_a.schema_name):
        assert Message.objects.count() == 1


def test_a_large_history_chunk_is_imported_in_a_bounded_number_of_statements(
    public_client: Any, tenant_a: Any, channel_a: Channel
) -> None:
    from whatsapp.parsing import load_body
    from whatsapp.services import process_changes

    base = int((timezone.now() - dt.timedelta(days=60)).timestamp())
    threads = {
        f"4917{i:08d}": [(f"message {j}", j % 2 == 1, base + i * 10 + j) for j in range(6)]
        for i in range(250)
    }
    changes = load_body(_history(threads))
    with schema_context(tenant_a.schema_name):
        channel = Channel.objects.get(pk=channel_a.pk)
        with CaptureQueriesContext(connection) as queries:
            process_changes([(channel, change) for change in changes])
        assert Message.objects.count() == 1500
        assert Conversation.objects.count() == 250
        assert len(queries) < 20, len(queries)  # 13 today: a few per thousand messages, none per chat


def test_a_declined_history_share_is_logged_and_stores_nothing(
    public_client: Any, tenant_a: Any, channel_a: Channel
) -> None:
    body = payloads.number_event(
        phone_number_id=PNID_A,
        field="history",
        value={
            "history": [
                {"errors": [{"code": 2593109, "title": "History sync is turned off by the business"}]}
            ]
        },
    )
    deliver(public_client, body)
    with schema_context(tenant_a.schema_name):
        assert not Message.objects.exists()


@pytest.mark.parametrize(
    "value",
    [
        {"history": "nope"},
        {"history": [{"threads": [{"id": "<b>", "messages": [{"id": 5}]}, "x"]}]},
        {"message_echoes": [{"from": BUSINESS, "id": "wamid.X", "type": "text", "text": {"body": "no to"}}]},
        {"state_sync": [{"type": "contact", "contact": "bad"}]},
    ],
)
def test_malformed_coexistence_changes_store_nothing_and_never_fail_the_event(
    public_client: Any, tenant_a: Any, channel_a: Channel, value: dict
) -> None:
    from tenants.models import WebhookEvent

    field = next(
        iter(
            {
                "history": "history",
                "message_echoes": "smb_message_echoes",
                "state_sync": "smb_app_state_sync",
            }[k]
            for k in value
        )
    )
    deliver(public_client, payloads.number_event(phone_number_id=PNID_A, field=field, value=value))
    with schema_context("public"):
        assert WebhookEvent.objects.get().status == "processed"
    with schema_context(tenant_a.schema_name):
        assert not Message.objects.exists()


# -- address book ----------------------------------------------------------------------------------


def test_app_state_sync_names_contacts_and_adds_new_ones(
    public_client: Any, tenant_a: Any, conversation_a: Conversation
) -> None:
    deliver(
        public_client,
        payloads.app_state_event(
            phone_number_id=PNID_A, contacts={CUSTOMER: "Sheena Nelson", "4915112345678": "Jonas"}
        ),
    )
    deliver(
        public_client,
        payloads.app_state_event(phone_number_id=PNID_A, contacts={CUSTOMER: "Gone"}, action="remove"),
    )
    with schema_context(tenant_a.schema_name):
        assert Contact.objects.get(wa_id=CUSTOMER).name == "Sheena Nelson"
        assert Contact.objects.get(wa_id="4915112345678").name == "Jonas"


# -- throughput ----------------------------------------------------------------------------------


def test_a_coexistence_number_sends_at_most_20_messages_a_second(
    tenant_a: Any, conversation_a: Conversation, channel_a: Channel, monkeypatch: Any
) -> None:
    from django.test import TestCase

    from conversations.services import send_text_message

    caps: list[int] = []
    real = limiter.acquire

    def acquire(**kwargs: Any) -> Any:
        caps.append(kwargs["cap"])
        return real(**kwargs)

    monkeypatch.setattr(delivery.limiter, "acquire", acquire)
    with schema_context(tenant_a.schema_name):
        Channel.objects.filter(pk=channel_a.pk).update(throughput_cap=80)
        with TestCase.captureOnCommitCallbacks(execute=True):
            send_text_message(conversation=conversation_a, text="one")
        run_jobs()
        Channel.objects.filter(pk=channel_a.pk).update(coexistence=True)
        with TestCase.captureOnCommitCallbacks(execute=True):
            send_text_message(conversation=conversation_a, text="two")
        run_jobs()
        assert Channel.objects.get(pk=channel_a.pk).send_rate_cap == 20
    assert caps == [80, 20]


# -- the sandbox ----------------------------------------------------------------------------------


def test_the_sandbox_emits_signed_echo_and_history_webhooks(
    public_client: Any, tenant_a: Any, channel_a: Channel, sandbox: Any
) -> None:
    response = httpx.post(
        f"{sandbox.base}/_sandbox/echo",
        json={"phone_number_id": PNID_A, "to": CUSTOMER, "text": "from the phone"},
    )
    assert response.status_code == 200
    response = httpx.post(
        f"{sandbox.base}/_sandbox/history",
        json={"phone_number_id": PNID_A, "threads": {"4915112345678": [{"text": "old", "from_me": True}]}},
    )
    assert response.status_code == 200
    bodies = sandbox.wait_for_outbox(2)
    assert [json.loads(b)["entry"][0]["changes"][0]["field"] for b in bodies] == [
        "smb_message_echoes",
        "history",
    ]
    for body in bodies:
        deliver(public_client, body)
    with schema_context(tenant_a.schema_name):
        assert list(Message.objects.order_by("id").values_list("text", "origin")) == [
            ("from the phone", "business_app"),
            ("old", "history"),
        ]


def test_a_photo_sent_from_the_phone_is_downloaded_like_a_customers(
    public_client: Any, tenant_a: Any, channel_a: Channel, sandbox: Any
) -> None:
    from conversations.models import MediaFile

    media_id = sandbox.add_media(b"\x89PNG\r\n\x1a\n" + b"0" * 64, "image/png")
    body = echo(wamid="wamid.ECHO.IMG")
    item = body["entry"][0]["changes"][0]["value"]["message_echoes"][0]
    item.update(
        {"type": "image", "image": {"id": media_id, "mime_type": "image/png", "caption": "the receipt"}}
    )
    item.pop("text")
    deliver(public_client, body)
    with schema_context(tenant_a.schema_name):
        message = Message.objects.get(wamid="wamid.ECHO.IMG")
        assert (message.type, message.text, message.origin) == ("image", "the receipt", "business_app")
        assert MediaFile.objects.get(message=message).status == "ready"
