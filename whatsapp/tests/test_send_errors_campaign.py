"""Meta's send errors on campaign (bulk) traffic, against the Graph API sandbox: 130429 slows the number
down, 131049 is not retried for a day, 131048 stops the number and nothing more of it is sent, 131056
waits 4^n seconds."""

from __future__ import annotations

import pytest
import redis
from django.utils import timezone
from django_tenants.utils import schema_context

from conversations.models import Channel, Message
from whatsapp import delivery
from whatsapp.testing import PNID_A, run_jobs
from whatsapp.tests.test_bulk_delivery import audience, send_bulk, send_bulk_template, template


@pytest.fixture
def in_alpha(tenant_a):
    with schema_context(tenant_a.schema_name):
        yield


def booked_ahead(settings, schema: str) -> float:
    """Seconds until the number's next free send slot."""
    client = redis.Redis.from_url(settings.REDIS_URL)
    tat = int(client.get(f"wacrm:wa:rate:{schema}:{PNID_A}") or 0)
    seconds, micros = client.time()
    return (tat - (seconds * 1_000_000 + micros)) / 1_000_000


def test_130429_retries_the_message_and_pauses_the_whole_number(
    channel_a, tenant_a, in_alpha, sandbox, settings
):
    settings.WHATSAPP_THROTTLED_PAUSE_SECONDS = 5.0
    sandbox.fail(130429)
    (message,) = send_bulk(audience(channel_a, 1))
    again = delivery.deliver_bulk(message_id=message.pk)
    message.refresh_from_db()
    assert message.status == "queued" and message.error_code == 130429
    assert again and again[0].message_id == message.pk and again[0].delay > 0
    assert booked_ahead(settings, tenant_a.schema_name) > 4  # no send from the number for ~5 s
    # Bulk takes no slot meanwhile; an agent reply (max wait 1 s) would not either.
    from whatsapp import limiter

    assert not limiter.acquire(
        schema=tenant_a.schema_name, phone_number_id=PNID_A, cap=80, bulk=True
    ).reserved
    assert not limiter.acquire(schema=tenant_a.schema_name, phone_number_id=PNID_A, cap=80).reserved


def test_131049_fails_without_retry_and_refuses_another_marketing_message_for_a_day(
    channel_a, in_alpha, sandbox
):
    conversations = audience(channel_a, 2)
    sale = template()
    sandbox.fail(131049, to=conversations[0].contact.wa_id)
    first = send_bulk_template(conversations, sale)
    run_jobs()
    first[0].refresh_from_db()
    assert (first[0].status, first[0].error_code) == ("failed", 131049)
    assert len(sandbox.sent()) == 1  # the other contact's
    assert delivery.marketing_limited(contact_id=conversations[0].contact_id)
    # A second campaign the same day: refused before any request for that contact.
    Message.objects.filter(pk=first[0].pk).update(created_at=timezone.now())
    (second,) = send_bulk_template(conversations[:1], sale)
    run_jobs()
    second.refresh_from_db()
    assert (second.status, second.error_code) == ("failed", 131049)
    assert len(sandbox.sent()) == 1
    # A utility template is not a marketing message: it still goes.
    (receipt,) = send_bulk_template(conversations[:1], template("receipt", "UTILITY"))
    run_jobs()
    receipt.refresh_from_db()
    assert receipt.status == "sent", receipt.error_title


def test_131048_stops_the_number_and_its_queued_campaign_messages_are_not_sent(
    channel_a, in_alpha, sandbox, settings
):
    settings.WHATSAPP_SEND_CONCURRENCY = 1
    delivery._pool = None  # one request at a time: the error arrives before the next request goes
    try:
        messages = send_bulk(audience(channel_a, 5))
        sandbox.fail(131048)
        delivery.deliver_bulk(message_id=messages[0].pk)
        run_jobs()
    finally:
        delivery._pool = None
    channel_a.refresh_from_db()
    assert channel_a.status == Channel.Status.DISABLED
    statuses = [m.status for m in Message.objects.filter(pk__in=[m.pk for m in messages]).order_by("pk")]
    assert statuses == ["failed"] * 5
    assert len(sandbox.sent()) <= 1  # at most a request already in flight; none after the answer
    failed = Message.objects.filter(pk__in=[m.pk for m in messages]).exclude(error_code=131048)
    assert all("disabled" in m.error_title for m in failed)  # visibly: the number stopped


def test_131056_pair_rate_limit_waits_4_to_the_n_seconds_in_a_batch(channel_a, in_alpha, sandbox):
    sandbox.fail(131056)
    (message,) = send_bulk(audience(channel_a, 1))
    assert delivery.deliver_bulk(message_id=message.pk) == [delivery.Requeue(message.pk, 4.0)]
    message.refresh_from_db()
    assert message.status == "queued" and message.error_code == 131056
