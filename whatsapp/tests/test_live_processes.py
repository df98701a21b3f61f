"""The real processes: uvicorn serving config.asgi and `dramatiq config.worker` (two forked worker
processes) as subprocesses on Redis, sharing a PROMETHEUS_MULTIPROC_DIR, with the Graph API sandbox of
the test session. `simulate_inbound` posts to the live web process, the worker processes store and send,
and the web's /metrics shows what every process counted.

The subprocesses use the test database, so the rows they must see are committed: the module has a tenant
of its own, dropped at the end with everything in it.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import redis
from django.conf import settings
from django.core.management import call_command
from django.db import connections
from django.test import override_settings
from django_tenants.utils import schema_context
from prometheus_client.parser import text_string_to_metric_families

from conftest import PASSWORD, WAIT_SECONDS, wait_until
from tenants.db import connection
from whatsapp.sandbox import Sandbox

ROOT = Path(__file__).resolve().parents[2]
SLUG = "opsstack"
PNID = "406540352242922"
WABA = "402290129340398"
METRICS_TOKEN = "live-metrics-token"
BROKER_NAMESPACE = "wacrm-tasks"
# The tests' own reads run in a rolled-back transaction and see what the subprocesses commit.
pytestmark = pytest.mark.django_db


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _test_database_url() -> str:
    db = connections["default"].settings_dict
    auth = quote(db["USER"] or "postgres", safe="")
    if db.get("PASSWORD"):
        auth += ":" + quote(db["PASSWORD"], safe="")
    host = quote(db["HOST"] or "127.0.0.1", safe="")
    port = f":{db['PORT']}" if db.get("PORT") else ""
    return f"postgres://{auth}@{host}{port}/{db['NAME']}"


def _forget_broker_messages() -> None:
    client = redis.Redis.from_url(settings.DRAMATIQ_BROKER_URL)
    for key in client.scan_iter(f"{BROKER_NAMESPACE}:*"):
        client.delete(key)


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(scraped: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    """The sum over every series of `name` that has these labels (0 when there is none yet)."""
    wanted = set(labels.items())
    return sum(v for (n, found), v in scraped.items() if n == name and wanted <= found)


@dataclass
class Stack:
    base: str
    env: dict[str, str]
    tenant: Any
    logs: Path
    metrics_dir: Path
    api_key: str
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, name: str, command: list[str]) -> None:
        log = (self.logs / f"{name}.log").open("ab")
        self.processes[name] = subprocess.Popen(
            command, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def start_worker(self) -> None:
        self.start(
            "worker",
            [
                sys.executable,
                "-m",
                "dramatiq",
                "config.worker",
                "--processes",
                "2",
                "--threads",
                "2",
                "--queues",
                "inbound",
                "outbound",
                "default",
            ],
        )

    def stop(self, name: str) -> int:
        """SIGTERM, as the process runner sends it, then wait for a clean exit."""
        process = self.processes.pop(name)
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            return process.wait(timeout=WAIT_SECONDS)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            raise

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")[-3000:]

    def get(self, path: str, *, host: str = "localhost", **headers: str) -> httpx.Response:
        return httpx.get(f"{self.base}{path}", headers={"Host": host, **headers}, timeout=10)

    def scrape(self) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        response = self.get("/metrics")
        assert response.status_code == 200, response.text
        return samples(response.text)

    def orm(self) -> Any:
        return schema_context(self.tenant.schema_name)

    def inbound(self, wa_id: str, text: str) -> None:
        call_command(
            "simulate_inbound",
            "--tenant",
            SLUG,
            "--from",
            f"+{wa_id}",
            "--text",
            text,
            "--url",
            f"{self.base}/webhooks/whatsapp/",
        )

    def stored(self, text: str) -> Any:
        from conversations.models import Message

        def find() -> Any:
            with self.orm():
                return Message.objects.select_related("conversation__contact").filter(text=text).first()

        return wait_until(find, what=f"the worker to store {text!r}\n{self.log('worker')}")


def _drop_tenant() -> None:
    from tenants.models import Tenant

    tenant = Tenant.objects.filter(slug=SLUG).first()
    if tenant is not None:
        tenant.delete(force_drop=True)


@pytest.fixture(scope="module")
def stack(
    django_db_setup: Any, django_db_blocker: Any, _sandbox_server: Sandbox, tmp_path_factory: Any
) -> Iterator[Stack]:
    from crm.services import create_api_key
    from onboarding.services import onboard_tenant
    from tenants.models import WebhookEvent
    from whatsapp.services import connect_channel

    assert connections["default"].settings_dict["NAME"].startswith("test_"), "no test database"
    sandbox = _sandbox_server
    tmp = tmp_path_factory.mktemp("live")
    metrics_dir = tmp / "metrics"
    with django_db_blocker.unblock():
        connection.set_schema_to_public()
        first_event = WebhookEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0
        _drop_tenant()  # left over by a run that was killed
        tenant = onboard_tenant(
            slug=SLUG, name="Ops Stack", owner_email=f"owner@{SLUG}.test", owner_password=PASSWORD
        ).tenant
        _forget_broker_messages()
        sandbox.reset()
        sandbox.configure(webhook_url=None, auto_statuses=False, status_delay=0.0)
        sandbox.add_number(PNID, waba_id=WABA, tokens=["token-ops"])
        with override_settings(WHATSAPP_GRAPH_URL=sandbox.url):
            connect_channel(tenant=tenant, phone_number_id=PNID, waba_id=WABA, access_token="token-ops")
        with schema_context(tenant.schema_name):
            api_key = create_api_key(name="live").raw
        connection.set_schema_to_public()
        port = _free_port()
        env = {
            **os.environ,
            "DJANGO_ENV": "test",
            "DATABASE_URL": _test_database_url(),
            "DB_CONN_MAX_AGE": "0",
            "REDIS_URL": settings.REDIS_URL,
            "DRAMATIQ_BROKER": "redis",
            "DRAMATIQ_BROKER_URL": settings.DRAMATIQ_BROKER_URL,
            "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
            "METRICS_TOKEN": METRICS_TOKEN,
            "WHATSAPP_GRAPH_URL": sandbox.url,
            "WHATSAPP_SEND_BACKOFF_SECONDS": "0.2",
            "LOG_LEVEL": "WARNING",
        }
        live = Stack(
            base=f"http://127.0.0.1:{port}",
            env=env,
            tenant=tenant,
            logs=tmp,
            metrics_dir=metrics_dir,
            api_key=api_key,
        )
        try:
            live.start(
                "web",
                [
                    sys.executable,
                    "-m",
                    "uvicorn",
                    "config.asgi:application",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--no-access-log",
                    "--log-level",
                    "warning",
                ],
            )
            live.start_worker()

            def web_is_up() -> bool:
                try:
                    return live.get("/healthz").status_code == 200
                except httpx.HTTPError:
                    return False

            wait_until(web_is_up, what="uvicorn to answer")
            yield live
        finally:
            for name in list(live.processes):
                live.stop(name)
            sandbox.reset()
            _forget_broker_messages()
            connection.set_schema_to_public()
            _drop_tenant()
            WebhookEvent.objects.filter(pk__gt=first_event).delete()


def test_simulate_inbound_posts_a_signed_webhook_that_lands_in_the_tenant(stack, capsys):
    stack.inbound("15551234567", "hi from the command")

    assert "Delivered" in capsys.readouterr().out
    message = stack.stored("hi from the command")
    assert (message.direction, message.type) == ("in", "text")
    assert message.conversation.contact.wa_id == "15551234567"
    from conversations.models import Message

    for other in ("alpha", "beta"):
        with schema_context(other):
            assert not Message.objects.filter(text="hi from the command").exists()


def test_metrics_of_the_web_and_every_worker_process_show_on_the_public_host(stack, _sandbox_server):
    before = stack.scrape()
    stack.inbound("15557654321", "first of two")
    stack.inbound("15557654321", "second of two")
    conversation = stack.stored("second of two").conversation
    stack.stored("first of two")
    # A reply through the API, whose first attempt Meta answers with a retryable error.
    _sandbox_server.fail(code=131000, times=1)
    reply = httpx.post(
        f"{stack.base}/api/v1/conversations/{conversation.pk}/messages/",
        json={"type": "text", "text": "thanks, on it"},
        headers={"Host": f"{SLUG}.localhost", "Authorization": f"Bearer {stack.api_key}"},
        timeout=10,
    )
    assert reply.status_code == 201, reply.text

    from conversations.models import Message

    def sent() -> bool:
        with stack.orm():
            return Message.objects.filter(text="thanks, on it", wamid__isnull=False).exists()

    wait_until(sent, what=f"the reply to be sent\n{stack.log('worker')}")

    def delta(name: str, **labels: str) -> float:
        return value(now, name, **labels) - value(before, name, **labels)

    expected: dict[str, Callable[[], bool]] = {
        # web process
        "webhooks accepted": lambda: delta("wacrm_whatsapp_webhook_requests_total", result="accepted") >= 2,
        "ack latency": lambda: delta("wacrm_whatsapp_webhook_ack_seconds_count") >= 2,
        "api requests": lambda: delta("wacrm_django_http_requests_total_by_method_total", method="POST") >= 1,
        # worker processes
        "inbound stored": lambda: (
            delta("wacrm_whatsapp_messages_total", direction="in", type="text", status="received") == 2
        ),
        "outbound sent": lambda: (
            delta("wacrm_whatsapp_messages_total", direction="out", type="text", status="sent") == 1
        ),
        "send latency": lambda: delta("wacrm_whatsapp_send_seconds_count") == 2,
        "retry": lambda: delta("wacrm_whatsapp_send_retries_total", reason="131000") == 1,
        "limiter waits": lambda: delta("wacrm_whatsapp_limiter_wait_seconds_count") == 2,
        # Dramatiq's own, from the same directory
        "inbound jobs": lambda: delta("dramatiq_messages_total", queue_name="inbound") >= 1,
        "send jobs": lambda: delta("dramatiq_messages_total", queue_name="outbound") >= 2,
    }
    now: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}

    def all_counted() -> bool:
        nonlocal now
        now = stack.scrape()
        return all(check() for check in expected.values())

    try:
        wait_until(all_counted, what="every process's metrics", timeout=30)
    except AssertionError:
        missing = [name for name, check in expected.items() if not check()]
        raise AssertionError(f"not counted: {missing}") from None
    # Per-process collectors (CPU, memory of one process) make no sense summed and are not exported.
    assert value(now, "process_cpu_seconds_total") == 0


def test_metrics_of_every_process_on_a_tenant_host_need_the_token(stack):
    host = f"{SLUG}.localhost"
    assert stack.get("/metrics", host=host).status_code == 403
    assert stack.get("/metrics", host=host, Authorization="Bearer wrong").status_code == 403
    response = stack.get("/metrics", host=host, Authorization=f"Bearer {METRICS_TOKEN}")
    assert response.status_code == 200
    assert "wacrm_whatsapp_webhook_requests_total" in response.text


def test_a_stopped_worker_drops_its_live_gauges_and_keeps_its_counts(stack):
    stack.inbound("15550001111", "before the worker stops")
    stack.stored("before the worker stops")
    # Dramatiq's in-progress gauges are summed over live processes only.
    assert list(stack.metrics_dir.glob("gauge_livesum_*.db")), stack.log("worker")
    received = value(
        stack.scrape(), "wacrm_whatsapp_messages_total", direction="in", type="text", status="received"
    )

    web = stack.processes["web"].pid
    assert stack.stop("worker") == 0, stack.log("worker")
    try:
        # The web process keeps its own live gauges (open WebSocket connections); the worker's are gone.
        left = [path.name for path in stack.metrics_dir.glob("gauge_livesum_*.db")]
        assert all(name.endswith(f"-{web}.db") for name in left), left
        after = stack.scrape()
        assert (
            value(after, "wacrm_whatsapp_messages_total", direction="in", type="text", status="received")
            == received
        )
    finally:
        stack.start_worker()
