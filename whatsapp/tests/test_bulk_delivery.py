"""The bulk sender (whatsapp.delivery.deliver_bulk): several sends of one number per job, claimed together
before any HTTP, sent over the pooled client, results written together; today's guarantees kept."""

from __future__ import annotations

import datetime as dt

import pytest
import redis
from django.test import TestCase
from django.utils import timezone
from django_tenants.utils import schema_context

from conversations.models import Conversation, Message
from conversations.services import send_template_message, send_text_message
from crm.models import Contact
from whatsapp import actors, delivery
from whatsapp.models import MessageTemplate, NumberHealth
from whatsapp.testing import PNID_A, WABA_A, queued_jobs, run_jobs


@pytest.fixture
def in_alpha(tenant_a):
    with schema_context(tenant_a.schema_name):
        yield


def audience(channel, count: int) -> list[Conversation]:
    """`count` contacts who wrote a minute ago, each with a conversation on the number."""
    conversations = []
    for number in range(count):
        contact = Contact.objects.create(
            name=f"Customer {number}",
            phone=f"+1650555{number:04d}",
            wa_id=f"1650555{number:04d}",
            last_inbound_at=timezone.now() - dt.timedelta(minutes=1),
        )
        conversations.append(Conversation.objects.create(contact=contact, channel=channel))
    return conversations


def send_bulk(conversations, text="Campaign", **kwargs) -> list[Message]:
    with TestCase.captureOnCommitCallbacks(execute=True):
        return [send_text_message(conversation=c, text=text, bulk=True, **kwargs) for c in conversations]


def template(name="spring_sale", category="MARKETING") -> MessageTemplate:
    return MessageTemplate.objects.create(
        waba_id=WABA_A,
        name=name,
        language="en_US",
        category=category,
        status="APPROVED",
        components=[{"type": "BODY", "text": "Hello {{1}}"}],
    )


def send_bulk_template(conversations, tpl) -> list[Message]:
    with TestCase.captureOnCommitCallbacks(execute=True):
        return [
            send_template_message(conversation=c, template=tpl.pk, parameters=["Ann"], bulk=True)
            for c in conversations
        ]


def test_one_bulk_job_sends_several_queued_messages_of_the_number(channel_a, in_alpha, sandbox):
    messages = send_bulk(audience(channel_a, 6))
    assert queued_jobs() == ["send_bulk_number"]  # one job for the number, not one per message
    run_jobs(max_jobs=1)
    assert len(sandbox.sent(PNID_A)) == 6  # the job took them all
    assert queued_jobs() == []  # nothing left: it did not enqueue itself again
    assert len(sandbox.sent(PNID_A)) == 6
    wamids = {s["body"]["biz_opaque_callback_data"]: s["wamid"] for s in sandbox.sent()}
    for message in messages:
        message.refresh_from_db()
        assert message.status == "sent" and message.send_attempts == 1
        assert message.wamid == wamids[f"wacrm:{message.pk}"]
        assert message.send_started_at is None and message.sent_at is not None


def test_a_batch_is_at_most_what_the_number_sends_in_half_a_second(channel_a, in_alpha, sandbox, settings):
    channel_a.throughput_cap = 4  # 4/s → batches of 2
    channel_a.save(update_fields=["throughput_cap"])
    settings.WHATSAPP_BULK_SHARE = 1.0
    settings.WHATSAPP_BULK_BATCH_SECONDS = 0.5
    messages = send_bulk(audience(channel_a, 5))
    assert delivery.deliver_bulk(message_id=messages[3].pk) == []
    assert [s["body"]["biz_opaque_callback_data"] for s in sandbox.sent()] == [
        f"wacrm:{messages[3].pk}",  # the job's own message first
        f"wacrm:{messages[0].pk}",
    ]


def test_a_cancelled_message_is_never_sent(channel_a, in_alpha, sandbox):
    messages = send_bulk(audience(channel_a, 3))
    Message.objects.filter(pk=messages[1].pk).update(status=Message.Status.CANCELLED)
    run_jobs()
    assert len(sandbox.sent()) == 2
    assert f"wacrm:{messages[1].pk}" not in {s["body"]["biz_opaque_callback_data"] for s in sandbox.sent()}
    messages[1].refresh_from_db()
    assert messages[1].status == "cancelled" and not messages[1].wamid


def test_a_message_another_batch_claimed_is_left_alone(channel_a, in_alpha, sandbox):
    messages = send_bulk(audience(channel_a, 3))
    Message.objects.filter(pk=messages[2].pk).update(send_started_at=timezone.now())
    run_jobs()
    assert len(sandbox.sent()) == 2
    messages[2].refresh_from_db()
    assert messages[2].status == "queued" and messages[2].send_attempts == 0


def test_a_claim_left_by_a_dead_worker_fails_visibly_and_is_never_resent(channel_a, in_alpha, sandbox):
    (message,) = send_bulk(audience(channel_a, 1))
    abandoned = timezone.now() - delivery.CLAIM_TIMEOUT - dt.timedelta(seconds=1)
    Message.objects.filter(pk=message.pk).update(send_started_at=abandoned, send_attempts=1)
    run_jobs()
    message.refresh_from_db()
    assert (message.status, message.error_title) == ("failed", delivery.INTERRUPTED_TITLE)
    assert sandbox.sent() == []


def test_a_message_with_a_wamid_is_never_sent_again(channel_a, in_alpha, sandbox):
    (message,) = send_bulk(audience(channel_a, 1))
    run_jobs()
    Message.objects.filter(pk=message.pk).update(status=Message.Status.QUEUED)  # even if it looked queued
    assert delivery.deliver_bulk(message_id=message.pk) == []
    assert len(sandbox.sent()) == 1


def test_two_campaign_messages_to_one_contact_are_six_seconds_apart_not_a_131056(
    channel_a, in_alpha, sandbox
):
    (conversation,) = audience(channel_a, 1)
    first, second = send_bulk([conversation, conversation])
    again = delivery.deliver_bulk(message_id=first.pk)
    assert len(sandbox.sent()) == 1  # one per conversation per batch
    assert delivery.deliver_bulk(message_id=second.pk) == [delivery.Requeue(second.pk, delivery.PAIR_SECONDS)]
    second.refresh_from_db()
    assert second.status == "queued" and second.send_attempts == 0
    assert second.next_attempt_at >= timezone.now() + dt.timedelta(seconds=5)
    assert again == [] and len(sandbox.sent()) == 1


def test_an_agent_reply_defers_the_campaign_message_to_that_contact(conversation_a, in_alpha, sandbox):
    with TestCase.captureOnCommitCallbacks(execute=True):
        send_text_message(conversation=conversation_a, text="Agent here")
    run_jobs()
    (campaign,) = send_bulk([conversation_a])
    assert delivery.deliver_bulk(message_id=campaign.pk)[0].delay == delivery.PAIR_SECONDS
    assert len(sandbox.sent()) == 1


def test_the_sandboxs_status_webhooks_move_bulk_messages_to_read(channel_a, tenant_a, sandbox, public_client):
    from whatsapp.testing import deliver

    with schema_context(tenant_a.schema_name):
        messages = send_bulk(audience(channel_a, 3))
        run_jobs()
    for body in sandbox.wait_for_outbox(9):
        deliver(public_client, body)
    with schema_context(tenant_a.schema_name):
        assert {m.status for m in Message.objects.filter(pk__in=[m.pk for m in messages])} == {"read"}


def test_the_numbers_throughput_level_sets_its_cap(channel_a, in_alpha):
    delivery._number_settings.clear()
    assert delivery.number_settings(channel_a) == (80, False)
    NumberHealth.objects.create(channel=channel_a, throughput="HIGH", marketing_messages_onboarded=True)
    delivery._number_settings.clear()
    assert delivery.number_settings(channel_a) == (1000, True)
    channel_a.coexistence = True
    delivery._number_settings.clear()
    assert delivery.number_settings(channel_a) == (20, True)
    delivery._number_settings.clear()


def test_marketing_templates_of_an_onboarded_number_go_to_the_marketing_messages_api(
    channel_a, in_alpha, sandbox
):
    delivery._number_settings.clear()
    NumberHealth.objects.create(channel=channel_a, marketing_messages_onboarded=True)
    conversations = audience(channel_a, 3)
    send_bulk_template(conversations[:1], template())
    send_bulk_template(conversations[1:2], template("receipt", "UTILITY"))
    with TestCase.captureOnCommitCallbacks(execute=True):
        send_text_message(conversation=conversations[2], text="And a reply")
    run_jobs()
    delivery._number_settings.clear()
    endpoints = {
        (s["body"]["type"], s["body"].get("template", {}).get("name")): s["endpoint"] for s in sandbox.sent()
    }
    assert endpoints == {
        ("template", "spring_sale"): "marketing_messages",
        ("template", "receipt"): "messages",
        ("text", None): "messages",
    }


def test_a_number_not_onboarded_sends_marketing_templates_to_messages(channel_a, in_alpha, sandbox):
    delivery._number_settings.clear()
    send_bulk_template(audience(channel_a, 1), template())
    run_jobs()
    assert [s["endpoint"] for s in sandbox.sent()] == ["messages"]


def test_a_second_job_of_a_number_ends_at_once_while_one_runs(
    channel_a, tenant_a, in_alpha, sandbox, settings
):
    client = redis.Redis.from_url(settings.REDIS_URL)
    running = actors._number_flag("running", tenant_a.schema_name, channel_a.pk)
    client.set(running, 1)  # another worker's job of the number is sending
    send_bulk(audience(channel_a, 2))
    run_jobs()
    assert sandbox.sent() == []  # the second job ended at once
    client.delete(running)
    actors.send_bulk_number.fn(channel_a.pk)  # the next job of the number (or the running one, looking again)
    run_jobs()
    assert len(sandbox.sent(PNID_A)) == 2
    assert queued_jobs() == []
