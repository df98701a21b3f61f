"""waha.sessions against the WAHA sandbox: linking (the platform's server and a tenant's own), the refusals
with their codes, status transitions, reconnection with backoff then "needs attention", the idle expiry,
stop, log out and remove."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.utils import timezone
from django.utils.module_loading import import_string
from django_tenants.utils import schema_context

from conversations.models import Channel
from core import crypto
from core.models import AuditEvent
from crm.models import Notification
from tenants.models import WahaRoute
from waha import actors, sessions
from waha.client import DEFAULT_EVENTS
from waha.models import WahaSession
from waha.sandbox import Sandbox
from waha.testing import make_sandbox_number, make_waha_number
from whatsapp.testing import queued_jobs

Status = WahaSession.Status
CLOSED_PORT = "http://127.0.0.1:9"


def _connect(tenant: Any, **kwargs: Any) -> sessions.Connected:
    values = {"server_url": "", "api_key": "", "session": "shop"}
    values.update(kwargs)
    return sessions.connect(tenant=tenant, **values)


def _refused(tenant: Any, code: str, **kwargs: Any) -> sessions.WahaSessionError:
    with pytest.raises(sessions.WahaSessionError) as caught:
        _connect(tenant, **kwargs)
    assert caught.value.code == code, caught.value.message
    return caught.value


def test_it_links_a_number_on_the_platform_server_with_our_webhook(
    tenant_a: Any, waha_sandbox: Sandbox
) -> None:
    connected = _connect(tenant_a, name="Front desk")

    route = WahaRoute.objects.get(webhook_id=connected.waha_session.webhook_id)
    assert route.tenant == tenant_a
    assert crypto.decrypt(route.hmac_key_encrypted) == connected.webhook_key
    assert connected.webhook_url.endswith(f"/webhooks/waha/{connected.waha_session.webhook_id}/")
    hook = waha_sandbox.session("shop").config["webhooks"][0]
    assert hook["url"] == connected.webhook_url
    assert hook["hmac"] == {"key": connected.webhook_key}
    assert hook["events"] == list(DEFAULT_EVENTS)
    with schema_context(tenant_a.schema_name):
        channel = Channel.objects.get(pk=connected.channel.pk)
        assert channel.provider == "waha"
        assert channel.phone_number_id == f"waha:{connected.waha_session.webhook_id}"
        assert (channel.waba_id, channel.throughput_cap, channel.name) == ("", 2, "Front desk")
        # Waiting for the phone: not sendable, with a reason staff see.
        assert channel.status == Channel.Status.NEEDS_REAUTH
        assert "QR code" in channel.status_reason
        waha_session = channel.waha
        assert waha_session.status == Status.SCAN_QR_CODE
        # Blank: the platform's server and key, so a rotated platform key applies.
        assert (waha_session.server_url, waha_session.api_key_encrypted) == ("", "")
        assert AuditEvent.objects.filter(action="number.connected", target_id=str(channel.pk)).exists()


def test_the_qr_code_is_shown_until_the_phone_links_then_the_number_works(
    tenant_a: Any, waha_sandbox: Sandbox
) -> None:
    connected = _connect(tenant_a)
    with schema_context(tenant_a.schema_name):
        state = sessions.live_state(waha_session=connected.waha_session)
        assert state.qr_svg.startswith("<svg") and state.error == ""

        waha_sandbox.link("shop", phone="+15550009999", push_name="Alpha <b>Shop</b>")
        state = sessions.live_state(waha_session=connected.waha_session)
        assert state.qr_svg == ""
        waha_session = WahaSession.objects.select_related("channel").get(pk=connected.waha_session.pk)
        assert waha_session.status == Status.WORKING
        assert waha_session.me_id == "15550009999@c.us"
        assert waha_session.me_name == "Alpha <b>Shop</b>"  # stored as text; templates escape it
        assert waha_session.channel.status == Channel.Status.ACTIVE
        assert waha_session.channel.display_phone == "+15550009999"
        assert waha_session.channel.status_reason == ""


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"server_url": "javascript:alert(1)"}, "invalid_server_url"),
        ({"server_url": "ftp://waha.example.com"}, "invalid_server_url"),
        ({"server_url": "http://user:pw@waha.example.com"}, "invalid_server_url"),
        ({"server_url": "http://"}, "invalid_server_url"),
        ({"server_url": "http://waha.example.com:99999"}, "invalid_server_url"),
        ({"session": "<script>alert(1)</script>"}, "invalid_session_name"),
        ({"session": ""}, "invalid_session_name"),
        ({"session": "a" * 80}, "invalid_session_name"),
        ({"api_key": "line\nbreak"}, "invalid_api_key"),
        ({"api_key": "ключ"}, "invalid_api_key"),
        ({"api_key": "k" * 501}, "invalid_api_key"),
        # The platform's key is never sent to a server the tenant names.
        ({"server_url": "https://waha.example.com"}, "missing_api_key"),
    ],
)
def test_bad_input_is_refused_with_a_code_and_nothing_is_stored(
    tenant_a: Any, waha_sandbox: Sandbox, kwargs: dict[str, str], code: str
) -> None:
    error = _refused(tenant_a, code, **kwargs)
    assert error.status == 400
    assert not WahaRoute.objects.exists()
    with schema_context(tenant_a.schema_name):
        assert not Channel.objects.filter(provider="waha").exists()


def test_a_wrong_key_or_a_server_that_does_not_answer_stores_nothing(
    tenant_a: Any, waha_sandbox: Sandbox
) -> None:
    assert _refused(tenant_a, "waha_auth_failed", server_url=waha_sandbox.base, api_key="wrong").status == 422
    assert _refused(tenant_a, "waha_unreachable", server_url=CLOSED_PORT, api_key="k").status == 502
    assert not WahaRoute.objects.exists()
    assert waha_sandbox.sessions() == []
    with schema_context(tenant_a.schema_name):
        assert not Channel.objects.filter(provider="waha").exists()


def test_a_private_server_the_operator_did_not_list_is_refused(tenant_a: Any, waha_sandbox: Sandbox) -> None:
    error = _refused(tenant_a, "invalid_server_url", server_url="http://10.1.2.3:3000", api_key="k")
    assert "OUTBOUND_ALLOWED_HOSTS" in error.message


def test_a_session_name_is_linked_once(tenant_a: Any, tenant_b: Any, waha_sandbox: Sandbox) -> None:
    _connect(tenant_a)
    assert _refused(tenant_a, "session_taken").status == 409
    # On the platform's server every tenant shares the names: another tenant cannot take it over.
    assert _refused(tenant_b, "session_taken").status == 409
    assert waha_sandbox.session("shop").config["webhooks"][0]["url"].count("/webhooks/waha/") == 1
    assert WahaRoute.objects.filter(tenant=tenant_b).count() == 0


def test_an_existing_session_on_the_tenants_own_server_is_adopted(
    tenant_a: Any, waha_sandbox: Sandbox, settings: Any
) -> None:
    settings.WAHA_URL = ""  # the sandbox is now the tenant's own server
    waha_sandbox.add_session("mine", webhook_url="https://old.example/hook", phone="+15550004444")
    connected = _connect(
        tenant_a, server_url=waha_sandbox.base + "/", api_key=waha_sandbox.api_key, session="mine"
    )
    assert waha_sandbox.session("mine").config["webhooks"][0]["url"] == connected.webhook_url
    with schema_context(tenant_a.schema_name):
        waha_session = WahaSession.objects.select_related("channel").get(pk=connected.waha_session.pk)
        assert waha_session.status == Status.WORKING
        assert waha_session.channel.display_phone == "+15550004444"
        assert waha_session.server_url == waha_sandbox.base
        assert crypto.decrypt(waha_session.api_key_encrypted) == waha_sandbox.api_key


def test_status_transitions_follow_waha_and_the_number_follows(tenant_a: Any) -> None:
    number = make_waha_number(tenant_a, status="STARTING", me_id="")
    with schema_context(tenant_a.schema_name):
        waha_session = number.session
        assert sessions.record_status(waha_session=waha_session, status="SCAN_QR_CODE") is True
        assert waha_session.status_changed_at is not None
        assert sessions.record_status(waha_session=waha_session, status="SCAN_QR_CODE") is False
        assert sessions.record_status(waha_session=waha_session, status="bogus<script>") is False
        assert waha_session.status == Status.SCAN_QR_CODE

        sessions.record_status(
            waha_session=waha_session, status="working", me={"id": "4915112345678@c.us", "pushName": "Shop"}
        )
        channel = Channel.objects.get(pk=number.channel.pk)
        assert (channel.status, channel.display_phone) == (Channel.Status.ACTIVE, "+4915112345678")

        sessions.record_status(waha_session=waha_session, status="FAILED")
        waha_session.refresh_from_db()
        assert waha_session.next_reconnect_at is not None
        assert waha_session.me_id == "4915112345678@c.us"  # the account stays known
        channel.refresh_from_db()
        assert channel.status == Channel.Status.NEEDS_REAUTH and "restarted" in channel.status_reason

        # A number staff disabled (or removed) stays disabled whatever its session says.
        Channel.objects.filter(pk=channel.pk).update(status=Channel.Status.DISABLED)
        sessions.record_status(waha_session=waha_session, status="WORKING", me=None)
        assert Channel.objects.get(pk=channel.pk).status == Channel.Status.DISABLED


def test_a_failed_session_is_restarted_with_backoff_and_works_again(
    tenant_a: Any, waha_sandbox: Sandbox
) -> None:
    number = make_sandbox_number(waha_sandbox, tenant_a, session="alpha-shop")
    waha_sandbox.disconnect("alpha-shop")
    now = timezone.now()
    with schema_context(tenant_a.schema_name):
        assert sessions.poll_tenant_sessions(now=now) == 1
        waha_session = WahaSession.objects.get(pk=number.session.pk)
        assert waha_session.status == Status.FAILED
        assert waha_session.next_reconnect_at is not None
        due = waha_session.next_reconnect_at
        # Not before its time.
        assert sessions.reconnect_due(now=due - dt.timedelta(seconds=1)) == 0
        assert sessions.reconnect_due(now=due) == 1
        waha_session.refresh_from_db()
        # The sandbox keeps the linked device, as WAHA does: the restart brings it back WORKING.
        assert waha_session.status == Status.WORKING
        assert (waha_session.reconnect_attempts, waha_session.next_reconnect_at) == (0, None)
        assert Channel.objects.get(pk=number.channel.pk).status == Channel.Status.ACTIVE


def test_restarts_back_off_then_the_number_needs_attention_and_staff_hear_once(
    tenant_a: Any, owner_a: Any, settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    settings.WAHA_RECONNECT_ATTEMPTS = 3
    number = make_waha_number(tenant_a, status="WORKING", server_url=CLOSED_PORT)
    with schema_context(tenant_a.schema_name):
        waha_session = number.session
        sessions.record_status(waha_session=waha_session, status="FAILED")
        waha_session.refresh_from_db()
        now = waha_session.next_reconnect_at
        gaps = []
        for _ in range(3):
            assert sessions.reconnect_due(now=now) == 1  # the restart fails: the server does not answer
            waha_session.refresh_from_db()
            gaps.append(waha_session.next_reconnect_at - now)
            now = waha_session.next_reconnect_at
        assert gaps == [dt.timedelta(minutes=1), dt.timedelta(minutes=2), dt.timedelta(minutes=4)]
        assert waha_session.reconnect_attempts == 3
        assert "Restart 3 failed" in waha_session.last_error

        with django_capture_on_commit_callbacks(execute=True):
            assert sessions.reconnect_due(now=now) == 0
        assert queued_jobs().count("send_notification_emails") == 1  # and by e-mail
        waha_session.refresh_from_db()
        assert waha_session.needs_attention is True
        channel = Channel.objects.get(pk=number.channel.pk)
        assert channel.status == Channel.Status.NEEDS_REAUTH and "did not help" in channel.status_reason
        notes = Notification.objects.filter(kind=Notification.Kind.NUMBER_REAUTH)
        assert [n.user_id for n in notes] == [owner_a.pk]
        assert notes[0].url == f"/settings/whatsapp/waha/{channel.pk}/"

        # Once: later sweeps and further FAILED reports neither restart nor notify again.
        sessions.record_status(waha_session=waha_session, status="FAILED")
        assert sessions.reconnect_due(now=now + dt.timedelta(hours=1)) == 0
        assert notes.count() == 1


def test_poll_checks_only_tenants_with_waha_numbers_and_notices_a_deleted_session(
    tenant_a: Any, tenant_b: Any, waha_sandbox: Sandbox
) -> None:
    number = make_sandbox_number(waha_sandbox, tenant_a, session="alpha-gone")
    waha_sandbox.delete_session("alpha-gone")
    assert sessions.waha_tenant_schemas() == [tenant_a.schema_name]
    assert sessions.poll_sessions() == 1
    with schema_context(tenant_a.schema_name):
        waha_session = WahaSession.objects.get(pk=number.session.pk)
        assert waha_session.status == Status.STOPPED
        assert "no longer exists" in waha_session.last_error
        # Stopped sessions are not polled again.
        assert sessions.poll_tenant_sessions() == 0


def test_idle_sessions_are_stopped_after_the_expiry(
    tenant_a: Any, waha_sandbox: Sandbox, settings: Any
) -> None:
    settings.WAHA_SESSION_IDLE_EXPIRY = 14
    idle = make_sandbox_number(waha_sandbox, tenant_a, session="alpha-idle")
    busy = make_sandbox_number(waha_sandbox, tenant_a, session="alpha-busy", phone="+15550003333")
    now = timezone.now()
    with schema_context(tenant_a.schema_name):
        WahaSession.objects.filter(pk=idle.session.pk).update(last_activity_at=now - dt.timedelta(days=15))
        WahaSession.objects.filter(pk=busy.session.pk).update(last_activity_at=now - dt.timedelta(days=2))
        settings.WAHA_SESSION_IDLE_EXPIRY = 0
        assert sessions.expire_idle(now=now) == 0
        settings.WAHA_SESSION_IDLE_EXPIRY = 14
        assert sessions.expire_idle(now=now) == 1
        assert WahaSession.objects.get(pk=idle.session.pk).status == Status.STOPPED
        assert "14 days" in WahaSession.objects.get(pk=idle.session.pk).last_error
        assert WahaSession.objects.get(pk=busy.session.pk).status == Status.WORKING
        assert Channel.objects.get(pk=idle.channel.pk).status == Channel.Status.NEEDS_REAUTH
    assert waha_sandbox.session("alpha-idle").status == "STOPPED"
    assert waha_sandbox.session("alpha-busy").status == "WORKING"


def test_stop_reconnect_logout_and_remove(tenant_a: Any, waha_sandbox: Sandbox) -> None:
    number = make_sandbox_number(waha_sandbox, tenant_a, session="alpha-life")
    with schema_context(tenant_a.schema_name):
        waha_session = WahaSession.objects.get(pk=number.session.pk)
        sessions.stop(waha_session=waha_session)
        assert waha_session.status == Status.STOPPED
        assert waha_sandbox.session("alpha-life").status == "STOPPED"

        sessions.reconnect(waha_session=waha_session)
        assert waha_session.status == Status.WORKING  # still linked: no QR code needed

        sessions.logout(waha_session=waha_session)
        waha_session.refresh_from_db()
        assert (waha_session.status, waha_session.me_id) == (Status.STOPPED, "")
        assert waha_sandbox.session("alpha-life").me is None
        channel = Channel.objects.get(pk=number.channel.pk)
        assert channel.display_phone == "+15550001111"  # the number keeps its history

        removed = sessions.remove(waha_session=waha_session)
        assert removed.deleted_on_server is True
        assert not WahaSession.objects.filter(pk=waha_session.pk).exists()
        channel.refresh_from_db()
        assert channel.status == Channel.Status.DISABLED
        actions = set(AuditEvent.objects.values_list("action", flat=True))
        assert {
            "number.session_stopped",
            "number.reconnected",
            "number.logged_out",
            "number.removed",
        } <= actions
    assert not WahaRoute.objects.filter(webhook_id=number.webhook_id).exists()
    assert [s.name for s in waha_sandbox.sessions()] == []


def test_remove_works_when_the_server_is_gone(tenant_a: Any) -> None:
    number = make_waha_number(tenant_a, server_url=CLOSED_PORT)
    with schema_context(tenant_a.schema_name):
        removed = sessions.remove(waha_session=number.session)
        assert removed.deleted_on_server is False and removed.server_error
        assert Channel.objects.get(pk=number.channel.pk).status == Channel.Status.DISABLED
    assert not WahaRoute.objects.filter(webhook_id=number.webhook_id).exists()


def test_actions_on_an_unreachable_server_answer_a_code(tenant_a: Any) -> None:
    number = make_waha_number(tenant_a, server_url=CLOSED_PORT)
    with schema_context(tenant_a.schema_name):
        for action in (sessions.stop, sessions.reconnect, sessions.logout):
            with pytest.raises(sessions.WahaSessionError) as caught:
                action(waha_session=number.session)
            assert caught.value.code == "waha_unreachable"


def test_the_scheduler_polls_every_minute_and_expires_hourly(settings: Any) -> None:
    assert settings.PERIODIC_JOBS["waha_poll_sessions"] == ("waha.actors.poll_sessions", 60)
    assert settings.PERIODIC_JOBS["waha_expire_idle_sessions"] == ("waha.actors.expire_idle_sessions", 3600)
    assert import_string("waha.actors.poll_sessions") is actors.poll_sessions
    assert import_string("waha.actors.expire_idle_sessions") is actors.expire_idle_sessions


def test_the_poll_job_fans_out_one_message_per_tenant_with_waha_numbers(tenant_a: Any, tenant_b: Any) -> None:
    make_waha_number(tenant_a)
    actors.poll_sessions.fn()
    actors.expire_idle_sessions.fn()
    names = queued_jobs()
    assert names.count("poll_tenant_sessions") == 1
    assert names.count("expire_idle_sessions_for_tenant") == 1
