"""Account-level webhooks (no phone_number_id: template status, category and quality, account updates):
routed by entry.id, the WhatsApp Business Account, and accepted with the platform's secret only. Payload
shapes from Meta's webhook reference (message_template_status_update, template_category_update,
message_template_quality_update)."""

from __future__ import annotations

from typing import Any

import pytest
from django_tenants.utils import schema_context

from tenants.models import WebhookEvent
from whatsapp.models import MessageTemplate
from whatsapp.testing import PNID_B, WABA_A, WABA_B, connect_number, post_webhook, run_jobs

TEMPLATE_ID_A = "1689556908129832"
TEMPLATE_ID_B = "2689556908129832"


def account_event(waba_id: str, field: str, value: dict[str, Any]) -> dict[str, Any]:
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": waba_id, "time": 1751247548, "changes": [{"value": value, "field": field}]}],
    }


def status_update(template_id: str, event: str = "REJECTED", **extra: Any) -> dict[str, Any]:
    return {
        "event": event,
        "message_template_id": int(template_id),  # an integer in Meta's payloads
        "message_template_name": "order_confirmation",
        "message_template_language": "en-US",
        "reason": "INVALID_FORMAT" if event == "REJECTED" else "NONE",
        "message_template_category": "MARKETING",
        **extra,
    }


@pytest.fixture
def templates(channel_a: Any, channel_b: Any, tenant_a: Any, tenant_b: Any) -> None:
    """The same template name in both tenants' accounts, both pending review."""
    for tenant, waba_id, meta_id in ((tenant_a, WABA_A, TEMPLATE_ID_A), (tenant_b, WABA_B, TEMPLATE_ID_B)):
        with schema_context(tenant.schema_name):
            MessageTemplate.objects.create(
                waba_id=waba_id,
                meta_id=meta_id,
                name="order_confirmation",
                language="en_US",
                category="UTILITY",
                status="PENDING",
            )


def _template(tenant: Any) -> MessageTemplate:
    with schema_context(tenant.schema_name):
        return MessageTemplate.objects.get(name="order_confirmation")


def test_a_template_status_update_reaches_the_template_of_the_account_it_names(
    public_client, templates, tenant_a, tenant_b
):
    body = account_event(WABA_A, "message_template_status_update", status_update(TEMPLATE_ID_A))

    assert post_webhook(public_client, body).status_code == 200
    run_jobs()

    alpha = _template(tenant_a)
    assert (alpha.status, alpha.status_reason, alpha.category) == ("REJECTED", "INVALID_FORMAT", "MARKETING")
    assert _template(tenant_b).status == "PENDING"
    event = WebhookEvent.objects.get()
    assert (event.status, event.tenant_id, event.waba_ids) == ("processed", tenant_a.pk, [WABA_A])


def test_an_approval_clears_the_reason_and_matches_by_name_and_language(public_client, templates, tenant_a):
    rejected = status_update(TEMPLATE_ID_A, event="REJECTED")
    approved = status_update(TEMPLATE_ID_A, event="APPROVED")
    del approved["message_template_id"]  # matched by name and en-US ~ en_US instead

    for update in (rejected, approved):
        post_webhook(public_client, account_event(WABA_A, "message_template_status_update", update))
    run_jobs()

    assert (_template(tenant_a).status, _template(tenant_a).status_reason) == ("APPROVED", "")


def test_category_and_quality_updates_change_the_template(public_client, templates, tenant_a, tenant_b):
    category = {
        "message_template_id": int(TEMPLATE_ID_B),
        "message_template_name": "order_confirmation",
        "message_template_language": "en-US",
        "previous_category": "UTILITY",
        "new_category": "MARKETING",
    }
    quality = {
        "previous_quality_score": "GREEN",
        "new_quality_score": "YELLOW",
        "message_template_id": int(TEMPLATE_ID_B),
        "message_template_name": "order_confirmation",
        "message_template_language": "en-US",
    }
    post_webhook(public_client, account_event(WABA_B, "template_category_update", category))
    post_webhook(public_client, account_event(WABA_B, "message_template_quality_update", quality))
    run_jobs()

    beta = _template(tenant_b)
    assert (beta.category, beta.quality_score, beta.status) == ("MARKETING", "YELLOW", "PENDING")
    assert _template(tenant_a).category == "UTILITY"


def test_a_template_update_reaches_every_workspace_with_a_number_of_that_account(
    public_client, templates, tenant_a, tenant_b, sandbox
):
    # Beta also connected a number of alpha's account (Meta confirmed it with beta's token).
    connect_number(sandbox, tenant_b, "306540352242922", WABA_A, "token-beta-2")
    with schema_context(tenant_b.schema_name):
        MessageTemplate.objects.create(
            waba_id=WABA_A,
            meta_id=TEMPLATE_ID_A,
            name="order_confirmation",
            language="en_US",
            status="PENDING",
        )

    post_webhook(
        public_client, account_event(WABA_A, "message_template_status_update", status_update(TEMPLATE_ID_A))
    )
    run_jobs()

    assert _template(tenant_a).status == "REJECTED"
    with schema_context(tenant_b.schema_name):
        assert MessageTemplate.objects.get(waba_id=WABA_A).status == "REJECTED"
        assert MessageTemplate.objects.get(waba_id=WABA_B).status == "PENDING"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("a_field_meta_adds_next_year", {"anything": [1, {"nested": None}]}),
        ("phone_number_quality_update", {"display_phone_number": "15550783881", "event": "FLAGGED"}),
        ("account_update", {"phone_number": "15550783881", "event": "VERIFIED_ACCOUNT"}),
        ("message_template_status_update", {"event": "APPROVED"}),  # names no template
    ],
)
def test_an_account_level_field_that_is_not_used_is_answered_200_and_ignored(
    public_client, templates, tenant_a, field, value
):
    response = post_webhook(public_client, account_event(WABA_A, field, value))

    assert response.status_code == 200
    run_jobs()
    event = WebhookEvent.objects.get()
    assert (event.status, event.error) == ("processed", "")
    assert _template(tenant_a).status == "PENDING"


def test_an_unknown_number_level_field_is_ignored_too(public_client, channel_a, tenant_a):
    from whatsapp import payloads

    body = payloads.event(phone_number_id="106540352242922", messages=[])
    body["entry"][0]["changes"][0]["field"] = "smb_message_echoes"

    assert post_webhook(public_client, body).status_code == 200
    run_jobs()
    assert WebhookEvent.objects.get().status == "processed"


def test_an_account_level_update_needs_the_platform_secret(
    public_client, templates, tenant_a, tenant_b, channel_b
):
    from whatsapp.services import update_channel_credentials

    with schema_context(tenant_b.schema_name):
        update_channel_credentials(channel=channel_b, app_secret="beta-secret", by_role="owner")

    for waba_id, template_id in ((WABA_A, TEMPLATE_ID_A), (WABA_B, TEMPLATE_ID_B)):
        body = account_event(waba_id, "message_template_status_update", status_update(template_id))
        response = post_webhook(public_client, body, secret="beta-secret")
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "invalid_signature"
    assert not WebhookEvent.objects.exists()
    assert _template(tenant_a).status == _template(tenant_b).status == "PENDING"
    # Beta's own secret still signs beta's number's messages.
    from whatsapp import payloads

    text = payloads.text_event(phone_number_id=PNID_B, wa_id="16505551234", text="hi")
    assert post_webhook(public_client, text, secret="beta-secret").status_code == 200


def test_an_update_for_an_account_no_workspace_has_is_kept_as_unrouted(public_client, db):
    body = account_event("999999999999999", "message_template_status_update", status_update(TEMPLATE_ID_A))

    assert post_webhook(public_client, body).status_code == 200
    run_jobs()
    event = WebhookEvent.objects.get()
    assert event.status == "unrouted"
    assert "999999999999999" in event.error
