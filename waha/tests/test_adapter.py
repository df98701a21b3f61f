"""The WAHA adapter (registered for "waha" at start-up): what it refuses and why, the session's state as
the number's status, and the composer hiding what a WhatsApp-Web number lacks."""

from __future__ import annotations

import pytest
from django_tenants.utils import schema_context

from conftest import login
from conversations import channels
from conversations.errors import MessageRejected
from conversations.models import Channel, Message
from waha.adapter import WahaAdapter
from waha.models import WahaSession


def test_the_adapter_is_registered_for_waha_numbers(waha_a):
    adapter = channels.adapter_for(waha_a.channel)
    assert isinstance(adapter, WahaAdapter) and adapter.provider == "waha"
    assert isinstance(adapter, channels.ChannelAdapter)
    assert "waha" in channels.providers()


def test_templates_are_refused_with_a_stable_code(tenant_a, waha_a):
    adapter = channels.adapter_for(waha_a.channel)
    with pytest.raises(MessageRejected) as caught:
        adapter.prepare_template(channel=waha_a.channel, template="hello", language=None, parameters=None)
    assert caught.value.code == "templates_unsupported" and caught.value.status == 422
    assert adapter.approved_templates(channel=waha_a.channel) == []
    assert adapter.template_category(template_id=1) == ""


@pytest.mark.parametrize(
    ("status", "wanted"),
    [
        ("WORKING", ""),
        ("SCAN_QR_CODE", "is not linked (SCAN_QR_CODE)"),
        ("STARTING", "is starting"),
        ("FAILED", "failed (FAILED)"),
        ("STOPPED", "is stopped (STOPPED)"),
    ],
)
def test_the_number_status_is_the_sessions_state(tenant_a, waha_a, status, wanted):
    with schema_context(tenant_a.schema_name):
        WahaSession.objects.filter(pk=waha_a.session.pk).update(status=status)
        found = channels.adapter_for(waha_a.channel).number_status(channel=waha_a.channel)
    assert (wanted in found) if wanted else found == ""


def test_an_inactive_number_says_why(tenant_a, waha_a):
    with schema_context(tenant_a.schema_name):
        channel = Channel.objects.get(pk=waha_a.channel.pk)
        channel.status, channel.status_reason = Channel.Status.DISABLED, "Switched off by an admin"
        channel.save()
        found = channels.adapter_for(channel).number_status(channel=channel)
    assert "Switched off by an admin" in found


def test_the_composer_shows_a_session_waiting_for_its_qr_code(
    client_a, tenant_a, owner_a, waha_a, waha_conversation_a
):
    with schema_context(tenant_a.schema_name):
        WahaSession.objects.filter(pk=waha_a.session.pk).update(status="SCAN_QR_CODE")
    login(client_a, tenant_a, owner_a)
    page = client_a.get(f"/inbox/c/{waha_conversation_a.pk}/", HTTP_HX_REQUEST="true").content.decode()
    assert 'id="number-status"' in page and "SCAN_QR_CODE" in page


def test_a_hostile_session_name_is_escaped_in_the_composer(
    client_a, tenant_a, owner_a, waha_a, waha_conversation_a
):
    with schema_context(tenant_a.schema_name):
        WahaSession.objects.filter(pk=waha_a.session.pk).update(status="STOPPED", session="<b>x</b>")
    login(client_a, tenant_a, owner_a)
    page = client_a.get(f"/inbox/c/{waha_conversation_a.pk}/", HTTP_HX_REQUEST="true").content.decode()
    assert "<b>x</b>" not in page and "&lt;b&gt;x&lt;/b&gt;" in page


def test_the_inbox_refuses_a_template_on_a_waha_number(client_a, tenant_a, owner_a, waha_conversation_a):
    login(client_a, tenant_a, owner_a)
    response = client_a.post(f"/inbox/c/{waha_conversation_a.pk}/template/", {"template": "1"})
    # No template can be chosen on such a number: the picker is empty, so the choice is refused.
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_template"
    with schema_context(tenant_a.schema_name):
        assert not Message.objects.exists()


def test_the_api_refuses_a_template_on_a_waha_number_with_a_clear_code(
    client_a, tenant_a, owner_a, waha_conversation_a
):
    login(client_a, tenant_a, owner_a)
    response = client_a.post(
        f"/api/v1/conversations/{waha_conversation_a.pk}/messages/",
        {"type": "template", "template": "hello", "language": "en_US"},
        content_type="application/json",
    )
    assert response.status_code == 422, response.content
    assert response.json()["error"]["code"] == "templates_unsupported"
