"""The webhook's ASGI ingress (the production path for POSTs) through config.asgi's application: the
same checks as the Django view, writes batched by group commit in the ingress's own thread. Its
connection commits for real, so these tests remove the events they made."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import dramatiq
import psycopg
import pytest
from asgiref.sync import sync_to_async
from channels.testing import HttpCommunicator
from django.conf import settings
from django.db import OperationalError

from tenants.db import connection
from tenants.jobs import broker
from tenants.models import WebhookEvent
from whatsapp import payloads
from whatsapp.testing import PNID_A

PATH = "/webhooks/whatsapp/"


@pytest.fixture
def events(django_db_setup: Any, django_db_blocker: Any) -> Iterator[None]:
    from config.asgi import webhook_ingress

    with django_db_blocker.unblock():
        connection.set_schema_to_public()
        first = WebhookEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0
        broker.flush_all()
        yield
        webhook_ingress.close()
        broker.flush_all()
        WebhookEvent.objects.filter(pk__gt=first).delete()


def _body(index: int = 0) -> bytes:
    return payloads.encode(
        payloads.text_event(phone_number_id=PNID_A, wa_id=f"4479{index:08d}", text=f"hello {index}")
    )


async def _post(body: bytes, headers: dict[str, str] | None = None) -> dict[str, Any]:
    from config.asgi import application

    if headers is None:
        headers = {"X-Hub-Signature-256": payloads.sign(body, settings.WHATSAPP_APP_SECRET)}
    communicator = HttpCommunicator(
        application,
        "POST",
        PATH,
        body=body,
        headers=[(b"host", b"localhost"), *((k.lower().encode(), v.encode()) for k, v in headers.items())],
    )
    return await communicator.get_response(timeout=20)


@sync_to_async
def _stored(**filters: Any) -> dict[int, WebhookEvent]:
    connection.set_schema_to_public()
    try:
        return {event.pk: event for event in WebhookEvent.objects.filter(**filters)}
    finally:
        connection.close()  # this thread's connection would keep the test database from being dropped


def _jobs() -> list[list[int]]:
    return [
        dramatiq.Message.decode(data).args[0]
        for queue in broker.queues.values()
        for data in list(queue.queue)
        if dramatiq.Message.decode(data).actor_name == "process_webhook_events"
    ]


async def test_concurrent_posts_are_each_stored_and_acknowledged_and_wake_one_job(events):
    bodies = [_body(index) for index in range(40)]
    responses = await asyncio.gather(*(_post(body) for body in bodies))

    assert [r["status"] for r in responses] == [200] * 40
    ids = [json.loads(r["body"])["event"] for r in responses]
    assert len(set(ids)) == 40
    stored = await _stored(pk__in=ids)
    assert [bytes(stored[event_id].body) for event_id in ids] == bodies
    # One processing job for all of them: while it is queued and has not started a round, later commits
    # need no job of their own (its round takes every fresh event).
    assert _jobs() == [[]]


@pytest.mark.parametrize(
    ("headers", "body", "status", "code"),
    [
        ({}, _body(), 403, "missing_signature"),
        ({"X-Hub-Signature-256": "sha256=" + "0" * 64}, _body(), 403, "invalid_signature"),
        (None, b"{not json", 400, "invalid_json"),
        (None, b'{"object": "page", "entry": []}', 400, "not_whatsapp"),
    ],
)
async def test_a_rejected_post_stores_nothing(events, headers, body, status, code):
    response = await _post(body, headers)

    assert response["status"] == status
    assert json.loads(response["body"])["error"]["code"] == code
    assert await _stored(body=body) == {}
    assert _jobs() == []


async def test_a_body_over_the_limit_gets_413_and_is_not_stored(events, settings):
    settings.WHATSAPP_WEBHOOK_MAX_BYTES = 1000
    body = payloads.encode(payloads.text_event(phone_number_id=PNID_A, wa_id="447900000001", text="x" * 2000))

    response = await _post(body)

    assert response["status"] == 413
    assert json.loads(response["body"])["error"]["code"] == "payload_too_large"
    assert await _stored(body=body) == {}


async def test_the_handshake_still_reaches_django(events):
    from config.asgi import application

    query = f"hub.mode=subscribe&hub.verify_token={settings.WHATSAPP_VERIFY_TOKEN}&hub.challenge=77"
    communicator = HttpCommunicator(application, "GET", f"{PATH}?{query}", headers=[(b"host", b"localhost")])
    response = await communicator.get_response(timeout=20)

    assert response["status"] == 200
    assert response["body"] == b"77"


async def test_with_the_broker_down_the_event_is_still_stored_for_the_sweeper(events, monkeypatch):
    def down(*args: Any, **kwargs: Any) -> None:
        raise ConnectionError("redis is down")

    monkeypatch.setattr(broker, "enqueue", down)
    body = _body(7)

    response = await _post(body)

    assert response["status"] == 200
    event = (await _stored(pk=json.loads(response["body"])["event"])).popitem()[1]
    assert event.status == WebhookEvent.Status.PENDING
    assert bytes(event.body) == body


async def test_when_the_database_fails_the_post_gets_503_so_meta_retries(events, monkeypatch):
    from whatsapp import services

    def broken(**kwargs: Any) -> list[int]:
        raise OperationalError("the server closed the connection")

    monkeypatch.setattr(services, "record_webhook_events", broken)
    body = _body(8)

    response = await _post(body)

    assert response["status"] == 503
    assert json.loads(response["body"])["error"]["code"] == "unavailable"
    assert await _stored(body=body) == {}


@pytest.mark.django_db
def test_a_batch_is_stored_in_one_transaction_byte_for_byte():
    from whatsapp.services import record_webhook_events
    from whatsapp.webhook import Accepted

    batch = [Accepted(body=_body(index) + b"\x00\xff", phone_number_ids=[PNID_A]) for index in range(25)]
    ids = record_webhook_events(accepted=batch)

    with connection.cursor() as cursor:
        cursor.execute("SELECT DISTINCT xmin::text FROM tenants_webhookevent WHERE id = ANY(%s)", [ids])
        assert len(cursor.fetchall()) == 1  # one transaction, one commit, for the whole batch
    stored = WebhookEvent.objects.filter(pk__in=ids).order_by("pk")
    assert [bytes(body) for body in stored.values_list("body", flat=True)] == [a.body for a in batch]
    assert [event.phone_number_ids for event in stored] == [[PNID_A]] * 25


# -- odd bodies (finding 6 of the security probe) ------------------------------------------------------


def _signed(body: bytes) -> dict[str, str]:
    return {"X-Hub-Signature-256": payloads.sign(body, settings.WHATSAPP_APP_SECRET)}


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"[" * 100_000 + b"]" * 100_000, 400, "invalid_json"),
        (
            b'{"object": "whatsapp_business_account", "entry": [{"changes": {"value": 1}}]}',
            400,
            "invalid_payload",
        ),
        (b'{"object": "whatsapp_business_account", "entry": [7]}', 400, "invalid_payload"),
        (
            b'{"object": "whatsapp_business_account", "entry": [{"changes": [{"value": '
            b'{"metadata": {"phone_number_id": "1\\u0000"}}}]}]}',
            400,
            "invalid_payload",
        ),
        (b'{"object": "whatsapp_business_account", "entry": Infinity}', 400, "invalid_json"),
    ],
)
async def test_a_signed_odd_body_gets_a_clean_4xx_from_the_ingress(events, body, status, code):
    response = await _post(body, _signed(body))

    assert response["status"] == status
    assert json.loads(response["body"])["error"]["code"] == code
    assert await _stored(body=body) == {}


async def test_a_signature_header_that_is_not_ascii_is_refused_not_a_crash(events):
    body = _body(11)
    response = await _post(body, {"X-Hub-Signature-256": "sha256=\u00e9" + "0" * 63})

    assert response["status"] == 403


async def test_a_body_with_a_nul_in_a_field_poisons_none_of_its_batch(events):
    bodies = [_body(index) for index in range(20)]
    nul = payloads.encode(payloads.text_event(phone_number_id=PNID_A, wa_id="447900000099", text="a\u0000b"))
    bodies.insert(7, nul)
    assert b"\\u0000" in nul

    responses = await asyncio.gather(*(_post(body) for body in bodies))

    assert [r["status"] for r in responses] == [200] * len(bodies)
    ids = [json.loads(r["body"])["event"] for r in responses]
    stored = await _stored(pk__in=ids)
    assert [bytes(stored[event_id].body) for event_id in ids] == bodies


async def test_when_the_database_refuses_one_body_of_a_batch_only_that_post_fails(events, monkeypatch):
    from whatsapp import services

    real = services.record_webhook_events
    bad = _body(99)

    sizes: list[int] = []

    def refuses_one(*, accepted: list[Any]) -> list[int]:
        if any(a.body == bad for a in accepted):
            sizes.append(len(accepted))
            raise psycopg.errors.UntranslatableCharacter("unsupported Unicode escape sequence")
        return real(accepted=accepted)

    monkeypatch.setattr(services, "record_webhook_events", refuses_one)
    bodies = [_body(index) for index in range(12)] + [bad]

    responses = await asyncio.gather(*(_post(body) for body in bodies))

    assert [r["status"] for r in responses] == [200] * 12 + [503]
    assert sizes[0] > 1 and sizes[-1] == 1  # refused in its batch, then alone
    ids = [json.loads(r["body"])["event"] for r in responses[:12]]
    assert len(await _stored(pk__in=ids)) == 12


def _accepted(index: int) -> Any:
    from whatsapp import webhook

    return webhook.Accepted(body=_body(index), phone_number_ids=[PNID_A])


async def test_a_post_waits_for_its_own_batch_not_for_the_ones_that_arrive_after_it(monkeypatch):
    # The store is slowed down and new POSTs keep arriving while it runs: before, the first POST of a
    # busy period committed every later batch before answering (unbounded under sustained load).
    import threading
    import time
    from concurrent.futures import ThreadPoolExecutor

    from whatsapp import ingress

    stored: list[int] = []
    store_started = threading.Event()

    def slow_store(accepted: list[Any]) -> list[int]:
        store_started.set()
        time.sleep(0.02)
        stored.append(len(accepted))
        return list(range(len(accepted)))

    monkeypatch.setattr(ingress, "_store", slow_store)
    group = ingress._GroupCommit(ThreadPoolExecutor(max_workers=1))
    batches_when_first_answered: list[int] = []
    first = asyncio.ensure_future(group.submit(_accepted(0)))
    first.add_done_callback(lambda _: batches_when_first_answered.append(len(stored)))
    later = []
    for index in range(1, 40):
        await asyncio.sleep(0.004)
        later.append(asyncio.ensure_future(group.submit(_accepted(index))))
    await asyncio.gather(first, *later)
    assert batches_when_first_answered == [1]
    assert sum(stored) == 40 and len(stored) > 2


async def test_a_cancelled_post_leaves_its_batch_mates_answered(monkeypatch):
    import time
    from concurrent.futures import ThreadPoolExecutor

    from whatsapp import ingress

    def slow_store(accepted: list[Any]) -> list[int]:
        time.sleep(0.02)
        return list(range(100, 100 + len(accepted)))

    monkeypatch.setattr(ingress, "_store", slow_store)
    group = ingress._GroupCommit(ThreadPoolExecutor(max_workers=1))
    first = asyncio.ensure_future(group.submit(_accepted(0)))
    mate = asyncio.ensure_future(group.submit(_accepted(1)))
    await asyncio.sleep(0)
    first.cancel()
    assert await mate == 101


# -- bounded acknowledgement (issue 14 item 1) ---------------------------------------------------------


@pytest.mark.parametrize(
    "error",
    [OperationalError("the server closed the connection"), ValueError("a bug in the store")],
    ids=["connection-lost", "any-other-error"],
)
async def test_a_batch_whose_store_fails_answers_each_of_its_posts_503_and_stores_none(
    events, monkeypatch, error
):
    from django.db import transaction

    from whatsapp import services

    real = services.record_webhook_events
    sizes: list[int] = []

    def inserts_then_fails(*, accepted: list[Any]) -> list[int]:
        # The rows are written, then the store fails before its commit: the whole transaction goes.
        with transaction.atomic():
            real(accepted=accepted)
            sizes.append(len(accepted))
            raise error

    monkeypatch.setattr(services, "record_webhook_events", inserts_then_fails)
    bodies = [_body(200 + index) for index in range(12)]

    responses = await asyncio.gather(*(_post(body) for body in bodies))

    assert [r["status"] for r in responses] == [503] * 12
    assert {json.loads(r["body"])["error"]["code"] for r in responses} == {"unavailable"}
    assert max(sizes) > 1  # they were batched together
    assert await _stored(body__in=bodies) == {}


async def test_a_post_not_stored_within_its_deadline_gets_503_and_its_late_store_harms_nothing(
    events, monkeypatch, settings
):
    import threading

    from whatsapp import services

    settings.WHATSAPP_WEBHOOK_ACK_DEADLINE = 0.05
    real = services.record_webhook_events
    release = threading.Event()

    def stuck(*, accepted: list[Any]) -> list[int]:
        release.wait(timeout=30)  # the database hangs until the test lets it go
        return real(accepted=accepted)

    monkeypatch.setattr(services, "record_webhook_events", stuck)
    body = _body(300)
    try:
        response = await _post(body)
    finally:
        release.set()

    assert response["status"] == 503
    assert json.loads(response["body"])["error"]["code"] == "unavailable"
    # Its batch was in flight: it commits after all, and Meta's redelivery is a second event with the same
    # body (processing stores its message once, by wamid: test_inbound's duplicate test).
    monkeypatch.setattr(services, "record_webhook_events", real)
    settings.WHATSAPP_WEBHOOK_ACK_DEADLINE = 10.0
    redelivered = await _post(body)
    assert redelivered["status"] == 200
    for _ in range(200):
        if len(await _stored(body=body)) == 2:
            break
        await asyncio.sleep(0.05)
    assert len(await _stored(body=body)) == 2


async def test_a_post_that_gives_up_before_its_batch_is_taken_is_not_stored(monkeypatch):
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from whatsapp import ingress

    release = threading.Event()
    batches: list[list[Any]] = []

    def gated_store(accepted: list[Any]) -> list[int]:
        release.wait(timeout=30)
        batches.append(accepted)
        return list(range(len(accepted)))

    monkeypatch.setattr(ingress, "_store", gated_store)
    group = ingress._GroupCommit(ThreadPoolExecutor(max_workers=1))
    posts = [_accepted(index) for index in range(4)]
    in_flight = asyncio.ensure_future(group.submit(posts[0]))
    await asyncio.sleep(0.01)  # the flusher takes the first batch
    with pytest.raises(ingress.NotStored):
        await group.submit(posts[1], timeout=0.01)  # queued behind it, gives up
    gone = asyncio.ensure_future(group.submit(posts[2]))
    kept = asyncio.ensure_future(group.submit(posts[3]))
    await asyncio.sleep(0)
    gone.cancel()  # its client went away
    release.set()

    assert await in_flight == 0
    assert await kept == 0
    assert batches == [[posts[0]], [posts[3]]]


async def test_a_cancelled_post_does_not_cancel_its_batch_in_flight(monkeypatch):
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from whatsapp import ingress

    release = threading.Event()
    stored: list[int] = []

    def gated_store(accepted: list[Any]) -> list[int]:
        release.wait(timeout=30)
        stored.append(len(accepted))
        return list(range(10, 10 + len(accepted)))

    monkeypatch.setattr(ingress, "_store", gated_store)
    group = ingress._GroupCommit(ThreadPoolExecutor(max_workers=1))
    posts = [asyncio.ensure_future(group.submit(_accepted(index))) for index in range(3)]
    await asyncio.sleep(0.01)  # the three are one batch, in the store
    posts[0].cancel()
    await asyncio.sleep(0)
    release.set()

    assert await posts[1] == 11 and await posts[2] == 12
    assert posts[0].cancelled()
    assert stored == [3]  # the store ran to its end


async def test_when_the_flusher_is_cancelled_every_waiting_post_is_answered(monkeypatch):
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from whatsapp import ingress

    release = threading.Event()

    def gated_store(accepted: list[Any]) -> list[int]:
        release.wait(timeout=30)
        return list(range(len(accepted)))

    monkeypatch.setattr(ingress, "_store", gated_store)
    group = ingress._GroupCommit(ThreadPoolExecutor(max_workers=1))
    in_flight = asyncio.ensure_future(group.submit(_accepted(0)))
    await asyncio.sleep(0.01)
    queued = asyncio.ensure_future(group.submit(_accepted(1)))
    await asyncio.sleep(0)
    assert group.flusher is not None
    group.flusher.cancel()  # the loop shuts down
    try:
        for post in (in_flight, queued):
            with pytest.raises(ingress.NotStored):
                await post
    finally:
        release.set()


async def test_while_the_store_is_behind_a_new_post_is_refused_at_once_and_not_stored(events):
    from config.asgi import webhook_ingress

    group = webhook_ingress._batch()
    # The batch in flight was handed to the store long ago (a database that hangs).
    group.flush_started = asyncio.get_running_loop().time() - 60
    body = _body(400)
    try:
        response = await _post(body)
    finally:
        group.flush_started = None

    assert response["status"] == 503
    assert json.loads(response["body"])["error"]["code"] == "overloaded"
    assert await _stored(body=body) == {}
    assert (await _post(_body(401)))["status"] == 200  # caught up: accepted again


async def test_while_two_full_batches_wait_a_new_post_is_refused_at_once_and_not_stored(events):
    from config.asgi import webhook_ingress
    from whatsapp import ingress

    group = webhook_ingress._batch()
    loop = asyncio.get_running_loop()
    # Fresh POSTs (none is late yet), but more of them than two batches: the store cannot keep up.
    placeholders = [(None, loop.create_future(), loop.time()) for _ in range(ingress.MAX_WAITING + 1)]
    group.waiting = placeholders  # type: ignore[assignment]
    body = _body(402)
    try:
        response = await _post(body)
    finally:
        group.waiting = []
        for _, future, _ in placeholders:
            future.cancel()

    assert response["status"] == 503
    assert json.loads(response["body"])["error"]["code"] == "overloaded"
    assert await _stored(body=body) == {}
    assert (await _post(_body(403)))["status"] == 200
