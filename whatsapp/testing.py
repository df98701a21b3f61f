"""WhatsApp test helpers (fixtures re-exported by whatsapp/tests/conftest.py and imported by other apps'
tests): the Graph API sandbox in a thread, connected numbers for both tenants, signed
webhook posts, and a job runner that executes what the stub broker holds (in this thread, so the jobs
see the test's transaction)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from queue import Empty
from typing import Any

import dramatiq
import pytest
from django.conf import settings
from django.test import Client, TestCase
from django_tenants.utils import schema_context

from tenants.jobs import broker
from whatsapp import payloads
from whatsapp.sandbox import Sandbox

FIXTURES = Path(__file__).parent / "tests" / "fixtures"
PNID_A = "106540352242922"  # the number in Meta's documented payloads (fixtures/) belongs to alpha
PNID_B = "206540352242922"
WABA_A = "102290129340398"
WABA_B = "202290129340398"
CUSTOMER = "16505551234"


def fixture(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"{name}.json").read_text())


@pytest.fixture(scope="session")
def _sandbox_server() -> Iterator[Sandbox]:
    server = Sandbox(app_secret=settings.WHATSAPP_APP_SECRET or "", status_delay=0.0).start()
    yield server
    server.stop()


@pytest.fixture
def sandbox(_sandbox_server: Sandbox, settings: Any) -> Sandbox:
    _sandbox_server.reset()
    _sandbox_server.configure(webhook_url=None, auto_statuses=True, status_delay=0.0)
    settings.WHATSAPP_GRAPH_URL = _sandbox_server.url
    return _sandbox_server


@pytest.fixture(autouse=True)
def _empty_broker() -> Iterator[None]:
    broker.flush_all()
    yield
    broker.flush_all()


@pytest.fixture(autouse=True)
def _fresh_redis_state() -> None:
    """No send-rate schedule, pair or marketing limit, or processing-job flag carried over from another
    test."""
    import redis

    from whatsapp.actors import WAKE_KEY
    from whatsapp.delivery import _number_settings

    client = redis.Redis.from_url(settings.REDIS_URL)
    for pattern in ("wacrm:wa:rate:*", "wacrm:wa:pair:*", "wacrm:wa:mktlimit:*", "wacrm:wa:bulk:*"):
        for key in client.scan_iter(pattern):
            client.delete(key)
    client.delete(WAKE_KEY)
    _number_settings.clear()  # a number's cap and Marketing Messages setting, cached per process


@pytest.fixture(autouse=True)
def _fresh_webhook_secrets() -> Iterator[None]:
    """The numbers' own app secrets are cached per process for 30 s: a rolled-back test's must not
    decide the next test's signature checks."""
    from whatsapp.services.webhooks import _app_secrets_cache

    _app_secrets_cache.clear()
    yield
    _app_secrets_cache.clear()


def run_jobs(*, include_delayed: bool = True, max_jobs: int = 100, only: set[str] | None = None) -> list[str]:
    """Run queued jobs one by one in this thread (delayed ones too, at once) until none are left."""
    ran: list[str] = []
    for _ in range(max_jobs):
        for name, queue in list(broker.queues.items()):
            if name.endswith(".DQ") and not include_delayed:
                continue
            try:
                data = queue.get_nowait()
            except Empty:
                continue
            queue.task_done()
            message = dramatiq.Message.decode(data)
            if only is not None and message.actor_name not in only:
                continue
            actor = broker.get_actor(message.actor_name)
            with (
                TestCase.captureOnCommitCallbacks(execute=True),
                schema_context(message.options.get("tenant_schema") or "public"),
            ):
                actor.fn(*message.args, **message.kwargs)
            ran.append(message.actor_name)
            break
        else:
            return ran
    return ran


def queued_jobs() -> list[str]:
    names = []
    for queue in broker.queues.values():
        for data in list(queue.queue):
            names.append(dramatiq.Message.decode(data).actor_name)
    return names


def post_webhook(
    client: Client, body: dict[str, Any] | bytes, *, secret: str | None = None, **headers: str
) -> Any:
    raw = body if isinstance(body, bytes) else payloads.encode(body)
    signature = payloads.sign(raw, (settings.WHATSAPP_APP_SECRET or "") if secret is None else secret)
    return client.post(
        "/webhooks/whatsapp/",
        data=raw,
        content_type="application/json",
        headers={"X-Hub-Signature-256": signature, **headers},
    )


def deliver(client: Client, body: dict[str, Any] | bytes) -> None:
    """Post a webhook and process it, as Meta + the inbound worker would."""
    response = post_webhook(client, body)
    assert response.status_code == 200, response.content
    run_jobs()


def connect_number(
    sandbox: Sandbox,
    tenant: Any,
    phone_number_id: str,
    waba_id: str,
    access_token: str,
    **options: Any,
) -> Any:
    """Meta (the sandbox) knows the number as the account's, readable with this token; then connect it."""
    from whatsapp.services import connect_channel

    sandbox.add_number(phone_number_id, waba_id=waba_id, tokens=[access_token])
    return connect_channel(
        tenant=tenant, phone_number_id=phone_number_id, waba_id=waba_id, access_token=access_token, **options
    )


@pytest.fixture
def channel_a(tenant_a: Any, sandbox: Sandbox) -> Any:
    return connect_number(sandbox, tenant_a, PNID_A, WABA_A, "token-alpha", display_phone="+15550783881")


@pytest.fixture
def channel_b(tenant_b: Any, sandbox: Sandbox) -> Any:
    return connect_number(sandbox, tenant_b, PNID_B, WABA_B, "token-beta")


@pytest.fixture
def conversation_a(channel_a: Any, tenant_a: Any) -> Any:
    """A conversation of alpha whose contact wrote a minute ago (the 24-hour window is open)."""
    import datetime as dt

    from django.utils import timezone

    from conversations.models import Conversation
    from crm.models import Contact

    with schema_context(tenant_a.schema_name):
        contact = Contact.objects.create(
            name="Sheena",
            phone="+" + CUSTOMER,
            wa_id=CUSTOMER,
            last_inbound_at=timezone.now() - dt.timedelta(minutes=1),
        )
        return Conversation.objects.create(contact=contact, channel=channel_a)
