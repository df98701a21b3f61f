"""A session's status never steps back because of a session.status event older than the state recorded:
times are compared on WAHA's clock only (an event's `timestamp`, the Date of WAHA's answer to the poll or
the connect call, floored to the second), never with ours."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from django_tenants.utils import schema_context
from structlog.testing import capture_logs

from conversations.models import Channel
from waha import sessions, webhook
from waha.client import SessionInfo, WahaClient, http_date
from waha.models import WahaEvent, WahaSession
from waha.testing import WahaNumber, post_signed_waha
from waha.tests.fake_waha import API_KEY, FakeWaha
from whatsapp.testing import run_jobs

Status = WahaSession.Status
# WAHA's clock, well away from ours: only WAHA's times are ever compared.
POLLED_AT = dt.datetime(2031, 3, 4, 12, 0, 5, tzinfo=dt.UTC)
POLL_DATE = "Tue, 04 Mar 2031 12:00:05 GMT"


@pytest.fixture(autouse=True)
def _fresh_routes() -> Any:
    webhook.forget_routes()
    yield
    webhook.forget_routes()


def at(seconds: float) -> dt.datetime:
    """A time on WAHA's clock, `seconds` after the poll's Date."""
    return POLLED_AT + dt.timedelta(seconds=seconds)


def ms(moment: dt.datetime) -> int:
    return round(moment.timestamp() * 1000)


def status_event(status: str, timestamp: Any, *, session: str = "default") -> dict[str, Any]:
    body: dict[str, Any] = {"id": "evt_s", "event": "session.status", "session": session}
    body["payload"] = {"status": status}
    if timestamp is not ...:
        body["timestamp"] = timestamp
    return body


def send_status(client: Any, number: WahaNumber, status: str, when: dt.datetime | Any) -> None:
    timestamp = ms(when) if isinstance(when, dt.datetime) else when
    response = post_signed_waha(client, number, status_event(status, timestamp))
    assert response.status_code == 200, response.content
    run_jobs()


def session_of(tenant: Any, number: WahaNumber) -> WahaSession:
    with schema_context(tenant.schema_name):
        return WahaSession.objects.select_related("channel").get(pk=number.session.pk)


def poll(tenant: Any, fake: FakeWaha, status: str, *, date: str | None = POLL_DATE) -> None:
    """The minute's poll, WAHA answering `status` with `date` as its Date header."""
    with fake.lock:
        fake.state.sessions["default"] = {"name": "default", "status": status, "me": None}
    fake.serve_date(date)
    with schema_context(tenant.schema_name):
        assert sessions.poll_tenant_sessions() == 1


@pytest.fixture
def starting(tenant_a: Any, waha_a: WahaNumber) -> WahaNumber:
    """Alpha's WAHA number on the fake server, just started: no WAHA time recorded yet."""
    with schema_context(tenant_a.schema_name):
        WahaSession.objects.filter(pk=waha_a.session.pk).update(status=Status.STARTING, me_id="")
    return waha_a


def test_a_late_starting_event_does_not_step_back_the_qr_code_the_poll_saw(
    public_client: Any, tenant_a: Any, fake_waha: FakeWaha, starting: WahaNumber
) -> None:
    poll(tenant_a, fake_waha, "SCAN_QR_CODE")
    waha_session = session_of(tenant_a, starting)
    assert (waha_session.status, waha_session.status_at_waha) == (Status.SCAN_QR_CODE, POLLED_AT)

    with capture_logs() as logs:
        send_status(public_client, starting, "STARTING", at(-0.8))  # sent before the poll, arrived after

    waha_session = session_of(tenant_a, starting)
    assert (waha_session.status, waha_session.status_at_waha) == (Status.SCAN_QR_CODE, POLLED_AT)
    assert "QR code" in waha_session.channel.status_reason
    with schema_context(tenant_a.schema_name):
        assert WahaEvent.objects.get().status == WahaEvent.Status.PROCESSED
    [skipped] = [entry for entry in logs if entry["event"] == "waha_stale_status_ignored"]
    assert skipped["log_level"] == "info"
    assert skipped["event_at"] == at(-0.8).isoformat()
    assert skipped["recorded_at"] == POLLED_AT.isoformat()
    assert (skipped["status"], skipped["recorded_status"]) == ("STARTING", "SCAN_QR_CODE")


def test_right_after_connect_a_late_starting_event_is_not_applied(
    public_client: Any, tenant_a: Any, fake_waha: FakeWaha
) -> None:
    fake_waha.serve_date(POLL_DATE)
    connected = sessions.connect(tenant=tenant_a, server_url=fake_waha.url, api_key=API_KEY, session="shop")
    number = WahaNumber(
        channel=connected.channel,
        session=connected.waha_session,
        webhook_id=connected.waha_session.webhook_id,
        webhook_key=connected.webhook_key,
    )
    assert connected.waha_session.status_at_waha == POLLED_AT

    response = post_signed_waha(public_client, number, status_event("STARTING", ms(at(-2)), session="shop"))
    assert response.status_code == 200
    run_jobs()
    assert session_of(tenant_a, number).status == Status.SCAN_QR_CODE


@pytest.mark.parametrize("later", [0.0, 0.999, 1.0, 61.25])
def test_an_event_from_the_polls_second_or_later_is_applied(
    public_client: Any, tenant_a: Any, fake_waha: FakeWaha, starting: WahaNumber, later: float
) -> None:
    poll(tenant_a, fake_waha, "SCAN_QR_CODE")
    me = {"id": "15550007777@c.us", "pushName": "Shop"}
    body = {**status_event("WORKING", ms(at(later))), "me": me}
    assert post_signed_waha(public_client, starting, body).status_code == 200
    run_jobs()

    waha_session = session_of(tenant_a, starting)
    assert (waha_session.status, waha_session.status_at_waha) == (Status.WORKING, at(later))
    assert waha_session.me_id == "15550007777@c.us"
    assert waha_session.channel.status == Channel.Status.ACTIVE


def test_an_older_event_after_a_newer_one_leaves_the_newer_state(
    public_client: Any, tenant_a: Any, starting: WahaNumber
) -> None:
    send_status(public_client, starting, "WORKING", at(10))
    send_status(public_client, starting, "STARTING", at(9.999))

    waha_session = session_of(tenant_a, starting)
    assert (waha_session.status, waha_session.status_at_waha) == (Status.WORKING, at(10))
    assert waha_session.channel.status == Channel.Status.ACTIVE
    with schema_context(tenant_a.schema_name):
        assert set(WahaEvent.objects.values_list("status", flat=True)) == {WahaEvent.Status.PROCESSED}


def test_events_with_the_same_timestamp_are_applied_in_arrival_order(
    public_client: Any, tenant_a: Any, starting: WahaNumber
) -> None:
    send_status(public_client, starting, "SCAN_QR_CODE", at(3))
    send_status(public_client, starting, "WORKING", at(3))
    assert session_of(tenant_a, starting).status == Status.WORKING
    send_status(public_client, starting, "FAILED", at(3))
    assert session_of(tenant_a, starting).status == Status.FAILED


def test_an_event_for_a_session_without_a_recorded_time_is_applied_with_what_it_triggers(
    public_client: Any, tenant_a: Any, waha_a: WahaNumber
) -> None:
    assert session_of(tenant_a, waha_a).status_at_waha is None
    send_status(public_client, waha_a, "FAILED", at(-3600))

    waha_session = session_of(tenant_a, waha_a)
    assert (waha_session.status, waha_session.status_at_waha) == (Status.FAILED, at(-3600))
    assert waha_session.next_reconnect_at is not None  # the restart is scheduled, as for any FAILED
    assert waha_session.channel.status == Channel.Status.NEEDS_REAUTH


@pytest.mark.parametrize(
    "timestamp",
    [..., None, "soon", "1941000000000", True, [1], {"ms": 1}, 0, -5, float("nan"), float("inf"), 10**30],
)
def test_an_event_without_a_usable_timestamp_is_applied_as_before_and_keeps_the_recorded_time(
    public_client: Any, tenant_a: Any, fake_waha: FakeWaha, starting: WahaNumber, timestamp: Any
) -> None:
    poll(tenant_a, fake_waha, "SCAN_QR_CODE")
    send_status(public_client, starting, "WORKING", timestamp)

    waha_session = session_of(tenant_a, starting)
    assert (waha_session.status, waha_session.status_at_waha) == (Status.WORKING, POLLED_AT)
    with schema_context(tenant_a.schema_name):
        assert WahaEvent.objects.get().status == WahaEvent.Status.PROCESSED


def test_a_timestamp_as_a_huge_raw_number_is_applied_without_a_500(
    public_client: Any, tenant_a: Any, fake_waha: FakeWaha, starting: WahaNumber
) -> None:
    poll(tenant_a, fake_waha, "SCAN_QR_CODE")
    raw = (
        b'{"event": "session.status", "session": "default", "timestamp": 1e400,'
        b' "payload": {"status": "WORKING"}}'
    )
    assert post_signed_waha(public_client, starting, raw).status_code == 200
    run_jobs()
    assert session_of(tenant_a, starting).status == Status.WORKING


def test_a_poll_is_always_applied_and_without_a_usable_date_keeps_the_recorded_time(
    public_client: Any, tenant_a: Any, fake_waha: FakeWaha, starting: WahaNumber
) -> None:
    send_status(public_client, starting, "WORKING", at(30))
    # WAHA's answer wins even when its Date is earlier (polling is how a missed event is corrected)…
    poll(tenant_a, fake_waha, "FAILED")
    waha_session = session_of(tenant_a, starting)
    assert (waha_session.status, waha_session.status_at_waha) == (Status.FAILED, POLLED_AT)
    # …and an answer without a usable Date records the status, leaving the recorded time as it is.
    for date in ("", "not a date", "Tue, 30 Feb 2031 12:00:05 GMT"):
        poll(tenant_a, fake_waha, "SCAN_QR_CODE", date=date)
        waha_session = session_of(tenant_a, starting)
        assert (waha_session.status, waha_session.status_at_waha) == (Status.SCAN_QR_CODE, POLLED_AT)
        poll(tenant_a, fake_waha, "FAILED", date=date)


def test_a_poll_repeating_the_status_keeps_a_later_events_time(
    public_client: Any, tenant_a: Any, fake_waha: FakeWaha, starting: WahaNumber
) -> None:
    send_status(public_client, starting, "WORKING", at(0.8))
    poll(tenant_a, fake_waha, "WORKING")  # Date: the same second, floored
    assert session_of(tenant_a, starting).status_at_waha == at(0.8)

    send_status(public_client, starting, "STARTING", at(0.3))  # sent before the WORKING event
    assert session_of(tenant_a, starting).status == Status.WORKING


def test_another_numbers_events_never_move_this_ones_time(
    public_client: Any, tenant_a: Any, tenant_b: Any, fake_waha: FakeWaha, starting: WahaNumber
) -> None:
    from waha.testing import make_waha_number

    other = make_waha_number(tenant_b, session="default", display_phone="+15550003333")
    poll(tenant_a, fake_waha, "SCAN_QR_CODE")
    send_status(public_client, other, "WORKING", at(99))
    # Signed with the other number's key for this number's URL: refused before anything is stored.
    body = json.dumps(status_event("WORKING", ms(at(99)))).encode()
    assert post_signed_waha(public_client, starting, body, key=other.webhook_key).status_code != 200
    run_jobs()
    waha_session = session_of(tenant_a, starting)
    assert (waha_session.status, waha_session.status_at_waha) == (Status.SCAN_QR_CODE, POLLED_AT)
    assert session_of(tenant_b, other).status_at_waha == at(99)


def test_the_client_reads_wahas_clock_from_the_answers_date(fake_waha: FakeWaha) -> None:
    client = WahaClient(fake_waha.url, API_KEY, timeout=2.0)
    fake_waha.serve_date("Tue, 04 Mar 2031 14:00:05 +0200")
    created = client.create_session("default", "https://crm.example/webhooks/waha/abc/", "k")
    assert created.at == POLLED_AT
    assert created == SessionInfo(name="default", status="SCAN_QR_CODE")  # the time is not compared
    assert client.start_session("default").at == POLLED_AT
    fake_waha.serve_date(None)  # http.server's own Date: the current time, to the second
    fetched = client.get_session("default")
    assert fetched.at is not None and fetched.at.microsecond == 0


@pytest.mark.parametrize(
    "value",
    [None, "", "soon", "Tue, 30 Feb 2031 12:00:05 GMT", "Fri, 31 Dec 9999 23:59:59 -0100", "\x00" * 8],
)
def test_an_unusable_date_header_gives_no_time(value: str | None) -> None:
    assert http_date(value) is None
