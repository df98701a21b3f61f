"""Status webhooks are applied a round at a time: campaign traffic brings three per message."""

from __future__ import annotations

import datetime as dt
import random
import threading
import time

import pytest
from django.db import connection, transaction
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


@pytest.mark.parametrize("record", ["batch", "one"])
def test_a_failed_status_that_adopted_the_message_keeps_its_error_when_the_send_result_is_written(
    channel_a, tenant_a, record
):
    from whatsapp.delivery import record_message_sent, record_messages_sent

    [(message, wamid)] = _unrecorded(tenant_a, 1, "8" if record == "batch" else "9")
    error = {"code": 131026, "title": "Message undeliverable", "error_data": {"details": "Not on WhatsApp."}}
    with schema_context(tenant_a.schema_name):
        _round(
            [
                payloads.status(
                    wamid=wamid, status="failed", recipient="", opaque=f"wacrm:{message.pk}", errors=[error]
                )
            ]
        )
        if record == "batch":
            record_messages_sent(sent=[(message.pk, wamid)])
        else:
            record_message_sent(message_id=message.pk, wamid=wamid)
        message.refresh_from_db()
    assert (message.wamid, message.status, message.error_code) == (wamid, "failed", 131026)
    assert (message.error_title, message.error_details) == ("Message undeliverable", "Not on WhatsApp.")
    assert message.send_started_at is None


@pytest.mark.parametrize("record", ["batch", "one"])
def test_a_send_failed_as_interrupted_whose_answer_comes_after_all_is_sent(channel_a, tenant_a, record):
    from whatsapp.delivery import INTERRUPTED_TITLE, record_message_sent, record_messages_sent

    [(message, wamid)] = _unrecorded(tenant_a, 1, "5" if record == "batch" else "6")
    with schema_context(tenant_a.schema_name):
        Message.objects.filter(pk=message.pk).update(status="failed", error_title=INTERRUPTED_TITLE)
        if record == "batch":
            record_messages_sent(sent=[(message.pk, wamid)])
        else:
            record_message_sent(message_id=message.pk, wamid=wamid)
        message.refresh_from_db()
    assert (message.wamid, message.status, message.error_title, message.error_code) == (
        wamid,
        "sent",
        "",
        None,
    )


def test_a_status_that_comes_while_its_send_result_is_being_written_is_applied_not_kept_pending(
    committed_db, sandbox
):
    """The worker has stored the wamid but not committed when the status round starts: the round's
    snapshot does not know the wamid, so it names the message by its biz_opaque_callback_data and waits
    for the worker's lock. It must then apply the status to the message, not keep it pending for a
    wamid nobody will look up again."""
    from tenants.models import NumberRoute, Tenant
    from whatsapp.testing import WABA_A, connect_number

    tenant = Tenant.objects.get(slug="alpha")
    channel = connect_number(sandbox, tenant, PNID_A, WABA_A, "token-alpha")
    wamid = payloads.new_wamid()
    with schema_context(tenant.schema_name):
        contact = Contact.objects.create(name="racer", phone="+447955500001", wa_id="447955500001")
        conversation = Conversation.objects.create(contact=contact, channel=channel)
        message = Message.objects.create(
            conversation=conversation,
            direction="out",
            type="template",
            status="queued",
            bulk=True,
            timestamp=timezone.now(),
            send_started_at=timezone.now(),
        )
    ids = record_webhook_events(
        accepted=[
            Accepted(
                body=payloads.encode(
                    payloads.event(
                        phone_number_id=PNID_A,
                        statuses=[
                            payloads.status(
                                wamid=wamid, status="delivered", recipient="", opaque=f"wacrm:{message.pk}"
                            )
                        ],
                    )
                ),
                phone_number_ids=[PNID_A],
            )
        ]
    )
    written, release = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def result_write() -> None:  # as delivery.record_messages_sent: lock, store the wamid, commit later
        from django.db import connection as thread_connection

        try:
            with schema_context(tenant.schema_name), transaction.atomic():
                Message.objects.select_for_update().get(pk=message.pk)
                Message.objects.filter(pk=message.pk).update(wamid=wamid, status="sent", send_started_at=None)
                written.set()
                assert release.wait(30)
        except BaseException as error:
            errors.append(error)
        finally:
            thread_connection.close()

    def status_round() -> None:
        from django.db import connection as thread_connection

        try:
            assert process_webhook_events(event_ids=ids).failed == []
        except BaseException as error:
            errors.append(error)
        finally:
            thread_connection.close()

    writer, round_ = threading.Thread(target=result_write), threading.Thread(target=status_round)
    try:
        writer.start()
        assert written.wait(30)
        round_.start()
        with connection.cursor() as cursor:  # the round waits for the worker's row lock
            for _ in range(600):
                cursor.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                    "AND datname = current_database()"
                )
                if cursor.fetchone()[0]:
                    break
                time.sleep(0.05)
            else:
                raise AssertionError("the status round never waited for the result write")
        release.set()
        writer.join(30)
        round_.join(30)
        assert errors == []
        with schema_context(tenant.schema_name):
            message.refresh_from_db()
            assert (message.wamid, message.status) == (wamid, "delivered")
            assert not PendingStatus.objects.filter(wamid=wamid).exists()
    finally:
        release.set()
        with schema_context(tenant.schema_name):
            PendingStatus.objects.filter(wamid=wamid).delete()
            Message.objects.filter(conversation__contact=contact).delete()
            Conversation.objects.filter(contact=contact).delete()
            contact.delete()
            channel.delete()
        WebhookEvent.objects.filter(pk__in=ids).delete()
        NumberRoute.objects.filter(phone_number_id=PNID_A).delete()
        connection.set_schema_to_public()


def test_the_round_s_lock_statement_reads_by_index_not_the_whole_table(channel_a, tenant_a):
    """With sequential scans priced out, the plan must still find an index path: a condition the
    indexes cannot serve would read every message of the tenant in every round."""
    from whatsapp.services.statuses import lock_sql

    with schema_context(tenant_a.schema_name), connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("EXPLAIN " + lock_sql(), [[1, 2], ["wamid.a", "wamid.b"], ["wamid.c"], [1, 2]])
        plan = "\n".join(row[0] for row in cursor.fetchall())
    conditions = [line for line in plan.splitlines() if "Index Cond" in line]
    assert any("wamid" in line for line in conditions), plan  # found by the wamid index
    assert any("(id = ANY" in line for line in conditions), plan  # and by the primary key
    assert "Seq Scan" not in plan, plan


def test_a_status_naming_a_received_message_by_its_opaque_id_never_adopts_it(channel_a, tenant_a):
    """A forged or stray biz_opaque_callback_data that names a customer's message (inbound, no wamid of
    ours) must not give it a wamid or a status: it is kept pending like any unknown wamid."""
    [(message, wamid)] = _unrecorded(tenant_a, 1, "4")
    with schema_context(tenant_a.schema_name):
        Message.objects.filter(pk=message.pk).update(direction="in", status="received", send_started_at=None)
        _round([payloads.status(wamid=wamid, status="read", recipient="", opaque=f"wacrm:{message.pk}")])
        message.refresh_from_db()
        assert (message.wamid, message.status) == (None, "received")
        assert PendingStatus.objects.filter(wamid=wamid).count() == 1
