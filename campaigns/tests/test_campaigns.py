from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.core import mail
from django.test import TestCase
from django.utils import timezone
from django_tenants.utils import schema_context

from campaigns import services
from campaigns.models import Campaign, CampaignSettings, Recipient
from campaigns.tests.conftest import make_contact
from conversations.models import BotSettings, Channel, Message
from core.errors import ServiceError
from crm.models import Contact
from whatsapp.models import MessageTemplate
from whatsapp.testing import run_jobs


def _campaign(channel: Any, **overrides: Any) -> Campaign:
    options: dict[str, Any] = {
        "name": "Spring",
        "channel": channel,
        "template": "spring_sale",
        "language": "en",
        "audience": {"tags": ["vip"]},
        "parameters": {"body": ["{{contact.first_name}}", "20%"]},
    }
    options.update(overrides)
    return services.create_campaign(**options)


def _dispatch_all(campaign: Campaign, **kwargs: Any) -> None:
    with TestCase.captureOnCommitCallbacks(execute=False):
        while services.dispatch_chunk(campaign_id=campaign.pk, **kwargs).outcome == "sent_chunk":
            pass


def _statuses(campaign: Campaign) -> dict[str, str]:
    return {
        r.contact.phone: r.status
        for r in Recipient.objects.filter(campaign=campaign).select_related("contact")
    }


def test_the_audience_is_tags_and_attributes_with_consent_blocks_and_duplicates_applied(templates, tenant_a):
    with schema_context(tenant_a.schema_name):
        make_contact("+15550000001", name="Ann", tags=("vip", "spring"), attributes={"city": "Oslo"})
        make_contact("+15550000002", name="Bob", tags=("vip",), attributes={"city": "Rome"})
        make_contact(
            "+15550000003", name="Cy", tags=("vip",), consent="opted_out", attributes={"city": "Oslo"}
        )
        make_contact(
            "+15550000004", name="Di", tags=("spring",), consent="unknown", attributes={"city": "Oslo"}
        )
        make_contact("+15550000005", name="Ed", tags=("vip",), blocked=True)
        make_contact("+15550000006", name="Fay", tags=("other",))

        both = services.resolve_audience(audience={"tags": ["vip", "spring"]}, category="MARKETING")
        assert both.counts() == {
            "total": 5,
            "eligible": 2,
            "skipped": 3,
            "skipped_by_reason": {"opted_out": 1, "no_consent": 1, "blocked": 1},
            "duplicates_removed": 1,  # Ann has both tags: one recipient
        }
        oslo = services.resolve_audience(audience={"attributes": {"city": "Oslo"}}, category="MARKETING")
        assert [c.name for c in oslo.eligible] == ["Ann"]
        # A utility template reaches opted-out and unknown contacts; blocked ones never.
        utility = services.resolve_audience(audience={"attributes": {"city": "Oslo"}}, category="UTILITY")
        assert sorted(c.name for c in utility.eligible) == ["Ann", "Cy", "Di"]
        CampaignSettings.objects.update_or_create(pk=1, defaults={"marketing_to_unknown": True})
        allowed = services.resolve_audience(audience={"tags": ["spring"]}, category="MARKETING")
        assert sorted(c.name for c in allowed.eligible) == ["Ann", "Di"]


def test_the_audience_by_last_inbound_date(templates, tenant_a):
    now = timezone.now()
    with schema_context(tenant_a.schema_name):
        make_contact("+15550000001", name="Recent", last_inbound_at=now - dt.timedelta(days=1))
        make_contact("+15550000002", name="Old", last_inbound_at=now - dt.timedelta(days=40))
        make_contact("+15550000003", name="Never")
        since = (now - dt.timedelta(days=7)).date().isoformat()
        found = services.resolve_audience(audience={"last_inbound_after": since}, category="UTILITY")
        assert [c.name for c in found.eligible] == ["Recent"]
        with pytest.raises(ServiceError) as bad:
            services.resolve_audience(audience={"last_inbound_after": "yesterday"}, category="UTILITY")
        assert bad.value.code == "invalid_audience"


def test_a_csv_audience_creates_and_updates_contacts_through_the_import(templates, tenant_a):
    with schema_context(tenant_a.schema_name):
        make_contact("+14155552671", name="Known", consent="unknown")
        csv = "phone,name,marketing_consent\n+14155552671,Known,opted_in\n+442071838750,New,opted_in\nbad,,\n"
        audience = services.import_audience_csv(filename="a.csv", content=csv.encode(), created_by=None)
        assert audience == {"phones": ["+14155552671", "+442071838750"]}
        assert Contact.objects.get(phone="+442071838750").name == "New"
        found = services.resolve_audience(audience=audience, category="MARKETING")
        assert sorted(c.name for c in found.eligible) == ["Known", "New"]


def test_parameters_are_checked_against_the_template_when_the_campaign_is_created(templates, tenant_a):
    with schema_context(tenant_a.schema_name):
        with pytest.raises(ServiceError) as wrong:
            _campaign(templates, parameters={"body": ["only one"]})
        assert wrong.value.code == "template_parameters"
        with pytest.raises(ServiceError) as no_media:
            _campaign(templates, template="order_note", parameters={"body": ["x"]})
        assert no_media.value.code == "template_parameters"
        with pytest.raises(ServiceError) as unknown:
            _campaign(templates, template="nope")
        assert unknown.value.code == "unknown_template"
        _campaign(
            templates,
            template="order_note",
            parameters={"header": {"link": "https://example.test/a.jpg"}, "body": ["{{contact.name}}"]},
        )
        assert Campaign.objects.count() == 1


def test_each_recipient_s_parameters_are_resolved_and_an_empty_value_skips_that_recipient(
    templates, tenant_a
):
    with schema_context(tenant_a.schema_name):
        make_contact("+15550000001", name="Ann Lee", tags=("vip",), attributes={"code": "A1"})
        make_contact("+15550000002", name="Bob", tags=("vip",))
        campaign = _campaign(
            templates, parameters={"body": ["{{contact.first_name}}", "{{contact.attributes.code}}"]}
        )
        assert campaign.total == 2
        services.start_campaign(campaign=campaign)
        ann, bob = Recipient.objects.filter(campaign=campaign).order_by("contact__phone")
        assert ann.status == "pending" and ann.parameters == {"body": ["Ann", "A1"]}
        assert (bob.status, bob.skip_reason) == ("skipped", "missing_parameter")
        assert "contact.attributes.code" in bob.error_title
        assert Message.objects.count() == 0  # nothing queued by start


def test_a_campaign_sends_through_the_reply_path_and_follows_statuses_and_replies(
    templates, tenant_a, sandbox
):
    with schema_context(tenant_a.schema_name):
        for i in range(3):
            make_contact(f"+1555000000{i}", name=f"C{i}", tags=("vip",))
        campaign = _campaign(templates)
        with TestCase.captureOnCommitCallbacks(execute=True):
            services.start_campaign(campaign=campaign)
        run_jobs()
        assert len(sandbox.sent()) == 3
        bodies = sorted(
            s["body"]["template"]["components"][0]["parameters"][0]["text"] for s in sandbox.sent()
        )
        assert bodies == ["C0", "C1", "C2"]
        messages = list(Message.objects.order_by("id"))
        assert all(m.bulk and m.idempotency_key.startswith(f"campaign:{campaign.pk}:") for m in messages)
        # Statuses as Meta's webhooks leave them; a reply after the campaign message.
        Message.objects.filter(pk=messages[0].pk).update(status="read")
        Message.objects.filter(pk=messages[1].pk).update(
            status="failed", error_code=131049, error_title="limit"
        )
        Message.objects.create(
            conversation=messages[2].conversation,
            direction="in",
            type="text",
            text="Yes please",
            status="received",
            timestamp=timezone.now() + dt.timedelta(seconds=5),
        )
        counts = services.refresh_progress(campaign=campaign)
        assert (counts["read"], counts["failed"], counts["replied"]) == (1, 1, 1)
        failed = Recipient.objects.get(campaign=campaign, message=messages[1])
        assert (failed.error_code, failed.error_title) == (131049, "limit")
        campaign.refresh_from_db()
        assert campaign.status == "completed"


def test_a_reply_in_the_same_second_as_the_campaign_message_counts_as_replied(templates, tenant_a, sandbox):
    """Meta stamps inbound messages to the second: a STOP or "yes" within the second the campaign message
    was made is still after it."""
    with schema_context(tenant_a.schema_name):
        make_contact("+15550000001", name="Quick", tags=("vip",))
        campaign = _campaign(templates)
        with TestCase.captureOnCommitCallbacks(execute=True):
            services.start_campaign(campaign=campaign)
        run_jobs()
        message = Message.objects.get()
        Message.objects.filter(pk=message.pk).update(
            timestamp=message.timestamp.replace(microsecond=900_000), status="delivered"
        )
        before = message.timestamp.replace(microsecond=0) - dt.timedelta(seconds=1)
        Message.objects.create(
            conversation=message.conversation,
            direction="in",
            type="text",
            text="too early",
            status="received",
            timestamp=before,
        )
        assert services.refresh_progress(campaign=campaign)["replied"] == 0  # a second before: no reply

        Message.objects.create(
            conversation=message.conversation,
            direction="in",
            type="text",
            text="STOP",
            status="received",
            timestamp=message.timestamp.replace(microsecond=0),  # Meta's stamp of the same second
        )
        assert services.refresh_progress(campaign=campaign)["replied"] == 1


def test_a_schedule_and_the_send_window_are_in_the_workspace_s_time_zone(templates, tenant_a, sandbox):
    with schema_context(tenant_a.schema_name):
        BotSettings.objects.update_or_create(pk=1, defaults={"time_zone": "Asia/Tokyo"})
        make_contact("+15550000001", name="Ann", tags=("vip",))
        # 09:00-20:00 in Tokyo is 00:00-11:00 UTC.
        start = dt.datetime(2026, 3, 1, 22, 0, tzinfo=dt.UTC)
        campaign = _campaign(
            templates,
            schedule_at=start + dt.timedelta(hours=1),
            window_start=dt.time(9, 0),
            window_end=dt.time(20, 0),
        )
        services.start_campaign(campaign=campaign, now=start)
        campaign.refresh_from_db()
        assert campaign.status == "scheduled"
        assert services.run_due_campaigns(now=start + dt.timedelta(minutes=59)) == []
        assert services.run_due_campaigns(now=start + dt.timedelta(hours=1)) == [campaign.pk]
        campaign.refresh_from_db()
        assert campaign.status == "running"
        # 23:30 UTC is 08:30 in Tokyo: wait until 09:00 there.
        result = services.dispatch_chunk(
            campaign_id=campaign.pk, now=start + dt.timedelta(hours=1, minutes=30)
        )
        assert result.outcome == "waiting_window"
        assert result.retry_at == dt.datetime(2026, 3, 2, 0, 0, tzinfo=dt.UTC)
        assert Message.objects.count() == 0
        campaign.refresh_from_db()
        assert campaign.waiting.startswith("Outside the send window")
        # 19:59 Tokyo: inside; 20:00: closed until the next morning.
        inside = dt.datetime(2026, 3, 2, 10, 59, tzinfo=dt.UTC)
        assert services.window_opens_at(
            campaign, dt.datetime(2026, 3, 2, 11, 0, tzinfo=dt.UTC)
        ) == dt.datetime(2026, 3, 3, 0, 0, tzinfo=dt.UTC)
        with TestCase.captureOnCommitCallbacks(execute=False):
            assert services.dispatch_chunk(campaign_id=campaign.pk, now=inside).outcome == "sent_chunk"
        assert Message.objects.count() == 1


def test_nothing_is_sent_after_a_pause_and_resume_sends_the_rest(templates, tenant_a, sandbox):
    with schema_context(tenant_a.schema_name):
        for i in range(5):
            make_contact(f"+1555000000{i}", name=f"C{i}", tags=("vip",))
        campaign = _campaign(templates)
        services.start_campaign(campaign=campaign)
        with TestCase.captureOnCommitCallbacks(execute=True):
            assert services.dispatch_chunk(campaign_id=campaign.pk, size=3).outcome == "sent_chunk"
        # Three sends are queued in the broker; the pause lands before a worker picks them up.
        services.pause_campaign(campaign=campaign)
        run_jobs()
        assert sandbox.sent() == []
        assert services.dispatch_chunk(campaign_id=campaign.pk).outcome == "not_running"
        assert Message.objects.count() == 3
        held = set(Message.objects.values_list("status", "error_title"))
        assert held == {("cancelled", services.HELD_TITLE)}
        counts = services.refresh_progress(campaign=campaign)
        assert (counts["queued"], counts["pending"], counts["failed"]) == (3, 2, 0)

        with TestCase.captureOnCommitCallbacks(execute=True):
            services.resume_campaign(campaign=campaign)
        run_jobs()
        assert len(sandbox.sent()) == 5
        assert Message.objects.count() == 5
        counts = services.refresh_progress(campaign=campaign)
        assert counts["sent"] == 5
        campaign.refresh_from_db()
        assert campaign.status == "completed"


def test_a_cancelled_campaign_sends_nothing_more(templates, tenant_a, sandbox):
    with schema_context(tenant_a.schema_name):
        for i in range(4):
            make_contact(f"+1555000000{i}", name=f"C{i}", tags=("vip",))
        campaign = _campaign(templates)
        services.start_campaign(campaign=campaign)
        with TestCase.captureOnCommitCallbacks(execute=True):
            services.dispatch_chunk(campaign_id=campaign.pk, size=2)
        services.cancel_campaign(campaign=campaign)
        run_jobs()
        assert sandbox.sent() == []
        counts = services.counters(campaign)
        assert counts["skipped"] == 4
        assert set(Recipient.objects.values_list("skip_reason", flat=True)) == {"cancelled"}
        with pytest.raises(ServiceError) as again:
            services.resume_campaign(campaign=campaign)
        assert again.value.code == "invalid_state"


def test_a_contact_who_opts_out_with_the_template_s_button_during_a_campaign_is_skipped(
    templates, tenant_a, sandbox, client
):
    from django.conf import settings
    from django.test import Client

    from whatsapp.testing import fixture, post_webhook

    with schema_context(tenant_a.schema_name):
        first = make_contact("+15550000001", name="First", tags=("vip",))
        make_contact("+16505551234", name="Sheena", tags=("vip",), wa_id="16505551234")
        make_contact("+15550000003", name="Third", tags=("vip",))
        campaign = _campaign(templates)
        services.start_campaign(campaign=campaign)
        with TestCase.captureOnCommitCallbacks(execute=True):
            services.dispatch_chunk(campaign_id=campaign.pk, size=1)
        assert Recipient.objects.get(contact=first).status == "queued"
    # Sheena answers an earlier campaign's "Stop promotions" button (the fixture's payload: Unsubscribe).
    body = fixture("button")
    message = body["entry"][0]["changes"][0]["value"]["messages"][0]
    message["timestamp"] = str(int(timezone.now().timestamp()))
    message["button"] = {"payload": "Stop promotions", "text": "Stop promotions"}
    assert post_webhook(Client(HTTP_HOST="localhost"), body).status_code == 200
    assert settings  # the webhook is public
    run_jobs()
    with schema_context(tenant_a.schema_name):
        assert Contact.objects.get(phone="+16505551234").marketing_consent == "opted_out"
        _dispatch_all(campaign)
        statuses = _statuses(campaign)
        assert statuses["+16505551234"] == "skipped"
        assert Recipient.objects.get(contact__phone="+16505551234").skip_reason == "opted_out"
        assert statuses["+15550000003"] == "queued"
        assert not Message.objects.filter(
            idempotency_key__endswith=":" + str(Contact.objects.get(phone="+16505551234").pk)
        ).exists()


@pytest.mark.parametrize("cause", ["template_paused", "number_stopped", "recategorised"])
def test_a_paused_template_or_a_stopped_number_pauses_the_campaign_and_tells_the_owners(
    cause, templates, tenant_a, sandbox
):
    with schema_context(tenant_a.schema_name):
        for i in range(3):
            make_contact(f"+1555000000{i}", name=f"C{i}", tags=("vip",))
        campaign = _campaign(templates)
        services.start_campaign(campaign=campaign)
        with TestCase.captureOnCommitCallbacks(execute=True):
            services.dispatch_chunk(campaign_id=campaign.pk, size=1)
        if cause == "template_paused":
            MessageTemplate.objects.filter(name="spring_sale").update(
                status="PAUSED", status_reason="Low quality"
            )
        elif cause == "number_stopped":
            Channel.objects.filter(pk=templates.pk).update(
                status=Channel.Status.DISABLED, status_reason="131048: Spam rate limit hit"
            )
        else:
            MessageTemplate.objects.filter(name="spring_sale").update(category="UTILITY")
        mail.outbox.clear()
        with TestCase.captureOnCommitCallbacks(execute=True):
            assert services.dispatch_chunk(campaign_id=campaign.pk).outcome == "paused"
            assert services.dispatch_chunk(campaign_id=campaign.pk).outcome == "not_running"
        run_jobs()
        assert sandbox.sent() == []  # the queued one was held
        campaign.refresh_from_db()
        assert campaign.status == "paused"
        expected = {
            "template_paused": "PAUSED: Low quality",
            "number_stopped": "131048",
            "recategorised": "category",
        }
        assert expected[cause] in campaign.pause_reason
        assert len(mail.outbox) == 1
        assert mail.outbox[0].to == ["owner@alpha.test"]
        assert campaign.pause_reason in mail.outbox[0].body
        if cause != "recategorised":
            with pytest.raises(ServiceError):
                services.resume_campaign(campaign=campaign)


def test_the_messaging_limit_holds_recipients_beyond_it_until_the_next_window(
    templates, tenant_a, sandbox, monkeypatch
):
    with schema_context(tenant_a.schema_name):
        for i in range(5):
            make_contact(f"+1555000000{i}", name=f"C{i}", tags=("vip",))
        monkeypatch.setattr(services, "TIERS", {"TIER_TINY": 3})
        from whatsapp.models import BusinessAccount

        BusinessAccount.objects.update_or_create(
            waba_id=templates.waba_id, defaults={"messaging_limit": "TIER_TINY"}
        )
        assert services.messaging_limit(templates) == 3
        campaign = _campaign(templates)
        services.start_campaign(campaign=campaign)
        with TestCase.captureOnCommitCallbacks(execute=False):
            assert services.dispatch_chunk(campaign_id=campaign.pk).outcome == "sent_chunk"
            result = services.dispatch_chunk(campaign_id=campaign.pk)
        assert result.outcome == "waiting_limit"
        assert Message.objects.count() == 3
        campaign.refresh_from_db()
        assert "Messaging limit of 3" in campaign.waiting
        # A day later the window has room again.
        later = timezone.now() + dt.timedelta(hours=25)
        with TestCase.captureOnCommitCallbacks(execute=False):
            assert services.dispatch_chunk(campaign_id=campaign.pk, now=later).outcome == "sent_chunk"
        assert Message.objects.count() == 5


def test_a_dispatcher_run_twice_never_creates_a_second_message(templates, tenant_a):
    with schema_context(tenant_a.schema_name):
        make_contact("+15550000001", name="Ann", tags=("vip",))
        campaign = _campaign(templates)
        services.start_campaign(campaign=campaign)
        with TestCase.captureOnCommitCallbacks(execute=False):
            services.dispatch_chunk(campaign_id=campaign.pk)
        # As after a dispatcher killed between its commit and its bookkeeping: the recipient looks pending.
        Recipient.objects.update(status="pending", message=None)
        with TestCase.captureOnCommitCallbacks(execute=False):
            services.dispatch_chunk(campaign_id=campaign.pk)
        assert Message.objects.count() == 1
        assert Recipient.objects.get().message_id == Message.objects.get().pk
