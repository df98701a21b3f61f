"""Outbound delivery against the Graph API sandbox: every error class, retries, never a second send."""

from __future__ import annotations

import datetime as dt

import pytest
from django.test import TestCase
from django.utils import timezone
from django_tenants.utils import schema_context

from conversations.models import Channel, Message
from conversations.services import MessageRejected, retry_message, send_text_message
from whatsapp import delivery
from whatsapp.testing import CUSTOMER, PNID_A, deliver, queued_jobs, run_jobs


def _send(conversation, text="Hello there", **kwargs):
    with TestCase.captureOnCommitCallbacks(execute=True):
        return send_text_message(conversation=conversation, text=text, **kwargs)


@pytest.fixture
def in_alpha(tenant_a):
    with schema_context(tenant_a.schema_name):
        yield


def test_a_text_is_queued_then_sent_with_its_wamid_stored(conversation_a, in_alpha, sandbox):
    message = _send(conversation_a)
    assert message.status == "queued"
    assert queued_jobs() == ["send_message"]
    run_jobs()
    message.refresh_from_db()
    sent = sandbox.sent(PNID_A)
    assert len(sent) == 1
    body = sent[0]["body"]
    assert (body["to"], body["type"], body["text"]["body"]) == (CUSTOMER, "text", "Hello there")
    assert body["biz_opaque_callback_data"] == f"wacrm:{message.pk}"
    assert message.wamid == sent[0]["wamid"]
    assert message.status == "sent"
    assert message.send_attempts == 1


def test_the_sandboxs_signed_status_webhooks_move_the_message_to_read(
    conversation_a, tenant_a, sandbox, public_client
):
    with schema_context(tenant_a.schema_name):
        message = _send(conversation_a)
        run_jobs()
    for body in sandbox.wait_for_outbox(3):
        deliver(public_client, body)
    with schema_context(tenant_a.schema_name):
        message.refresh_from_db()
        assert message.status == "read"
        assert message.delivered_at and message.read_at


def test_a_message_with_a_wamid_is_never_sent_again(conversation_a, in_alpha, sandbox):
    message = _send(conversation_a)
    run_jobs()
    delivery.deliver_message(message_id=message.pk)
    from whatsapp.actors import send_message

    send_message.fn(message.pk)
    assert len(sandbox.sent()) == 1


def test_a_worker_stopped_mid_send_never_sends_twice(
    conversation_a, tenant_a, sandbox, public_client, monkeypatch
):
    with schema_context(tenant_a.schema_name):
        message = _send(conversation_a)

        def killed(**kwargs):
            raise SystemExit("worker killed after Meta accepted the message")

        with monkeypatch.context() as patch:
            patch.setattr(delivery, "record_message_sent", killed)
            with pytest.raises(SystemExit):
                run_jobs()
        assert len(sandbox.sent()) == 1
        message.refresh_from_db()
        assert message.wamid is None and message.send_started_at is not None

        # The broker redelivers the job: a recent claim may still be in flight, so nothing is sent.
        from whatsapp.actors import send_message

        send_message.fn(message.pk)
        assert len(sandbox.sent()) == 1
        # Much later (the requeue sweeper's turn): the unfinished attempt fails visibly, not resent.
        Message.objects.filter(pk=message.pk).update(
            send_started_at=timezone.now() - dt.timedelta(minutes=10)
        )
        send_message.fn(message.pk)
        assert len(sandbox.sent()) == 1
        message.refresh_from_db()
        assert message.status == "failed" and "not sent again" in message.error_title

    # Meta did accept it: its status webhooks carry our opaque id, and the message adopts its wamid.
    for body in sandbox.wait_for_outbox(3):
        deliver(public_client, body)
    with schema_context(tenant_a.schema_name):
        message.refresh_from_db()
        assert message.wamid == sandbox.sent()[0]["wamid"]
        assert message.status == "read"
        assert message.error_title == ""


@pytest.mark.parametrize("code", [1, 2, 4, 80007, 130429, 131000, 131016, 131057])
def test_retryable_errors_are_retried_with_backoff_and_then_really_send(
    code, conversation_a, in_alpha, sandbox
):
    sandbox.fail(code, http_status=500 if code in (1, 2) else 400)
    message = _send(conversation_a)
    run_jobs(include_delayed=False)
    message.refresh_from_db()
    assert message.status == "queued"
    assert message.error_code == code and message.error_title.startswith("Retrying")
    assert message.next_attempt_at > timezone.now()
    assert queued_jobs() == ["send_message"]  # the retry, on the delay queue
    Message.objects.filter(pk=message.pk).update(next_attempt_at=timezone.now())
    run_jobs()
    message.refresh_from_db()
    assert message.status == "sent" and message.wamid
    assert message.send_attempts == 2
    assert len(sandbox.sent()) == 1


def test_the_pair_rate_limit_waits_4_to_the_n_seconds(conversation_a, in_alpha, sandbox):
    sandbox.fail(131056, times=2)
    message = _send(conversation_a)
    first = delivery.deliver_message(message_id=message.pk)
    Message.objects.filter(pk=message.pk).update(next_attempt_at=None)
    second = delivery.deliver_message(message_id=message.pk)
    assert (first.action, first.delay, second.action, second.delay) == ("retry", 4.0, "retry", 16.0)


def test_a_network_error_is_retried(conversation_a, in_alpha, settings):
    settings.WHATSAPP_GRAPH_URL = "http://127.0.0.1:9/v21.0"  # nothing listens on the discard port
    message = _send(conversation_a)
    outcome = delivery.deliver_message(message_id=message.pk)
    message.refresh_from_db()
    assert outcome.action == "retry"
    assert message.status == "queued" and message.send_started_at is None


def test_retries_stop_at_the_maximum_age(conversation_a, in_alpha, sandbox, settings):
    settings.WHATSAPP_SEND_MAX_AGE_SECONDS = 60
    sandbox.fail(131000)
    message = _send(conversation_a)
    Message.objects.filter(pk=message.pk).update(created_at=timezone.now() - dt.timedelta(minutes=5))
    assert delivery.deliver_message(message_id=message.pk).action == "failed"
    message.refresh_from_db()
    assert message.status == "failed" and message.error_title.startswith("Gave up after 1 attempts")


@pytest.mark.parametrize("code", [0, 3, 10, 190, 200, 299, 131005])
def test_auth_errors_mark_the_number_for_reauthorisation_and_fail_the_message(
    code, conversation_a, channel_a, in_alpha, sandbox
):
    sandbox.fail(code, http_status=401)
    message = _send(conversation_a)
    run_jobs()
    message.refresh_from_db()
    channel_a.refresh_from_db()
    assert (message.status, message.error_code) == ("failed", code)
    assert channel_a.status == Channel.Status.NEEDS_REAUTH
    assert str(code) in channel_a.status_reason
    conversation_a.refresh_from_db()
    with pytest.raises(MessageRejected) as rejected:
        _send(conversation_a, text="again")
    assert rejected.value.code == "channel_inactive"


@pytest.mark.parametrize(
    "code", [100, 131008, 131009, 131021, 131026, 131047, 131051, 130403, 132000, 132016]
)
def test_permanent_errors_fail_the_message_with_code_and_title_and_no_retry(
    code, conversation_a, in_alpha, sandbox
):
    sandbox.fail(code, title="Something specific")
    message = _send(conversation_a)
    run_jobs()
    message.refresh_from_db()
    assert (message.status, message.error_code, message.error_title) == ("failed", code, "Something specific")
    assert queued_jobs() == []
    assert sandbox.sent() == []


@pytest.mark.parametrize("code", [368, 131031, 131042, 131048, 130497, 131064])
def test_account_level_errors_stop_the_number(code, conversation_a, channel_a, in_alpha, sandbox):
    sandbox.fail(code)
    message = _send(conversation_a)
    run_jobs()
    message.refresh_from_db()
    channel_a.refresh_from_db()
    assert message.status == "failed"
    assert channel_a.status == Channel.Status.DISABLED


def test_a_failure_meta_reports_later_by_webhook_fails_the_message(
    conversation_a, tenant_a, sandbox, public_client
):
    sandbox.fail(131047, asynchronous=True, title="Re-engagement message")
    with schema_context(tenant_a.schema_name):
        message = _send(conversation_a)
        run_jobs()
    for body in sandbox.wait_for_outbox(1):
        deliver(public_client, body)
    with schema_context(tenant_a.schema_name):
        message.refresh_from_db()
        assert (message.status, message.error_code) == ("failed", 131047)


def test_free_form_messages_need_the_24_hour_window(conversation_a, in_alpha):
    from crm.models import Contact

    Contact.objects.filter(pk=conversation_a.contact_id).update(
        last_inbound_at=timezone.now() - dt.timedelta(hours=25)
    )
    conversation_a.contact.refresh_from_db()
    with pytest.raises(MessageRejected) as rejected:
        _send(conversation_a)
    assert rejected.value.code == "outside_window"
    assert "template" in rejected.value.message
    assert Message.objects.count() == 0


def test_a_text_over_4096_characters_is_refused(conversation_a, in_alpha):
    with pytest.raises(MessageRejected) as rejected:
        _send(conversation_a, text="x" * 4097)
    assert rejected.value.code == "text_too_long"


def test_the_same_idempotency_key_never_creates_a_second_message(conversation_a, in_alpha, sandbox):
    first = _send(conversation_a, idempotency_key="client-key-1")
    second = _send(conversation_a, idempotency_key="client-key-1")
    assert first.pk == second.pk
    run_jobs()
    assert len(sandbox.sent()) == 1


def test_a_user_retry_of_a_failed_message_really_sends(conversation_a, in_alpha, sandbox, owner_a):
    sandbox.fail(131026)
    message = _send(conversation_a)
    run_jobs()
    message.refresh_from_db()
    assert message.status == "failed"
    with TestCase.captureOnCommitCallbacks(execute=True):
        retried = retry_message(message=message, user=owner_a)
    assert retried.pk == message.pk and retried.status == "queued"
    run_jobs()
    retried.refresh_from_db()
    assert retried.status == "sent" and len(sandbox.sent()) == 1


def test_bulk_messages_go_to_the_bulk_queue_and_agent_replies_to_outbound(conversation_a, in_alpha):
    from tenants.jobs import broker

    _send(conversation_a, text="campaign", bulk=True)
    _send(conversation_a, text="reply")
    assert broker.queues["bulk"].qsize() == 1
    assert broker.queues["outbound"].qsize() == 1


def test_queued_messages_whose_job_was_lost_are_requeued(conversation_a, in_alpha, sandbox):
    from whatsapp.actors import requeue_stuck_sends

    message = send_text_message(conversation=conversation_a, text="lost job")  # no on-commit: job lost
    Message.objects.filter(pk=message.pk).update(created_at=timezone.now() - dt.timedelta(minutes=5))
    requeue_stuck_sends.fn()
    run_jobs()
    message.refresh_from_db()
    assert message.status == "sent"


def test_interactive_reaction_and_read_receipts_reach_the_graph_api(
    conversation_a, tenant_a, sandbox, public_client
):
    from conversations.services import mark_as_read, send_interactive_message, send_reaction
    from whatsapp.testing import fixture

    deliver(public_client, fixture("text"))
    with schema_context(tenant_a.schema_name):
        inbound = Message.objects.get(direction="in")
        conversation = inbound.conversation
        with TestCase.captureOnCommitCallbacks(execute=True):
            send_interactive_message(
                conversation=conversation,
                interactive={
                    "type": "button",
                    "body": {"text": "Which colour?"},
                    "action": {"buttons": [{"type": "reply", "reply": {"id": "blue", "title": "Blue"}}]},
                },
            )
            send_reaction(conversation=conversation, message=inbound, emoji="❤️")
            mark_as_read(message=inbound)
        run_jobs()
        inbound.refresh_from_db()
        assert inbound.reactions == {"business": "❤️"}
        assert inbound.conversation.unread_count == 0
    kinds = [s["body"]["type"] for s in sandbox.sent()]
    assert kinds == ["interactive", "reaction"]
    assert sandbox.sent()[1]["body"]["reaction"] == {"message_id": inbound.wamid, "emoji": "❤️"}
    assert sandbox.state.read_receipts[0]["message_id"] == inbound.wamid


def test_an_interactive_message_with_four_buttons_is_refused(conversation_a, in_alpha):
    from conversations.services import send_interactive_message

    buttons = [{"type": "reply", "reply": {"id": str(i), "title": f"B{i}"}} for i in range(4)]
    with pytest.raises(MessageRejected) as rejected:
        send_interactive_message(
            conversation=conversation_a,
            interactive={"type": "button", "body": {"text": "?"}, "action": {"buttons": buttons}},
        )
    assert rejected.value.code == "invalid_interactive"
