"""The multi-row helpers inbound processing writes with (tenants.db)."""

from __future__ import annotations

import datetime as dt

from django.utils import timezone
from django_tenants.utils import schema_context

from conversations.models import Conversation, InboxEvent, Message
from conversations.tests.conftest import make_conversation
from tenants.db import insert_rows, update_rows


def test_insert_rows_stores_every_field_in_order_and_sets_the_keys(tenant_a):
    conversation = make_conversation(tenant_a, name="Rows", messages=0)
    when = timezone.now() - dt.timedelta(minutes=5)
    with schema_context(tenant_a.schema_name):
        rows = [
            Message(
                conversation=conversation,
                direction=Message.Direction.INBOUND,
                type=Message.Type.TEXT,
                text=f"number {i}",
                payload={"text": {"body": f"number {i}"}, "n": i} if i else {},
                status=Message.Status.RECEIVED,
                wamid=f"wamid.rows.{i}",
                timestamp=when + dt.timedelta(seconds=i),
            )
            for i in range(3)
        ]
        insert_rows(Message, rows)
        assert all(row.pk and not row._state.adding for row in rows)
        assert [row.pk for row in rows] == sorted(row.pk for row in rows)
        stored = {m.pk: m for m in Message.objects.filter(conversation=conversation)}
        for i, row in enumerate(rows):
            saved = stored[row.pk]
            assert (saved.text, saved.wamid, saved.timestamp) == (
                f"number {i}",
                f"wamid.rows.{i}",
                row.timestamp,
            )
            assert saved.payload == row.payload and saved.reactions == {}
            # auto_now_add ran, as in bulk_create, and the row carries the stored value.
            assert saved.created_at == row.created_at is not None


def test_insert_rows_stores_json_as_given_and_writes_nothing_for_no_rows(tenant_a):
    conversation = make_conversation(tenant_a, name="Events", messages=0)
    with schema_context(tenant_a.schema_name):
        insert_rows(InboxEvent, [])
        before = InboxEvent.objects.count()
        event = InboxEvent(
            conversation_id=conversation.pk,
            payload={"type": "x", "nested": [1, None]},
            created_at=timezone.now(),
        )
        insert_rows(InboxEvent, [event])
        assert InboxEvent.objects.count() == before + 1
        assert InboxEvent.objects.get(pk=event.pk).payload == {"type": "x", "nested": [1, None]}


def test_update_rows_writes_each_row_its_own_values(tenant_a):
    first = make_conversation(tenant_a, name="One", messages=0)
    second = make_conversation(tenant_a, name="Two", messages=0)
    with schema_context(tenant_a.schema_name):
        first.unread_count, second.unread_count = 4, 7
        first.status = Conversation.Status.RESOLVED
        update_rows(Conversation, [first, second], ["unread_count", "status"])
        counts = dict(
            Conversation.objects.filter(pk__in=[first.pk, second.pk]).values_list("pk", "unread_count")
        )
        assert counts == {first.pk: 4, second.pk: 7}
        assert Conversation.objects.get(pk=first.pk).status == Conversation.Status.RESOLVED
