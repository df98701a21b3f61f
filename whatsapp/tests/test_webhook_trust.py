"""Finding 1 of the security probe, from the attacker's side: a webhook body is accepted for a number only
when that number's own secret (its override, else the platform's) signed it. A tenant that gives its own
number an app secret can sign bodies with it, so those bodies must never reach another tenant."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.testing import HttpCommunicator
from django.conf import settings
from django.test import override_settings
from django_tenants.utils import schema_context
from prometheus_client import REGISTRY

from conversations.models import Message
from tenants.db import connection
from tenants.models import NumberRoute, WebhookEvent
from whatsapp import payloads
from whatsapp.sandbox import Sandbox
from whatsapp.testing import CUSTOMER, PNID_A, PNID_B, WABA_A, WABA_B, connect_number, post_webhook, run_jobs

BETA_SECRET = "beta-owns-this-secret"
ALPHA_SECRET = "alpha-owns-this-secret"
REJECTED_METRIC = "wacrm_whatsapp_webhook_rejected_changes_total"


def _text(pnid: str, text: str) -> dict[str, Any]:
    return payloads.text_event(phone_number_id=pnid, wa_id=CUSTOMER, text=text)


def _mixed(*bodies: dict[str, Any]) -> dict[str, Any]:
    """One body with the entries of several (as Meta batches entries of one app's numbers)."""
    return {"object": "whatsapp_business_account", "entry": [b["entry"][0] for b in bodies]}


def _texts(tenant: Any) -> list[str]:
    with schema_context(tenant.schema_name):
        return list(Message.objects.order_by("id").values_list("text", flat=True))


def _rejected_so_far() -> float:
    return REGISTRY.get_sample_value(REJECTED_METRIC) or 0.0


@pytest.fixture
def beta_with_own_secret(tenant_b: Any, sandbox: Sandbox) -> Any:
    """Beta's owner gives beta's number (Meta confirmed it) an app secret of beta's choosing."""
    return connect_number(
        sandbox, tenant_b, PNID_B, WABA_B, "token-beta", app_secret=BETA_SECRET, by_role="owner"
    )


# -- through the Django view ---------------------------------------------------------------------------


def test_a_body_for_another_tenants_number_signed_with_ones_own_secret_is_refused(
    public_client, channel_a, beta_with_own_secret, tenant_a
):
    response = post_webhook(public_client, _text(PNID_A, "forged for alpha"), secret=BETA_SECRET)

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "invalid_signature"
    assert not WebhookEvent.objects.exists()
    run_jobs()
    assert _texts(tenant_a) == []


def test_a_mixed_body_signed_with_ones_own_secret_is_processed_for_that_number_only(
    public_client, channel_a, beta_with_own_secret, tenant_a, tenant_b
):
    before = _rejected_so_far()
    body = _mixed(_text(PNID_B, "for beta"), _text(PNID_A, "forged for alpha"))

    response = post_webhook(public_client, body, secret=BETA_SECRET)

    assert response.status_code == 200
    event = WebhookEvent.objects.get()
    assert event.phone_number_ids == [PNID_B]
    assert _rejected_so_far() == before + 1
    run_jobs()
    event.refresh_from_db()
    assert (event.status, event.tenant_id) == (WebhookEvent.Status.PROCESSED, tenant_b.pk)
    assert _texts(tenant_b) == ["for beta"]
    assert _texts(tenant_a) == []


def test_a_body_for_a_number_without_a_secret_of_its_own_still_works_with_the_platform_secret(
    public_client, channel_a, beta_with_own_secret, tenant_a, tenant_b
):
    assert post_webhook(public_client, _text(PNID_A, "real for alpha")).status_code == 200
    # Beta's number has its own secret: the platform's no longer signs for it.
    assert post_webhook(public_client, _text(PNID_B, "platform for beta")).status_code == 403
    run_jobs()
    assert _texts(tenant_a) == ["real for alpha"]
    assert _texts(tenant_b) == []


def test_a_numbers_own_secret_verifies_that_numbers_entries_only(
    public_client, channel_a, channel_b, tenant_a, tenant_b
):
    from whatsapp.services import update_channel_credentials

    with schema_context(tenant_a.schema_name):
        update_channel_credentials(channel=channel_a, app_secret=ALPHA_SECRET, by_role="owner")

    assert post_webhook(public_client, _text(PNID_A, "alpha's own"), secret=ALPHA_SECRET).status_code == 200
    assert (
        post_webhook(public_client, _text(PNID_B, "forged for beta"), secret=ALPHA_SECRET).status_code == 403
    )
    assert post_webhook(public_client, _text(PNID_A, "platform for alpha")).status_code == 403
    run_jobs()
    assert _texts(tenant_a) == ["alpha's own"]
    assert _texts(tenant_b) == []


def test_processing_handles_only_the_changes_the_signature_check_accepted(
    channel_a, channel_b, tenant_a, tenant_b
):
    from whatsapp.services import process_webhook_events, record_webhook_events
    from whatsapp.webhook import Accepted

    body = payloads.encode(_mixed(_text(PNID_B, "accepted"), _text(PNID_A, "not accepted")))
    [event_id] = record_webhook_events(accepted=[Accepted(body=body, phone_number_ids=[PNID_B])])

    assert process_webhook_events(event_ids=[event_id]).failed == []
    assert _texts(tenant_b) == ["accepted"]
    assert _texts(tenant_a) == []


def test_an_unknown_number_is_verified_with_the_platform_secret_only(public_client, beta_with_own_secret):
    stranger = "506540352242922"
    assert post_webhook(public_client, _text(stranger, "hi"), secret=BETA_SECRET).status_code == 403
    assert post_webhook(public_client, _text(stranger, "hi")).status_code == 200
    assert WebhookEvent.objects.get().phone_number_ids == [stranger]


# -- through the ASGI ingress (the production path): its own thread and connection, so committed rows ---


@pytest.fixture
def committed_numbers(
    django_db_setup: Any, django_db_blocker: Any, _sandbox_server: Sandbox
) -> Iterator[None]:
    """Alpha's number with no secret of its own, beta's with one; committed for the ingress's thread."""
    from conversations.models import Channel
    from tenants.models import Tenant
    from whatsapp.services.webhooks import _app_secrets_cache

    _sandbox_server.reset()
    with django_db_blocker.unblock(), override_settings(WHATSAPP_GRAPH_URL=_sandbox_server.url):
        connection.set_schema_to_public()
        first = WebhookEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0
        alpha, beta = Tenant.objects.get(slug="alpha"), Tenant.objects.get(slug="beta")
        try:
            connect_number(_sandbox_server, alpha, PNID_A, WABA_A, "token-alpha")
            connect_number(
                _sandbox_server, beta, PNID_B, WABA_B, "token-beta", app_secret=BETA_SECRET, by_role="owner"
            )
            connection.set_schema_to_public()
            yield
        finally:
            from config.asgi import webhook_ingress

            webhook_ingress.close()
            connection.set_schema_to_public()
            NumberRoute.objects.filter(phone_number_id__in=[PNID_A, PNID_B]).delete()
            for tenant in (alpha, beta):
                with schema_context(tenant.schema_name):
                    Channel.objects.filter(phone_number_id__in=[PNID_A, PNID_B]).delete()
            WebhookEvent.objects.filter(pk__gt=first).delete()
            _app_secrets_cache.clear()


async def _ingress_post(body: bytes, secret: str) -> dict[str, Any]:
    from config.asgi import application

    communicator = HttpCommunicator(
        application,
        "POST",
        "/webhooks/whatsapp/",
        body=body,
        headers=[(b"host", b"localhost"), (b"x-hub-signature-256", payloads.sign(body, secret).encode())],
    )
    return await communicator.get_response(timeout=20)


@sync_to_async
def _stored_ids(body: bytes) -> list[list[str]]:
    connection.set_schema_to_public()
    try:
        return [
            list(ids)
            for ids in WebhookEvent.objects.filter(body=body).values_list("phone_number_ids", flat=True)
        ]
    finally:
        connection.close()


async def test_the_ingress_refuses_a_body_for_another_tenants_number_signed_with_ones_own_secret(
    committed_numbers,
):
    forged = payloads.encode(_text(PNID_A, "forged for alpha"))
    mixed = payloads.encode(_mixed(_text(PNID_B, "for beta"), _text(PNID_A, "forged too")))
    real = payloads.encode(_text(PNID_A, "real for alpha"))

    forged_response, mixed_response, real_response = await asyncio.gather(
        _ingress_post(forged, BETA_SECRET),
        _ingress_post(mixed, BETA_SECRET),
        _ingress_post(real, settings.WHATSAPP_APP_SECRET),
    )

    assert forged_response["status"] == 403
    assert json.loads(forged_response["body"])["error"]["code"] == "invalid_signature"
    assert await _stored_ids(forged) == []
    assert mixed_response["status"] == 200
    assert await _stored_ids(mixed) == [[PNID_B]]
    assert real_response["status"] == 200
    assert await _stored_ids(real) == [[PNID_A]]
