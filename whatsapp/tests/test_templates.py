from __future__ import annotations

import datetime as dt

import pytest
from django.test import TestCase
from django.utils import timezone
from django_tenants.utils import schema_context

from conversations.services import MessageRejected, send_template_message
from crm.models import Contact
from whatsapp.models import MessageTemplate
from whatsapp.services import sync_templates
from whatsapp.testing import WABA_A, run_jobs

ORDER_UPDATE = {
    "name": "order_update",
    "language": "en_US",
    "status": "APPROVED",
    "category": "UTILITY",
    "id": "594425479261596",
    "components": [
        {"type": "HEADER", "format": "IMAGE", "example": {"header_handle": ["https://example.test/h.jpg"]}},
        {"type": "BODY", "text": "Hi {{1}}, your order {{2}} has shipped."},
        {"type": "FOOTER", "text": "Lucky Shrub"},
        {
            "type": "BUTTONS",
            "buttons": [
                {"type": "URL", "text": "Track", "url": "https://example.test/track/{{1}}"},
                {"type": "QUICK_REPLY", "text": "Stop"},
            ],
        },
    ],
}


def _templates(count: int) -> list[dict]:
    items = [ORDER_UPDATE]
    for i in range(count - 1):
        items.append(
            {
                "name": f"promo_{i}",
                "language": "en_US",
                "status": "APPROVED" if i % 2 else "PENDING",
                "category": "MARKETING",
                "components": [{"type": "BODY", "text": "Hello"}],
            }
        )
    return items


@pytest.fixture
def synced(channel_a, tenant_a, sandbox):
    sandbox.set_templates(WABA_A, _templates(3))
    with schema_context(tenant_a.schema_name):
        sync_templates(channel=channel_a)
        yield MessageTemplate.objects.get(name="order_update")


def test_templates_are_synced_across_every_page(channel_a, tenant_a, sandbox):
    sandbox.set_templates(WABA_A, _templates(230))  # three pages of 100
    with schema_context(tenant_a.schema_name):
        assert sync_templates(channel=channel_a) == 230
        assert MessageTemplate.objects.filter(waba_id=WABA_A).count() == 230
        sandbox.set_templates(WABA_A, _templates(5))
        assert sync_templates(channel=channel_a) == 5
        assert MessageTemplate.objects.count() == 5  # removed at Meta, removed here


def test_the_sync_command_and_the_periodic_job_sync_templates(channel_a, tenant_a, sandbox):
    from django.core.management import call_command

    from whatsapp.actors import sync_all_templates

    sandbox.set_templates(WABA_A, _templates(2))
    call_command("sync_templates", "--tenant", tenant_a.slug)
    with schema_context(tenant_a.schema_name):
        assert MessageTemplate.objects.count() == 2
    sandbox.set_templates(WABA_A, _templates(4))
    sync_all_templates.fn()
    run_jobs()
    with schema_context(tenant_a.schema_name):
        assert MessageTemplate.objects.count() == 4


def test_placeholders_are_read_from_the_components(synced):
    assert synced.body_placeholders() == ["1", "2"]
    assert synced.header_format() == "IMAGE"
    assert synced.button_placeholders() == {0: ["1"]}


def test_a_template_is_sent_with_header_body_and_button_parameters(synced, conversation_a, tenant_a, sandbox):
    with schema_context(tenant_a.schema_name), TestCase.captureOnCommitCallbacks(execute=True):
        message = send_template_message(
            conversation=conversation_a,
            template="order_update",
            parameters={
                "header": {"link": "https://example.test/parcel.jpg"},
                "body": ["Sheena", "#1042"],
                "buttons": {"0": "1042"},
            },
        )
    assert message.preview == "Hi Sheena, your order #1042 has shipped."
    with schema_context(tenant_a.schema_name):
        run_jobs()
    body = sandbox.sent()[0]["body"]
    assert body["type"] == "template"
    assert body["template"]["name"] == "order_update"
    assert body["template"]["language"] == {"code": "en_US"}
    components = body["template"]["components"]
    assert components[0] == {
        "type": "header",
        "parameters": [{"type": "image", "image": {"link": "https://example.test/parcel.jpg"}}],
    }
    assert components[1]["parameters"] == [
        {"type": "text", "text": "Sheena"},
        {"type": "text", "text": "#1042"},
    ]
    assert components[2] == {
        "type": "button",
        "sub_type": "url",
        "index": "0",
        "parameters": [{"type": "text", "text": "1042"}],
    }


@pytest.mark.parametrize(
    "parameters",
    [
        {"header": {"link": "https://x.test/a.jpg"}, "body": ["only one"], "buttons": {"0": "1"}},
        {"header": {"link": "https://x.test/a.jpg"}, "body": ["a", "b", "c"], "buttons": {"0": "1"}},
        {"body": ["a", "b"], "buttons": {"0": "1"}},
        {"header": {"link": "https://x.test/a.jpg"}, "body": ["a", "b"]},
    ],
)
def test_wrong_parameters_are_refused_before_anything_is_queued(parameters, synced, conversation_a, tenant_a):
    from conversations.models import Message

    with schema_context(tenant_a.schema_name):
        with pytest.raises(MessageRejected) as rejected:
            send_template_message(conversation=conversation_a, template=synced, parameters=parameters)
        assert rejected.value.code == "template_parameters"
        assert Message.objects.count() == 0


def test_templates_are_allowed_outside_the_24_hour_window(synced, conversation_a, tenant_a):
    with schema_context(tenant_a.schema_name):
        Contact.objects.filter(pk=conversation_a.contact_id).update(
            last_inbound_at=timezone.now() - dt.timedelta(days=3)
        )
        conversation_a.contact.refresh_from_db()
        message = send_template_message(
            conversation=conversation_a,
            template=synced,
            parameters={"header": {"id": "123"}, "body": ["a", "b"], "buttons": ["x"]},
        )
        assert message.status == "queued"


def test_an_unapproved_template_is_refused(synced, conversation_a, tenant_a):
    with schema_context(tenant_a.schema_name), pytest.raises(MessageRejected) as rejected:
        send_template_message(conversation=conversation_a, template="promo_0", parameters=[])
    assert rejected.value.code == "template_not_approved"
