"""Status webhooks are applied a round at a time: campaign traffic brings three per message."""

from __future__ import annotations

import datetime as dt
import random
import time

from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_tenants.utils import schema_context

from conversations.models import Conversation, InboxEvent, Message
from crm.models import Contact
from tenants.models import WebhookEvent
from whatsapp import payloads
from whatsapp.models import PendingStatus
from whatsapp.services import process_webhook_events, record_webhook_events
from whatsapp.testing import PNID_A
from whatsapp.webhook import Accepted


def _outbound(tenant, count: int, prefix: str) -> list[Message]:
    with schema_context(tenant.schema_name):
        messages = []
        for i in range(count):
            phone = f"+4479{prefix}{i:07d}"
            contact = Contact.objects.create(name=f"c{prefix}{i}", phone=phone, wa_id=phone[1:])
            conversation = Conversation.objects.create(contact=contact, channel_id=_channel_id())
            messages.append(
                Message.objects.create(
                    conversation=conversation,
                    direction="out",
                    type="template",
                    text="hello",
                    status="sent",
                    wamid=payloads.new_wamid(),
                    timestamp=timezone.now(),
                    bulk=True,
                )
            )
        return messages


def _channel_id() -> int:
    from conversations.models import Channel

    return Channel.objects.get(phone_number_id=PNID_A).pk


def _round(statuses: list[dict]) -> list[str]:
    """One webhook event carrying `statuses`, processed; the SQL statements it took."""
    body = payloads.event(phone_number_id=PNID_A, statuses=statuses)
    ids = record_webhook_events(accepted=[Accepted(body=payloads.encode(body), phone_number_ids=[PNID_A])])
    with CaptureQueriesContext(connection) as queries:
        assert process_webhook_events(event_ids=ids).failed == []
    assert WebhookEvent.objects.get(pk=ids[0]).status == "processed"
    return [query["sql"][:120] for query in queries.captured_queries]


def _three_each(messages: list[Message], start: int, unknown: int = 0) -> list[dict]:
    """sent, delivered and read for each message (shuffled: Meta does not promise their order), plus
    a delivered status for each of `unknown` wamids we never sent."""
    statuses = [
        payloads.status(
            wamid=m.wamid, status=s, recipient=m.conversation.contact.wa_id, timestamp=start + offset
        )
        for m in messages
        for offset, s in enumerate(("sent", "delivered", "read"))
    ]
    statuses += [
        payloads.status(wamid=payloads.new_wamid(), status="delivered", recipient="447900000000")
        for _ in range(unknown)
    ]
    random.Random(7).shuffle(statuses)
    return statuses


def test_a_round_of_statuses_takes_the_same_statements_whatever_its_size(channel_a, tenant_a):
    small = _outbound(tenant_a, 3, "1")
    large = _outbound(tenant_a, 40, "2")
    start = int(time.time()) - 60

    with schema_context(tenant_a.schema_name):
        few = _round(_three_each(small, start, unknown=1))
        many = _round(_three_each(large, start, unknown=10))
        assert len(few) == len(many), "\n".join(["small:", *few, "large:", *many])
        # One locked read, one UPDATE, the realtime events and the pending statuses: not one per status.
        assert len(many) < 30, "\n".join(many)

        for message in Message.objects.filter(pk__in=[m.pk for m in small + large]):
            assert message.status == "read"
            assert message.delivered_at is not None and message.read_at is not None
            assert message.delivered_at < message.read_at
            assert (message.pricing_category, message.billable, message.pricing_market) == (
                "service",
                True,
                "GB",
            )
        assert PendingStatus.objects.filter(status="delivered").count() == 11
        # One realtime event per changed message and round, with its final status.
        updates = [e.payload for e in InboxEvent.objects.filter(payload__type="message.updated")]
        assert len(updates) == 43
        assert {u["status"] for u in updates} == {"read"}


def test_in_one_round_a_late_delivered_never_takes_a_read_back_and_failed_keeps_its_error(
    channel_a, tenant_a
):
    read, failing = _outbound(tenant_a, 2, "3")
    start = int(time.time()) - 60
    error = {
        "code": 131026,
        "title": "Message undeliverable",
        "error_data": {"details": "Unable to deliver the message."},
    }
    with schema_context(tenant_a.schema_name):
        _round(
            [
                payloads.status(
                    wamid=read.wamid, status="read", recipient="447930000000", timestamp=start + 2
                ),
                payloads.status(
                    wamid=read.wamid, status="delivered", recipient="447930000000", timestamp=start + 1
                ),
                payloads.status(
                    wamid=failing.wamid, status="failed", recipient="447930000001", errors=[error]
                ),
            ]
        )
        # A later round with an older status changes nothing.
        _round(
            [payloads.status(wamid=read.wamid, status="delivered", recipient="447930000000", timestamp=start)]
        )
        read.refresh_from_db()
        failing.refresh_from_db()
    assert read.status == "read"
    assert read.delivered_at is not None and read.delivered_at.timestamp() == start + 1
    assert (failing.status, failing.error_code, failing.error_title) == (
        "failed",
        131026,
        "Message undeliverable",
    )
    assert failing.error_details == "Unable to deliver the message."


def _unrecorded(tenant, count: int, prefix: str) -> list[tuple[Message, str]]:
    """Outbound messages Meta accepted whose answer is not recorded yet (no wamid, a send in flight),
    each with the wamid Meta gave it."""
    messages = _outbound(tenant, count, prefix)
    with schema_context(tenant.schema_name):
        Message.objects.filter(pk__in=[m.pk for m in messages]).update(
            wamid=None, status="queued", send_started_at=timezone.now()
        )
    return [(m, payloads.new_wamid()) for m in messages]


def test_an_early_status_adopts_only_a_message_of_its_own_number_and_keeps_statuses_seen_before(
    channel_a, tenant_a
):
    from conversations.models import Channel

    (mine, wamid), (other, other_wamid) = _unrecorded(tenant_a, 2, "7")
    start = int(time.time()) - 60
    with schema_context(tenant_a.schema_name):
        elsewhere = Channel.objects.create(
            phone_number_id="999000111222", waba_id="1", display_phone="+1 555 000 9999"
        )
        Conversation.objects.filter(pk=other.conversation_id).update(channel=elsewhere)
        # A delivered status came in an earlier round without our opaque id: kept pending.
        PendingStatus.objects.create(
            wamid=wamid,
            status="delivered",
            timestamp=dt.datetime.fromtimestamp(start + 1, tz=dt.UTC),
            payload={},
        )

        _round(
            [
                payloads.status(
                    wamid=wamid, status="sent", recipient="", timestamp=start, opaque=f"wacrm:{mine.pk}"
                ),
                payloads.status(
                    wamid=other_wamid,
                    status="sent",
                    recipient="",
                    timestamp=start,
                    opaque=f"wacrm:{other.pk}",
                ),
            ]
        )

        mine.refresh_from_db()
        other.refresh_from_db()
        assert (mine.wamid, mine.status) == (wamid, "delivered")  # the pending delivered applied too
        assert other.wamid is None  # another number's statuses never adopt it
        assert not PendingStatus.objects.filter(wamid=wamid).exists()
        assert PendingStatus.objects.filter(wamid=other_wamid).count() == 1
