"""Processing of inbound webhooks (fixtures written from Meta's documented payloads)."""

from __future__ import annotations

import datetime as dt
import time

import pytest
from django.utils import timezone
from django_tenants.utils import schema_context

from conversations.models import Conversation, MediaFile, Message
from crm.models import Contact
from whatsapp import parsing, payloads
from whatsapp.models import PendingStatus
from whatsapp.testing import CUSTOMER, PNID_A, PNID_B, WABA_A, deliver, fixture

EXPECTED = {
    "text": ("text", "Does it come in another color?"),
    "image": ("image", "📷 Photo: This is the one"),
    "video": ("video", "🎥 Video: Unboxing"),
    "audio": ("audio", "🎵 Audio"),
    "voice": ("audio", "🎤 Voice message"),
    "document": ("document", "📄 lucky-shrub-invoice.pdf: Lucky Shrub Invoice"),
    "sticker": ("sticker", "Sticker"),
    "location": ("location", "📍 Philz Coffee"),
    "contacts": ("contacts", "👤 John Smith"),
    "interactive_button_reply": ("interactive", "Change"),
    "interactive_list_reply": ("interactive", "Priority Mail Express"),
    "button": ("button", "Unsubscribe"),
    "reaction": ("reaction", "Reacted 👍"),
    "reaction_removed": ("reaction", "Removed a reaction"),
    "order": ("order", "🛒 Order: 2 items"),
    "system": ("system", "User Sheena Nelson changed from 16505551234 to 16505550000"),
    "unsupported": ("unsupported", "Unsupported message: Message type unknown"),
    "reply": ("text", "Yes, this one"),
    "forwarded": ("text", "Look at this deal"),
    "referral": ("text", "Hi, I saw your ad"),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_inbound_type_is_stored_with_a_structured_payload_and_a_preview(
    name, public_client, channel_a, tenant_a
):
    raw = fixture(name)
    deliver(public_client, raw)
    raw_message = raw["entry"][0]["changes"][0]["value"]["messages"][0]
    with schema_context(tenant_a.schema_name):
        message = Message.objects.get(wamid=raw_message["id"])
        assert (message.type, message.preview) == EXPECTED[name]
        assert message.direction == Message.Direction.INBOUND
        assert message.status == Message.Status.RECEIVED
        assert message.timestamp == dt.datetime.fromtimestamp(int(raw_message["timestamp"]), tz=dt.UTC)
        assert message.payload["type"] == raw_message["type"]
        if raw_message["type"] in raw_message:
            assert message.payload[raw_message["type"]] == raw_message[raw_message["type"]]
        assert message.conversation.contact.wa_id == CUSTOMER


def test_media_messages_get_a_download_job(public_client, channel_a, tenant_a):
    deliver_only = payloads.encode(fixture("image"))
    from whatsapp.testing import post_webhook, run_jobs

    post_webhook(public_client, deliver_only)
    ran = run_jobs(only={"process_webhook_events"})
    assert ran == ["process_webhook_events"]
    with schema_context(tenant_a.schema_name):
        media = MediaFile.objects.get()
        assert (media.kind, media.media_id, media.mime_type) == ("image", "1003383421387256", "image/jpeg")


def test_a_reply_keeps_a_link_to_the_quoted_message(public_client, conversation_a, tenant_a):
    wamid = fixture("reply")["entry"][0]["changes"][0]["value"]["messages"][0]["context"]["id"]
    with schema_context(tenant_a.schema_name):
        quoted = Message.objects.create(
            conversation=conversation_a,
            direction="out",
            text="Blue or green?",
            wamid=wamid,
            timestamp=timezone.now(),
        )
    deliver(public_client, fixture("reply"))
    with schema_context(tenant_a.schema_name):
        assert Message.objects.get(text="Yes, this one").reply_to == quoted


def test_forwarded_flag_and_ad_referral_are_kept(public_client, channel_a, tenant_a):
    deliver(public_client, fixture("forwarded"))
    deliver(public_client, fixture("referral"))
    with schema_context(tenant_a.schema_name):
        assert Message.objects.get(text="Look at this deal").is_forwarded
        referral = Message.objects.get(text="Hi, I saw your ad").payload["referral"]
        assert referral["source_type"] == "ad" and referral["ctwa_clid"].startswith("ARAk")


def test_a_reaction_attaches_to_its_target_and_removing_it_clears_it(public_client, conversation_a, tenant_a):
    target = fixture("reaction")["entry"][0]["changes"][0]["value"]["messages"][0]["reaction"]["message_id"]
    with schema_context(tenant_a.schema_name):
        Message.objects.create(
            conversation=conversation_a,
            direction="out",
            text="Your order shipped",
            wamid=target,
            timestamp=timezone.now(),
        )
    deliver(public_client, fixture("reaction"))
    with schema_context(tenant_a.schema_name):
        assert Message.objects.get(wamid=target).reactions == {"contact": "👍"}
        assert Message.objects.get(type="reaction").reply_to.wamid == target
    deliver(public_client, fixture("reaction_removed"))
    with schema_context(tenant_a.schema_name):
        assert Message.objects.get(wamid=target).reactions == {}


def test_the_same_wamid_delivered_many_times_is_one_message(public_client, channel_a, tenant_a):
    for _ in range(3):
        deliver(public_client, fixture("text"))
    with schema_context(tenant_a.schema_name):
        assert Message.objects.count() == 1
        assert Conversation.objects.get().unread_count == 1


def test_the_contact_is_upserted_by_wa_id_and_the_profile_name_fills_an_empty_name_only(
    public_client, channel_a, tenant_a
):
    body = payloads.event(
        phone_number_id=PNID_A,
        contacts=[payloads.contact("447911123456", "Profile Name", user_id="GB.13491208655302741918")],
        messages=[payloads.message(wa_id="447911123456", type="text", content={"body": "hi"})],
    )
    deliver(public_client, body)
    with schema_context(tenant_a.schema_name):
        contact = Contact.objects.get()
        assert (contact.phone, contact.wa_id, contact.name) == (
            "+447911123456",
            "447911123456",
            "Profile Name",
        )
        assert contact.whatsapp_user_id == "GB.13491208655302741918"
        contact.name = "Edited By Staff"
        contact.save()
    body["entry"][0]["changes"][0]["value"]["contacts"][0]["profile"]["name"] = "New Profile"
    body["entry"][0]["changes"][0]["value"]["messages"][0]["id"] = payloads.new_wamid()
    deliver(public_client, body)
    with schema_context(tenant_a.schema_name):
        assert Contact.objects.get().name == "Edited By Staff"
        assert Conversation.objects.count() == 1


def test_a_resolved_conversation_is_reopened_by_a_new_message(public_client, conversation_a, tenant_a):
    with schema_context(tenant_a.schema_name):
        Conversation.objects.filter(pk=conversation_a.pk).update(
            status="resolved", resolved_at=timezone.now()
        )
    deliver(public_client, fixture("text"))
    with schema_context(tenant_a.schema_name):
        conversation = Conversation.objects.get()
        assert conversation.status == Conversation.Status.OPEN
        assert conversation.resolved_at is None
        assert conversation.unread_count == 1
        assert conversation.messages.count() == 1


def test_messages_are_ordered_by_metas_timestamp_not_arrival(public_client, channel_a, tenant_a):
    now = int(timezone.now().timestamp())
    later = payloads.text_event(phone_number_id=PNID_A, wa_id=CUSTOMER, text="second", timestamp=now)
    earlier = payloads.text_event(phone_number_id=PNID_A, wa_id=CUSTOMER, text="first", timestamp=now - 30)
    deliver(public_client, later)
    deliver(public_client, earlier)
    with schema_context(tenant_a.schema_name):
        assert [m.text for m in Conversation.objects.get().messages.all()] == ["first", "second"]
        assert Contact.objects.get().last_inbound_at.timestamp() == now


def test_a_number_of_tenant_a_never_lands_in_tenant_b(
    public_client, channel_a, channel_b, tenant_a, tenant_b
):
    deliver(public_client, payloads.text_event(phone_number_id=PNID_A, wa_id=CUSTOMER, text="for alpha"))
    deliver(public_client, payloads.text_event(phone_number_id=PNID_B, wa_id=CUSTOMER, text="for beta"))
    with schema_context(tenant_a.schema_name):
        assert list(Message.objects.values_list("text", flat=True)) == ["for alpha"]
    with schema_context(tenant_b.schema_name):
        assert list(Message.objects.values_list("text", flat=True)) == ["for beta"]


def test_one_number_cannot_be_connected_to_two_tenants(channel_a, tenant_b, sandbox):
    from whatsapp.services import ChannelError, connect_channel

    # Even with a token Meta lets read the number (it moved accounts, or a shared system user): the
    # platform operator decides.
    sandbox.add_number(PNID_A, waba_id=WABA_A, tokens=["token-alpha", "token-shared"])
    with pytest.raises(ChannelError) as error:
        connect_channel(tenant=tenant_b, phone_number_id=PNID_A, waba_id=WABA_A, access_token="token-shared")
    assert error.value.code == "number_taken"


# -- statuses ------------------------------------------------------------------------------------------

OUT = fixture("status_sent")["entry"][0]["changes"][0]["value"]["statuses"][0]["id"]


def _outbound(conversation, **fields):
    defaults = {
        "direction": "out",
        "text": "hello",
        "status": "sent",
        "wamid": OUT,
        "timestamp": timezone.now(),
    }
    return Message.objects.create(conversation=conversation, **{**defaults, **fields})


@pytest.mark.parametrize(
    ("name", "status"),
    [
        ("status_sent", "sent"),
        ("status_delivered", "delivered"),
        ("status_read", "read"),
        ("status_played", "played"),
    ],
)
def test_each_status_moves_the_message_forward(name, status, public_client, conversation_a, tenant_a):
    with schema_context(tenant_a.schema_name):
        _outbound(conversation_a, status="queued")
    deliver(public_client, fixture(name))
    with schema_context(tenant_a.schema_name):
        assert Message.objects.get(wamid=OUT).status == status


def test_a_failed_status_keeps_code_title_and_details(public_client, conversation_a, tenant_a):
    with schema_context(tenant_a.schema_name):
        _outbound(conversation_a)
    deliver(public_client, fixture("status_failed"))
    with schema_context(tenant_a.schema_name):
        message = Message.objects.get(wamid=OUT)
        assert (message.status, message.error_code, message.error_title) == (
            "failed",
            131047,
            "Re-engagement message",
        )
        assert "24 hours" in message.error_details


def test_out_of_order_statuses_never_go_back(public_client, conversation_a, tenant_a):
    with schema_context(tenant_a.schema_name):
        _outbound(conversation_a)
    for name in ("status_read", "status_delivered", "status_sent", "status_failed"):
        deliver(public_client, fixture(name))
    with schema_context(tenant_a.schema_name):
        message = Message.objects.get(wamid=OUT)
        assert message.status == "read"
        assert message.delivered_at is not None and message.read_at is not None
        assert message.error_code is None


def test_a_status_before_its_message_is_kept_and_applied_when_the_message_appears(
    public_client, conversation_a, tenant_a
):
    from whatsapp.delivery import record_message_sent

    deliver(public_client, fixture("status_delivered"))
    with schema_context(tenant_a.schema_name):
        assert PendingStatus.objects.get().status == "delivered"
        message = _outbound(conversation_a, status="queued", wamid=None)
        record_message_sent(message_id=message.pk, wamid=OUT)
        message.refresh_from_db()
        assert message.status == "delivered"
        assert PendingStatus.objects.count() == 0


def _events(*bodies: dict) -> list[int]:
    from whatsapp.services import record_webhook_events
    from whatsapp.webhook import Accepted

    # Stored as the signature check accepts them: for the numbers they name.
    return record_webhook_events(
        accepted=[
            Accepted(
                body=payloads.encode(b),
                phone_number_ids=sorted({t.phone_number_id for t in parsing.targets(b) if t.phone_number_id}),
            )
            for b in bodies
        ]
    )


def test_a_batch_of_events_from_several_senders_is_processed_in_one_job(channel_a, tenant_a):
    from tenants.models import WebhookEvent
    from whatsapp.services import process_webhook_events

    bodies = [
        payloads.text_event(phone_number_id=PNID_A, wa_id=f"44790000000{i % 3}", text=f"batch {i}")
        for i in range(7)
    ]
    unknown = payloads.text_event(phone_number_id="999999999999999", wa_id="447900000009", text="nobody's")
    ids = _events(*bodies, unknown)

    assert process_webhook_events(event_ids=ids).failed == []

    statuses = dict(WebhookEvent.objects.filter(pk__in=ids).values_list("pk", "status"))
    assert [statuses[i] for i in ids] == ["processed"] * 7 + ["unrouted"]
    with schema_context(tenant_a.schema_name):
        texts = list(Message.objects.order_by("timestamp", "id").values_list("text", flat=True))
        assert sorted(texts) == sorted(f"batch {i}" for i in range(7))
        assert Conversation.objects.count() == 3
        for i in range(3):
            own = Message.objects.filter(conversation__contact__wa_id=f"44790000000{i}").order_by("id")
            # One sender's messages keep their order within the batch.
            assert list(own.values_list("text", flat=True)) == [f"batch {n}" for n in range(i, 7, 3)]


def test_a_failing_event_in_a_batch_holds_up_none_of_the_others(channel_a, tenant_a, monkeypatch):
    from tenants.models import WebhookEvent
    from whatsapp import services

    real = services.ingest_messages

    def flaky(inbound):
        if any(message.text == "poison" for _, message, _ in inbound):
            raise RuntimeError("cannot process this one")
        return real(inbound)

    monkeypatch.setattr(services.webhooks, "ingest_messages", flaky)
    ids = _events(
        payloads.text_event(phone_number_id=PNID_A, wa_id="447900000001", text="before"),
        payloads.text_event(phone_number_id=PNID_A, wa_id="447900000002", text="poison"),
        payloads.text_event(phone_number_id=PNID_A, wa_id="447900000003", text="after"),
    )

    assert services.process_webhook_events(event_ids=ids).failed == [ids[1]]

    events = {e.pk: e for e in WebhookEvent.objects.filter(pk__in=ids)}
    assert [events[i].status for i in ids] == ["processed", "pending", "processed"]
    assert "cannot process this one" in events[ids[1]].error
    assert events[ids[1]].attempts == 1
    with schema_context(tenant_a.schema_name):
        assert sorted(Message.objects.values_list("text", flat=True)) == ["after", "before"]


def _statements(event_ids: list[int]) -> list[str]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from whatsapp.services import process_webhook_events

    with CaptureQueriesContext(connection) as queries:
        assert process_webhook_events(event_ids=event_ids).failed == []
    return [query["sql"][:120] for query in queries.captured_queries]


def test_a_batch_of_known_senders_takes_the_same_statements_whatever_its_size(channel_a, tenant_a):
    senders = [f"4479000001{i:02d}" for i in range(30)]
    # Each batch a second later than the one before, so every sender's window moves (an UPDATE) in both.
    start = int(time.time()) - 60

    def batch(wa_ids: list[str], second: int) -> list[int]:
        return _events(
            *(
                payloads.text_event(phone_number_id=PNID_A, wa_id=w, text="hi", timestamp=start + second)
                for w in wa_ids
            )
        )

    # Every sender has written before: their contacts and conversations exist.
    assert _statements(batch(senders, 0))

    small = _statements(batch(senders[:3], 1))
    large = _statements(batch(senders, 2))

    assert len(small) == len(large), "\n".join(["small:", *small, "large:", *large])
    with schema_context(tenant_a.schema_name):
        assert Message.objects.filter(direction="in").count() == 63
        assert Conversation.objects.count() == 30
        assert set(Conversation.objects.values_list("unread_count", flat=True)) == {2, 3}


def test_in_one_batch_a_new_sender_gets_one_contact_one_conversation_and_one_welcome(channel_a, tenant_a):
    from conversations.models import BotSettings

    with schema_context(tenant_a.schema_name):
        BotSettings.objects.update_or_create(pk=1, defaults={"welcome_enabled": True, "welcome_text": "Hi!"})
    ids = _events(
        *(
            payloads.text_event(phone_number_id=PNID_A, wa_id="447900000555", text=f"hello {i}")
            for i in range(3)
        )
    )

    assert _statements(ids)

    with schema_context(tenant_a.schema_name):
        assert Contact.objects.filter(wa_id="447900000555").count() == 1
        conversation = Conversation.objects.get(contact__wa_id="447900000555")
        inbound = conversation.messages.filter(direction="in").order_by("id")
        assert list(inbound.values_list("text", flat=True)) == ["hello 0", "hello 1", "hello 2"]
        assert conversation.unread_count == 3
        assert list(conversation.messages.filter(direction="out").values_list("text", flat=True)) == ["Hi!"]


def test_a_reply_to_a_message_of_the_same_batch_links_to_it_and_a_duplicate_is_stored_once(
    channel_a, tenant_a
):
    first = payloads.text_event(phone_number_id=PNID_A, wa_id=CUSTOMER, text="first", wamid="wamid.first")
    reply = payloads.text_event(
        phone_number_id=PNID_A, wa_id=CUSTOMER, text="about that", wamid="wamid.reply"
    )
    reply["entry"][0]["changes"][0]["value"]["messages"][0]["context"] = {
        "from": CUSTOMER,
        "id": "wamid.first",
    }

    assert _statements(_events(first, reply, first))

    with schema_context(tenant_a.schema_name):
        assert Message.objects.filter(wamid="wamid.first").count() == 1
        assert Message.objects.get(wamid="wamid.reply").reply_to == Message.objects.get(wamid="wamid.first")


def test_a_batch_reopens_a_resolved_conversation_and_publishes_each_message(conversation_a, tenant_a):
    from conversations.models import InboxEvent

    with schema_context(tenant_a.schema_name):
        Conversation.objects.filter(pk=conversation_a.pk).update(status="resolved")
    ids = _events(
        *(payloads.text_event(phone_number_id=PNID_A, wa_id=CUSTOMER, text=f"back {i}") for i in range(2))
    )

    assert _statements(ids)

    with schema_context(tenant_a.schema_name):
        assert Conversation.objects.get(pk=conversation_a.pk).status == "open"
        kinds = [
            e.payload["type"] for e in InboxEvent.objects.filter(conversation=conversation_a).order_by("id")
        ]
        # The fixture's conversation says the bot is on, in a tenant with no bot: the bot, with nothing
        # to say, hands it to the agents' queue (conversations.bot.answer).
        assert kinds == ["message.created", "message.created", "conversation.reopened", "conversation.bot"]


def test_one_job_takes_every_fresh_event_and_a_queued_job_needs_no_second(channel_a, tenant_a):
    from tenants.models import WebhookEvent
    from whatsapp.actors import wake_webhook_processing
    from whatsapp.testing import queued_jobs, run_jobs

    ids = _events(
        *(payloads.text_event(phone_number_id=PNID_A, wa_id=f"44790000070{i}", text="hi") for i in range(3))
    )
    for _ in ids:
        assert wake_webhook_processing()
    assert queued_jobs() == ["process_webhook_events"]

    run_jobs()

    assert set(WebhookEvent.objects.filter(pk__in=ids).values_list("status", flat=True)) == {"processed"}
    # The round has started: an event committed now needs a job of its own.
    assert wake_webhook_processing()
    assert queued_jobs() == ["process_webhook_events"]


def test_an_event_that_failed_once_is_left_to_the_sweeper_not_taken_as_fresh(channel_a, tenant_a):
    from tenants.models import WebhookEvent
    from whatsapp.actors import enqueue_webhook_events, wake_webhook_processing
    from whatsapp.testing import run_jobs

    [failed] = _events(payloads.text_event(phone_number_id=PNID_A, wa_id=CUSTOMER, text="again"))
    WebhookEvent.objects.filter(pk=failed).update(attempts=1, error="boom")

    wake_webhook_processing()
    run_jobs()
    assert WebhookEvent.objects.get(pk=failed).status == "pending"

    enqueue_webhook_events(event_ids=[failed])  # as the sweeper does
    run_jobs()
    assert WebhookEvent.objects.get(pk=failed).status == "processed"


def test_a_job_arriving_while_the_drain_is_busy_is_served_by_its_next_round(monkeypatch):
    import threading

    from whatsapp import actors, services

    first_round_running, finish_first_round = threading.Event(), threading.Event()
    rounds: list[list[int]] = []

    def process(*, event_ids: list[int], fresh: int, cache: object) -> services.EventsOutcome:
        rounds.append(event_ids)
        if len(rounds) == 1:
            first_round_running.set()
            finish_first_round.wait(10)
        return services.EventsOutcome(taken=event_ids, failed=[])

    monkeypatch.setattr(services, "process_webhook_events", process)
    drain = actors._Drain()
    busy = threading.Thread(target=drain.run, args=([1],))
    busy.start()
    assert first_round_running.wait(10)

    assert drain.run([2]) == []  # returns at once: the running drain takes it
    finish_first_round.set()
    busy.join(10)

    # The second round took event 2 (and looked for fresh events) instead of ending.
    assert rounds == [[1], [2]]
    assert not drain.busy


def test_a_drain_that_hands_over_leaves_a_job_for_events_committed_during_its_last_round(
    monkeypatch, channel_a, tenant_a
):
    """Under load a drain runs rounds back to back until DRAIN_SECONDS, then hands over to a new job.
    Events committed during its last round set the wake flag and queue a job; when that job reaches
    this busy drain it returns at once without a round, so the flag it leaves must not stop the
    hand-over from queueing a job (the events would wait for the sweeper: seen in the campaign
    benchmark as statuses stuck pending after the last webhook)."""
    from tenants.jobs import broker
    from tenants.models import WebhookEvent
    from whatsapp import actors, services
    from whatsapp.testing import queued_jobs, run_jobs

    real = services.process_webhook_events
    late: list[int] = []

    def process(**kwargs: object) -> services.EventsOutcome:
        outcome = real(**kwargs)  # type: ignore[arg-type]
        if not late:
            # The web stores an event meanwhile and wakes processing; the job it queued is taken by
            # this process's busy drain (handed over, no round of its own).
            late.extend(_events(payloads.text_event(phone_number_id=PNID_A, wa_id=CUSTOMER, text="late")))
            assert actors.wake_webhook_processing()
            broker.flush_all()
            assert actors._drain.run([]) == []
        return outcome

    monkeypatch.setattr(services, "process_webhook_events", process)
    monkeypatch.setattr(actors, "DRAIN_SECONDS", 0.0)
    assert actors._drain.run([]) == []

    assert queued_jobs() == ["process_webhook_events"]
    monkeypatch.setattr(services, "process_webhook_events", real)
    run_jobs()
    assert WebhookEvent.objects.get(pk=late[0]).status == "processed"
