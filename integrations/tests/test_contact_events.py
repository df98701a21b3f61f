"""Every path that creates or changes a contact announces it to outgoing webhooks once, after commit; every
delivery status change of a message is announced as message.updated (a status round in one batch)."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import TestCase
from django.utils import timezone
from django_tenants.utils import schema_context

from conversations.models import Conversation, Message
from crm import outgoing_events
from crm.models import Contact
from crm.services import merge_contacts
from crm.services.imports import run_contact_import, start_contact_import
from integrations import services
from integrations.models import WebhookDelivery
from integrations.tests.test_webhooks import subscribe
from whatsapp import payloads
from whatsapp.testing import CUSTOMER, PNID_A, deliver, run_jobs

NEW_NUMBER = "14155550123"
ALL = ["contact.created", "contact.updated", "message.updated"]


def _sent(tenant: Any, prefix: str = "") -> list[tuple[str, int]]:
    """(event, object id) of every delivery so far (of the events starting with `prefix`), in order."""
    import json

    with schema_context(tenant.schema_name):
        return [
            (row.event, json.loads(row.body)["data"]["id"])
            for row in WebhookDelivery.objects.filter(event__startswith=prefix).order_by("id")
        ]


@pytest.fixture
def batches(monkeypatch: pytest.MonkeyPatch) -> list[list[tuple[str, dict[str, Any]]]]:
    """What reaches the sink, one list per hand-over."""
    seen: list[list[tuple[str, dict[str, Any]]]] = []

    def sink(batch: list[tuple[str, dict[str, Any]]]) -> None:
        seen.append(list(batch))
        services.enqueue_events(batch)

    monkeypatch.setattr(outgoing_events, "_sink", sink)
    return seen


def test_an_inbound_message_from_a_new_number_announces_the_contact_once(
    public_client, tenant_a, channel_a, receiver
):
    subscribe(tenant_a, receiver, ALL)
    body = payloads.text_event(
        phone_number_id=PNID_A, wa_id=NEW_NUMBER, text="Hello", name="Dana", wamid="wamid.contact.1"
    )
    deliver(public_client, body)
    with schema_context(tenant_a.schema_name):
        contact = Contact.objects.get(wa_id=NEW_NUMBER)
    assert _sent(tenant_a) == [("contact.created", contact.pk)]
    deliver(public_client, body)  # Meta redelivers the same webhook
    deliver(
        public_client,
        payloads.text_event(phone_number_id=PNID_A, wa_id=NEW_NUMBER, text="Again", wamid="wamid.contact.2"),
    )  # a later message only moves the activity time: nothing to announce
    assert _sent(tenant_a) == [("contact.created", contact.pk)]


def test_a_stop_keyword_announces_the_contact_as_updated(public_client, tenant_a, channel_a, receiver):
    deliver(public_client, payloads.text_event(phone_number_id=PNID_A, wa_id=NEW_NUMBER, text="Hi"))
    subscribe(tenant_a, receiver, ALL)
    deliver(public_client, payloads.text_event(phone_number_id=PNID_A, wa_id=NEW_NUMBER, text="STOP"))
    with schema_context(tenant_a.schema_name):
        contact = Contact.objects.get(wa_id=NEW_NUMBER)
        assert contact.marketing_consent == "opted_out"
    assert _sent(tenant_a, "contact.") == [("contact.updated", contact.pk)]  # (its reply: message events)
    deliver(public_client, payloads.text_event(phone_number_id=PNID_A, wa_id=NEW_NUMBER, text="stop"))
    assert _sent(tenant_a, "contact.") == [("contact.updated", contact.pk)]  # already opted out: no change


def test_a_merge_announces_the_kept_contact_only(receiver, tenant_a):
    subscribe(tenant_a, receiver, ALL)
    with schema_context(tenant_a.schema_name):
        keep = Contact.objects.create(phone="+14155550100", name="Kept")
        discard = Contact.objects.create(phone="+14155550101", email="x@example.com")
        with TestCase.captureOnCommitCallbacks(execute=True):
            merge_contacts(keep=keep, discard=discard)
    assert _sent(tenant_a) == [("contact.updated", keep.pk)]


def test_status_updates_announce_message_updated_one_batch_per_round(
    public_client, tenant_a, channel_a, receiver, batches
):
    subscribe(tenant_a, receiver, ALL)
    with schema_context(tenant_a.schema_name):
        contact = Contact.objects.create(phone="+" + CUSTOMER, wa_id=CUSTOMER)
        conversation = Conversation.objects.create(contact=contact, channel=channel_a)
        messages = [
            Message.objects.create(
                conversation=conversation,
                direction="out",
                type="text",
                text=f"Hello {i}",
                status="sent",
                wamid=payloads.new_wamid(),
                timestamp=timezone.now(),
            )
            for i in range(3)
        ]
    messages, later = messages[:2], messages[2]
    statuses = [
        payloads.status(wamid=m.wamid, status=s, recipient=CUSTOMER)
        for m in messages
        for s in ("delivered", "read")
    ]
    deliver(public_client, payloads.event(phone_number_id=PNID_A, statuses=statuses))
    assert sorted(_sent(tenant_a)) == sorted(("message.updated", m.pk) for m in messages)
    assert [len(batch) for batch in batches if batch[0][0] == "message.updated"] == [2]
    with schema_context(tenant_a.schema_name):
        stored = Message.objects.filter(pk__in=[m.pk for m in messages])
        assert set(stored.values_list("status", flat=True)) == {"read"}
    failed = payloads.status(
        wamid=later.wamid,
        status="failed",
        recipient=CUSTOMER,
        errors=[{"code": 131026, "title": "Message undeliverable"}],
    )
    deliver(public_client, payloads.event(phone_number_id=PNID_A, statuses=[failed]))
    assert _sent(tenant_a)[2:] == [("message.updated", later.pk)]


def test_a_csv_import_announces_its_contacts_in_one_batch(receiver, tenant_a, batches):
    subscribe(tenant_a, receiver, ALL)
    with schema_context(tenant_a.schema_name):
        known = Contact.objects.create(phone="+14155550102", name="Known")
        csv = "phone,name\n+14155550103,New\n+14155550102,Renamed\nnot-a-phone,Bad\n"
        job = start_contact_import(filename="c.csv", content=csv, created_by=None)
        with TestCase.captureOnCommitCallbacks(execute=True):
            run_contact_import(contact_import=job)
        new = Contact.objects.get(phone="+14155550103")
        run_jobs()
    assert len(batches) == 1
    assert sorted(_sent(tenant_a)) == sorted([("contact.created", new.pk), ("contact.updated", known.pk)])


def test_an_app_address_book_sync_announces_new_and_renamed_contacts(tenant_a, channel_a, receiver):
    from conversations.services.coexistence import update_contact_names

    subscribe(tenant_a, receiver, ALL)
    with schema_context(tenant_a.schema_name):
        known = Contact.objects.create(phone="+" + CUSTOMER, wa_id=CUSTOMER, name="Old")
        with TestCase.captureOnCommitCallbacks(execute=True):
            update_contact_names(names={CUSTOMER: "New name", NEW_NUMBER: "Fresh"})
        fresh = Contact.objects.get(wa_id=NEW_NUMBER)
    assert sorted(_sent(tenant_a)) == sorted([("contact.created", fresh.pk), ("contact.updated", known.pk)])
