"""Business-scoped user ids (BSUID) and usernames: since April 2026 Meta names WhatsApp users by a BSUID,
and a user with a username may write with no phone number and no wa_id at all. Such messages are
stored, shown and answered; a number revealed later joins the same contact; statuses carrying
`recipient_user_id` are matched; redeliveries, concurrent ones too, make one contact and one conversation.
"""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from django.db import connection as main_connection
from django.db import transaction
from django.test import TestCase
from django.utils import timezone
from django_tenants.utils import schema_context

from conversations.models import Conversation, Message
from conversations.services import send_template_message, send_text_message
from core.models import AuditEvent
from crm.models import Contact, ContactIdentity, Note
from whatsapp import parsing, payloads
from whatsapp import sandbox as sandbox_module
from whatsapp.models import MessageTemplate
from whatsapp.testing import CUSTOMER, PNID_A, WABA_A, deliver

BSUID = "US.13491208655302741918"
PARENT = "US.ENT.11815799212886844830"


def _bsuid_text(text: str = "Hi, do you ship to Lisbon?", *, wamid: str | None = None, **extra):
    options = {"username": "sheena.n", "name": "", **extra}
    return payloads.user_text_event(
        phone_number_id=PNID_A, user_id=options.pop("user_id", BSUID), text=text, wamid=wamid, **options
    )


def _waba(body: dict, waba_id: str = WABA_A) -> dict:
    body["entry"][0]["id"] = waba_id
    return body


# -- parsing ---------------------------------------------------------------------------------------


def test_a_message_without_a_phone_number_is_read_with_its_user_id_username_and_parent_id():
    body = _bsuid_text(parent_user_id=PARENT, name="Sheena")
    [change] = parsing.load_body(body)
    [message] = change.messages
    assert (message.from_wa_id, message.from_user_id, message.from_parent_user_id) == ("", BSUID, PARENT)
    profile = change.profiles[BSUID]
    assert (profile.wa_id, profile.user_id, profile.username, profile.name) == (
        "",
        BSUID,
        "sheena.n",
        "Sheena",
    )
    assert profile.parent_user_id == PARENT


def test_a_status_is_read_with_its_recipient_user_ids():
    raw = payloads.status(wamid="wamid.X", status="delivered", recipient="", recipient_user_id=BSUID)
    raw["recipient_parent_user_id"] = PARENT
    update = parsing.parse_status(raw)
    assert (update.recipient_id, update.recipient_user_id, update.recipient_parent_user_id) == (
        "",
        BSUID,
        PARENT,
    )


def test_user_ids_of_an_unexpected_shape_read_as_empty():
    assert (
        parsing.parse_message({"id": "wamid.1", "type": "text", "from_user_id": ["US.1"]}).from_user_id == ""
    )
    assert parsing.parse_message({"id": "wamid.1", "type": "text", "from_user_id": "a b"}).from_user_id == ""
    assert (
        parsing.parse_message({"id": "wamid.1", "type": "text", "from_user_id": "X" * 141}).from_user_id == ""
    )


# -- a BSUID-only sender ---------------------------------------------------------------------------


def test_a_message_from_a_user_with_no_phone_number_is_stored_shown_and_not_lost(
    public_client, channel_a, tenant_a
):
    deliver(public_client, _waba(_bsuid_text()))
    with schema_context(tenant_a.schema_name):
        contact = Contact.objects.get()
        assert (contact.phone, contact.wa_id, contact.username, contact.whatsapp_user_id) == (
            "",
            "",
            "sheena.n",
            BSUID,
        )
        assert str(contact) == "@sheena.n"
        identity = ContactIdentity.objects.get()
        assert (identity.contact_id, identity.kind, identity.value, identity.scope) == (
            contact.pk,
            "bsuid",
            BSUID,
            WABA_A,
        )
        message = Message.objects.get()
        assert (message.text, message.conversation.contact_id) == ("Hi, do you ship to Lisbon?", contact.pk)
        assert contact.last_inbound_at is not None


def test_a_contact_with_neither_name_nor_username_is_labelled_by_its_user_id(
    public_client, channel_a, tenant_a
):
    deliver(public_client, _waba(_bsuid_text(username="")))
    with schema_context(tenant_a.schema_name):
        assert str(Contact.objects.get()) == "WhatsApp user …741918"


def test_the_profile_name_wins_over_the_username(public_client, channel_a, tenant_a):
    deliver(public_client, _waba(_bsuid_text(name="Sheena Nelson")))
    with schema_context(tenant_a.schema_name):
        assert str(Contact.objects.get()) == "Sheena Nelson"


def test_redelivered_payloads_of_bsuid_only_senders_make_one_contact_and_one_conversation_each(
    public_client, channel_a, tenant_a
):
    first = _waba(_bsuid_text("one", wamid="wamid.B1"))
    second = _waba(_bsuid_text("two", wamid="wamid.B2"))
    other = _waba(_bsuid_text("hello", wamid="wamid.C1", user_id="BR.1502576394655843", username="ana"))
    for body in (first, first, second, first, other, second, other):
        deliver(public_client, body)
    with schema_context(tenant_a.schema_name):
        assert Contact.objects.count() == 2
        assert Conversation.objects.count() == 2
        assert ContactIdentity.objects.count() == 2
        sheena = Contact.objects.get(whatsapp_user_id=BSUID)
        assert sorted(
            Message.objects.filter(conversation__contact=sheena).values_list("text", flat=True)
        ) == [
            "one",
            "two",
        ]


def test_two_messages_of_one_new_bsuid_sender_in_one_body_make_one_contact(
    public_client, channel_a, tenant_a
):
    body = _waba(_bsuid_text("one", wamid="wamid.D1"))
    body["entry"][0]["changes"][0]["value"]["messages"].append(
        payloads.message(wa_id="", type="text", content={"body": "two"}, wamid="wamid.D2", from_user_id=BSUID)
    )
    deliver(public_client, body)
    with schema_context(tenant_a.schema_name):
        assert Contact.objects.count() == 1
        assert Message.objects.count() == 2


def test_concurrent_deliveries_of_a_new_bsuid_sender_make_one_contact_and_one_conversation(
    committed_db, sandbox
):
    """Four workers take the same new sender's messages at once, each in its own transaction and
    database connection: the unique identity makes them wait for the first and find its contact."""
    from tenants.models import Tenant
    from whatsapp.services.inbound import ingest_messages
    from whatsapp.testing import connect_number

    tenant = Tenant.objects.get(slug="alpha")
    user_id = "GB.99887766554433221100"
    channel = connect_number(sandbox, tenant, PNID_A, WABA_A, "token-alpha")
    bodies = [
        _waba(_bsuid_text(f"race {i}", wamid=f"wamid.RACE{i % 2}", user_id=user_id, username="racer"))
        for i in range(4)
    ]
    barrier = threading.Barrier(len(bodies))
    errors: list[BaseException] = []

    def work(body: dict) -> None:
        from django.db import connection as thread_connection

        try:
            [change] = parsing.load_body(body)
            barrier.wait(10)
            with schema_context(tenant.schema_name), transaction.atomic():
                ingest_messages([(channel, m, change.profiles) for m in change.messages])
        except BaseException as error:  # reported below: a thread's failure must fail the test
            errors.append(error)
        finally:
            thread_connection.close()

    threads = [threading.Thread(target=work, args=(body,)) for body in bodies]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert errors == []
        with schema_context(tenant.schema_name):
            contacts = list(Contact.objects.filter(whatsapp_user_id=user_id))
            assert len(contacts) == 1
            assert ContactIdentity.objects.filter(value=user_id).count() == 1
            assert Conversation.objects.filter(contact=contacts[0]).count() == 1
            assert Message.objects.filter(conversation__contact=contacts[0]).count() == 2
    finally:
        with schema_context(tenant.schema_name):
            Message.objects.filter(conversation__contact__whatsapp_user_id=user_id).delete()
            Conversation.objects.filter(contact__whatsapp_user_id=user_id).delete()
            Contact.objects.filter(whatsapp_user_id=user_id).delete()
            channel.delete()
        from tenants.models import NumberRoute

        NumberRoute.objects.filter(phone_number_id=PNID_A).delete()
        main_connection.set_schema_to_public()


# -- answering a BSUID-only contact ----------------------------------------------------------------


@pytest.fixture
def bsuid_conversation(public_client, channel_a, tenant_a):
    deliver(public_client, _waba(_bsuid_text()))
    with schema_context(tenant_a.schema_name):
        return Conversation.objects.select_related("contact", "channel").get(contact__whatsapp_user_id=BSUID)


def test_a_reply_to_a_contact_without_a_number_is_sent_to_its_bsuid_with_recipient(
    bsuid_conversation, tenant_a, sandbox
):
    from whatsapp.testing import run_jobs

    with schema_context(tenant_a.schema_name):
        with TestCase.captureOnCommitCallbacks(execute=True):
            message = send_text_message(conversation=bsuid_conversation, text="Yes, we do!")
        run_jobs()
        message.refresh_from_db()
        assert message.status == "sent" and message.wamid
    body = sandbox.sent(PNID_A)[-1]["body"]
    assert body["recipient"] == BSUID
    assert "to" not in body
    assert body["text"]["body"] == "Yes, we do!"


def test_a_template_to_a_contact_without_a_number_is_sent_with_recipient(
    bsuid_conversation, tenant_a, sandbox
):
    from whatsapp.testing import run_jobs

    with schema_context(tenant_a.schema_name):
        MessageTemplate.objects.create(
            waba_id=WABA_A,
            name="back_in_stock",
            language="en_US",
            category="UTILITY",
            status="APPROVED",
            components=[{"type": "BODY", "text": "It is back in stock."}],
        )
        with TestCase.captureOnCommitCallbacks(execute=True):
            send_template_message(conversation=bsuid_conversation, template="back_in_stock", parameters=[])
        run_jobs()
    body = sandbox.sent(PNID_A)[-1]["body"]
    assert (body["type"], body["recipient"], "to" in body) == ("template", BSUID, False)


def test_the_bsuid_of_the_sending_numbers_account_is_chosen(tenant_a, channel_a):
    from crm.services.identities import identity_for_sending

    with schema_context(tenant_a.schema_name):
        contact = Contact.objects.create(phone="", whatsapp_user_id="US.2")
        ContactIdentity.objects.create(contact=contact, kind="bsuid", value="US.1", scope=WABA_A)
        ContactIdentity.objects.create(contact=contact, kind="bsuid", value="US.2", scope="999")
        ContactIdentity.objects.create(contact=contact, kind="parent_bsuid", value="US.ENT.3")
        assert identity_for_sending(contact=contact, scope=WABA_A) == ("recipient", "US.1")
        assert identity_for_sending(contact=contact, scope="555") == ("recipient", "US.ENT.3")
        contact.phone, contact.wa_id = "+" + CUSTOMER, CUSTOMER
        assert identity_for_sending(contact=contact, scope=WABA_A) == ("to", CUSTOMER)


def test_the_sandbox_accepts_a_send_addressed_by_recipient_and_reports_statuses_by_user_id():
    box = sandbox_module.Sandbox()
    status, answer = box.accept_send(
        PNID_A, {"messaging_product": "whatsapp", "recipient": BSUID, "type": "text", "text": {"body": "x"}}
    )
    assert status == 200
    assert answer["contacts"] == [{"input": BSUID, "user_id": BSUID}]
    raw = sandbox_module.status_payload(phone_number_id=PNID_A, wamid="wamid.S", status="sent", to=BSUID)
    [change] = parsing.load_body(parsing.loads(raw))
    assert (change.statuses[0].recipient_user_id, change.statuses[0].recipient_id) == (BSUID, "")


# -- statuses with recipient_user_id ---------------------------------------------------------------


def test_a_status_with_recipient_user_id_is_matched_and_the_contact_learns_its_bsuid(
    public_client, conversation_a, tenant_a
):
    with schema_context(tenant_a.schema_name):
        sent = Message.objects.create(
            conversation=conversation_a,
            direction="out",
            text="Your order shipped",
            wamid="wamid.OUT1",
            status="sent",
            timestamp=timezone.now(),
        )
    status = payloads.status(wamid="wamid.OUT1", status="delivered", recipient="", recipient_user_id=BSUID)
    deliver(public_client, _waba(payloads.event(phone_number_id=PNID_A, statuses=[status])))
    with schema_context(tenant_a.schema_name):
        sent.refresh_from_db()
        assert sent.status == "delivered" and sent.delivered_at is not None
        contact = Contact.objects.get(pk=conversation_a.contact_id)
        assert contact.whatsapp_user_id == BSUID
        assert ContactIdentity.objects.get(value=BSUID).contact_id == contact.pk
    # The user now writes without their number: the same contact, the same conversation.
    deliver(public_client, _waba(_bsuid_text("Thanks!")))
    with schema_context(tenant_a.schema_name):
        assert Contact.objects.count() == 1
        assert Conversation.objects.count() == 1
        assert Message.objects.filter(direction="in").get().conversation_id == conversation_a.pk
        assert Contact.objects.get().username == "sheena.n"


def test_a_failed_status_with_only_recipient_user_id_is_matched_by_wamid(
    public_client, bsuid_conversation, tenant_a
):
    with schema_context(tenant_a.schema_name):
        sent = Message.objects.create(
            conversation=bsuid_conversation,
            direction="out",
            text="x",
            wamid="wamid.OUT2",
            status="sent",
            timestamp=timezone.now(),
        )
    status = payloads.status(
        wamid="wamid.OUT2",
        status="failed",
        recipient="",
        recipient_user_id=BSUID,
        errors=[{"code": 131026, "title": "Message undeliverable"}],
    )
    deliver(public_client, _waba(payloads.event(phone_number_id=PNID_A, statuses=[status])))
    with schema_context(tenant_a.schema_name):
        sent.refresh_from_db()
        assert (sent.status, sent.error_code) == ("failed", 131026)
        assert Contact.objects.count() == 1


# -- a phone number revealed later -----------------------------------------------------------------


def test_a_phone_number_revealed_later_joins_the_bsuid_contact(public_client, bsuid_conversation, tenant_a):
    body = _waba(_bsuid_text("It's me, my number is shared now", wa_id=CUSTOMER, name="Sheena"))
    deliver(public_client, body)
    with schema_context(tenant_a.schema_name):
        contact = Contact.objects.get()
        assert (contact.phone, contact.wa_id, contact.whatsapp_user_id) == ("+" + CUSTOMER, CUSTOMER, BSUID)
        assert contact.name == "Sheena"
        assert Conversation.objects.count() == 1
        assert Message.objects.count() == 2
    # And the number alone now finds the same contact too.
    deliver(public_client, payloads.text_event(phone_number_id=PNID_A, wa_id=CUSTOMER, text="again"))
    with schema_context(tenant_a.schema_name):
        assert Contact.objects.count() == 1
        assert Message.objects.count() == 3


def test_a_phone_contact_and_a_bsuid_contact_of_one_user_are_merged_into_one(
    public_client, conversation_a, bsuid_conversation, tenant_a
):
    with schema_context(tenant_a.schema_name):
        assert Contact.objects.count() == 2
        bsuid_contact = bsuid_conversation.contact
        Note.objects.create(contact=bsuid_contact, body="Asked about Lisbon")
        bsuid_contact.tags.create(name="lisbon")
    deliver(public_client, _waba(_bsuid_text("both ids", wa_id=CUSTOMER, wamid="wamid.BOTH")))
    with schema_context(tenant_a.schema_name):
        contact = Contact.objects.get()
        assert contact.pk == conversation_a.contact_id  # the one staff knew by number stays
        assert (contact.phone, contact.whatsapp_user_id, contact.username) == (
            "+" + CUSTOMER,
            BSUID,
            "sheena.n",
        )
        assert ContactIdentity.objects.get().contact_id == contact.pk
        assert set(Conversation.objects.values_list("contact_id", flat=True)) == {contact.pk}
        assert Message.objects.get(wamid="wamid.BOTH").conversation.contact_id == contact.pk
        assert Note.objects.get().contact_id == contact.pk
        assert list(contact.tags.values_list("name", flat=True)) == ["lisbon"]
        merged = AuditEvent.objects.get(action="contact.merged")
        assert merged.target_id == str(contact.pk)
    # Delivered again: nothing changes.
    deliver(public_client, _waba(_bsuid_text("both ids", wa_id=CUSTOMER, wamid="wamid.BOTH")))
    with schema_context(tenant_a.schema_name):
        assert Contact.objects.count() == 1
        assert Message.objects.filter(wamid="wamid.BOTH").count() == 1


# -- identity changes ------------------------------------------------------------------------------


def test_user_changed_user_id_gives_the_same_contact_its_new_bsuid(
    public_client, bsuid_conversation, tenant_a
):
    new_id = "US.55555555555555555555"
    system = payloads.message(
        wa_id="",
        type="system",
        content={"body": "User changed their user id", "type": "user_changed_user_id", "user_id": new_id},
        from_user_id=BSUID,
    )
    deliver(public_client, _waba(payloads.event(phone_number_id=PNID_A, messages=[system])))
    with schema_context(tenant_a.schema_name):
        contact = Contact.objects.get()
        assert contact.whatsapp_user_id == new_id
        assert set(contact.identities.values_list("value", flat=True)) == {BSUID, new_id}
    deliver(public_client, _waba(_bsuid_text("from my new id", user_id=new_id, wamid="wamid.NEW")))
    with schema_context(tenant_a.schema_name):
        assert Contact.objects.count() == 1
        assert Conversation.objects.count() == 1


def test_a_changed_username_is_applied_to_the_contact(public_client, bsuid_conversation, tenant_a):
    deliver(public_client, _waba(_bsuid_text("new handle", username="sheena.nelson", wamid="wamid.U2")))
    with schema_context(tenant_a.schema_name):
        assert Contact.objects.get().username == "sheena.nelson"


def test_a_message_with_no_identifier_at_all_is_skipped(public_client, channel_a, tenant_a):
    raw = payloads.message(wa_id="", type="text", content={"body": "who am I"})
    deliver(public_client, _waba(payloads.event(phone_number_id=PNID_A, messages=[raw])))
    with schema_context(tenant_a.schema_name):
        assert not Message.objects.exists()
        assert not Contact.objects.exists()


def test_the_inbox_shows_a_bsuid_contact_by_username_escaped(bsuid_conversation, tenant_a, client_a, owner_a):
    from conftest import login

    with schema_context(tenant_a.schema_name):
        Contact.objects.filter(pk=bsuid_conversation.contact_id).update(username="<b>x</b>")
    page = login(client_a, tenant_a, owner_a).get(f"/inbox/c/{bsuid_conversation.pk}/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "@&lt;b&gt;x&lt;/b&gt;" in html
    assert "<b>x</b>" not in html


def test_the_window_is_measured_from_the_bsuid_senders_last_message(bsuid_conversation, tenant_a):
    with schema_context(tenant_a.schema_name):
        contact = Contact.objects.get()
        assert timezone.now() - contact.last_inbound_at < dt.timedelta(minutes=5)


def test_the_sandbox_emits_a_message_from_a_user_without_a_phone_number(
    public_client, channel_a, tenant_a, sandbox
):
    sandbox.emit_inbound(PNID_A, text="from the sandbox", user_id=BSUID, username="sheena.n")
    for body in sandbox.wait_for_outbox(1):
        deliver(public_client, body)
    with schema_context(tenant_a.schema_name):
        message = Message.objects.get()
        assert message.text == "from the sandbox"
        assert (message.conversation.contact.phone, message.conversation.contact.username) == ("", "sheena.n")


def test_the_simulate_inbound_command_refuses_a_sender_with_neither_number_nor_user_id(tenant_a):
    from django.core.management import CommandError, call_command

    with pytest.raises(CommandError, match="--user-id"):
        call_command("simulate_inbound", "--tenant", tenant_a.slug, "--text", "hi")
