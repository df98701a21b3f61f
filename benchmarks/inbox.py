"""The inbox at scale: a tenant with 100,000 conversations and 1,000,000 messages.

make bench BENCH_ARGS=inbox
    BENCH_CONVERSATIONS (100000), BENCH_MESSAGES_PER (10), BENCH_SAMPLES (200),
    BENCH_RATE (200 inbound messages/s), BENCH_SECONDS (10), BENCH_WORKERS (2 Dramatiq processes),
    BENCH_REUSE=1 keeps the data of an earlier run.

Measures, in this process through Django's test Client (server time: middleware, tenant routing, queries,
templates), the p95 of the inbox's first page and of opening a conversation; then starts the web server
(uvicorn) and a Dramatiq worker as their own processes, as in production, connects a staff socket, posts
signed webhooks at BENCH_RATE and takes the p99 from the POST to the message's event on the socket.
Targets: inbox p95 <= 80 ms, thread p95 <= 50 ms, webhook-to-socket p99 <= 150 ms.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import socket
import subprocess
import sys
import time
from contextlib import closing
from typing import Any

from benchmarks.common import bench_database_url, exchange, setup_django, summary_ms

SLUG = "inboxbench"
PNID = "900000000000001"
WABA = "900000000000002"
OWNER = f"owner@{SLUG}.test"
PASSWORD = "Sturdy-Pass-42"
HOST = f"{SLUG}.localhost"
WARMUP = 50


def _columns(cursor: Any, table: str) -> list[tuple[str, str, bool, bool]]:
    cursor.execute(
        """SELECT column_name, data_type, is_nullable = 'YES',
                  column_default IS NOT NULL OR is_identity = 'YES'
           FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = %s
           ORDER BY ordinal_position""",
        [table],
    )
    return list(cursor.fetchall())


def _filler(data_type: str) -> str:
    if data_type in ("integer", "bigint", "smallint", "numeric", "double precision", "real"):
        return "0"
    if data_type == "boolean":
        return "false"
    if data_type == "jsonb":
        return "'{}'::jsonb"
    if data_type.startswith("timestamp"):
        return "now()"
    if data_type == "date":
        return "current_date"
    return "''"


def bulk_insert(cursor: Any, table: str, count: int, values: dict[str, str]) -> None:
    """INSERT ... SELECT over generate_series(1, count) AS g(i): `values` are SQL expressions of i; any other
    NOT NULL column without a default gets a neutral value, so fields added later do not break this."""
    columns, exprs = [], []
    for name, data_type, nullable, has_default in _columns(cursor, table):
        if name in values:
            columns.append(name)
            exprs.append(values[name])
        elif not nullable and not has_default:
            columns.append(name)
            exprs.append(_filler(data_type))
    cursor.execute(
        f'INSERT INTO "{table}" ({", ".join(columns)}) '
        f"SELECT {', '.join(exprs)} FROM generate_series(1, {int(count)}) AS g(i)"
    )


def build(conversations: int, per: int) -> None:
    """The tenant, one number, `conversations` contacts and conversations, `per` messages each.

    Conversation i was last active i minutes ago (spread over ~70 days); 20 % are open, 10 % pending, the
    rest resolved; a third of them are assigned to the owner. Messages alternate in and out.
    """
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django_tenants.utils import schema_context

    from onboarding.services import onboard_tenant
    from whatsapp import sandbox
    from whatsapp.services import connect_channel

    tenant = onboard_tenant(slug=SLUG, name="Inbox Bench", owner_email=OWNER, owner_password=PASSWORD).tenant
    with sandbox.serving([(PNID, WABA)]):  # connecting asks Meta (here a sandbox) whether it is the account's
        connect_channel(tenant=tenant, phone_number_id=PNID, waba_id=WABA, access_token="bench-token")
    with schema_context(SLUG):
        from conversations.models import Channel

        owner_id = get_user_model().objects.get(email=OWNER).pk
        channel_id = Channel.objects.get().pk
        started = time.perf_counter()
        with connection.cursor() as cursor:
            bulk_insert(
                cursor,
                "crm_contact",
                conversations,
                {
                    "name": "'Customer ' || i",
                    "phone": "'+4930' || lpad(i::text, 9, '0')",
                    "wa_id": "'4930' || lpad(i::text, 9, '0')",
                    "last_inbound_at": "now() - i * interval '1 minute'",
                    "created_at": "now() - i * interval '1 minute' - interval '1 day'",
                    "updated_at": "now()",
                },
            )
            cursor.execute("SELECT min(id) FROM crm_contact WHERE name LIKE 'Customer %'")
            first_contact = cursor.fetchone()[0]
            bulk_insert(
                cursor,
                "conversations_conversation",
                conversations,
                {
                    "contact_id": f"{first_contact} + i - 1",
                    "channel_id": str(channel_id),
                    "status": "CASE WHEN i % 10 < 2 THEN 'open' WHEN i % 10 = 2 THEN 'pending' "
                    "ELSE 'resolved' END",
                    "assignee_id": f"CASE WHEN i % 3 = 0 THEN {owner_id} END",
                    "bot_active": "false",
                    "unread_count": "CASE WHEN i % 10 < 2 THEN i % 4 ELSE 0 END",
                    "last_message_at": "now() - i * interval '1 minute'",
                    "last_inbound_at": "now() - i * interval '1 minute'",
                    "first_response_at": "now() - i * interval '1 minute' - interval '20 hours'",
                    "resolved_at": "CASE WHEN i % 10 > 2 THEN now() - i * interval '1 minute' END",
                    "created_at": "now() - i * interval '1 minute' - interval '1 day'",
                    "updated_at": "now()",
                },
            )
            cursor.execute("SELECT min(id) FROM conversations_conversation")
            first_conversation = cursor.fetchone()[0]
            # Message j belongs to conversation (j - 1) / per; the last of each is the newest.
            bulk_insert(
                cursor,
                "conversations_message",
                conversations * per,
                {
                    "conversation_id": f"{first_conversation} + (i - 1) / {per}",
                    "direction": "CASE WHEN i % 2 = 0 THEN 'in' ELSE 'out' END",
                    "type": "'text'",
                    "text": "'Message ' || i || ': could you tell me when my order ships? https://example.com'",
                    "preview": "'Message ' || i",
                    "status": "CASE WHEN i % 2 = 0 THEN 'received' ELSE 'read' END",
                    "wamid": "'wamid.bench.' || i",
                    "timestamp": f"now() - ((i - 1) / {per}) * interval '1 minute' "
                    f"- ({per} - 1 - (i - 1) % {per}) * interval '1 second'",
                    "created_at": "now()",
                    "payload": "'{}'::jsonb",
                    "reactions": "'{}'::jsonb",
                },
            )
            # Vacuumed as well, as a database in use would be: the visibility map lets the unread
            # counts be read from their index alone.
            cursor.execute("VACUUM ANALYZE")
        print(
            f"inserted {conversations} contacts and conversations, {conversations * per} messages "
            f"in {time.perf_counter() - started:.1f} s"
        )


def timed_get(client: Any, url: str, **headers: str) -> float:
    started = time.perf_counter()
    response = client.get(url, headers=headers)
    elapsed = time.perf_counter() - started
    assert response.status_code == 200, (url, response.status_code)
    return elapsed


def measure_pages(samples: int, conversations: int) -> dict[str, Any]:
    from django.contrib.auth import get_user_model
    from django.test import Client
    from django_tenants.utils import schema_context

    from conversations.models import Conversation

    client = Client(HTTP_HOST=HOST)
    with schema_context(SLUG):
        client.force_login(get_user_model().objects.get(email=OWNER))
        ids = list(Conversation.objects.order_by("-last_message_at").values_list("pk", flat=True)[:5000])
    rng = random.Random(7)
    results: dict[str, Any] = {}
    pages = {
        "inbox_mine": "/inbox/",
        "inbox_all_open": "/inbox/?tab=all&status=open",
        "inbox_all_any": "/inbox/?tab=all&status=any",
        "inbox_next_page": None,
    }
    for name, url in pages.items():
        if url is None:
            continue
        for _ in range(5):
            timed_get(client, url)
        results[name] = summary_ms([timed_get(client, url) for _ in range(samples)])
    # Scrolling: the list fragment after a cursor deep in the list.
    with schema_context(SLUG):
        anchor = Conversation.objects.order_by("-last_message_at", "-id")[conversations // 2]
    from conversations.selectors import encode_cursor

    cursor_url = f"/inbox/list/?tab=all&status=any&cursor={encode_cursor(anchor)}"
    results["inbox_next_page"] = summary_ms([timed_get(client, cursor_url) for _ in range(samples)])
    picks = [rng.choice(ids) for _ in range(samples + 5)]
    for pk in picks[:5]:
        timed_get(client, f"/inbox/c/{pk}/", HX_Request="true")
    results["thread"] = summary_ms(
        [timed_get(client, f"/inbox/c/{pk}/", HX_Request="true") for pk in picks[5:]]
    )
    results["thread_full_page"] = summary_ms([timed_get(client, f"/inbox/c/{pk}/") for pk in picks[5:]])
    for name, summary in results.items():
        print(f"{name}: p50 {summary['p50_ms']} ms, p95 {summary['p95_ms']} ms (n={summary['n']})")
    return results


# ---------------------------------------------------------------------------------------------------
# Webhook to socket
# ---------------------------------------------------------------------------------------------------


def _free_port() -> int:
    with closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _session_cookie() -> str:
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.test import Client
    from django_tenants.utils import schema_context

    with schema_context(SLUG):
        client = Client(HTTP_HOST=HOST)
        client.force_login(get_user_model().objects.get(email=OWNER))
        return str(client.cookies[settings.SESSION_COOKIE_NAME].value)


def _start(command: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(command, env=env, start_new_session=True)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _webhook_requests(port: int, wa_ids: list[str], tag: str, count: int) -> list[tuple[str, bytes]]:
    """(wamid, raw HTTP request) pairs, signed before the clock starts: the load generator shares the two
    cores with what it measures, so it does as little as it can while measuring."""
    from django.conf import settings

    from whatsapp import payloads

    requests = []
    for index in range(count):
        wamid = f"wamid.benchws.{tag}.{index}"
        body = payloads.encode(
            payloads.text_event(
                phone_number_id=PNID,
                wa_id=wa_ids[index % len(wa_ids)],
                text=f"bench message {index}",
                wamid=wamid,
            )
        )
        head = (
            f"POST /webhooks/whatsapp/ HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            "Content-Type: application/json\r\n"
            f"X-Hub-Signature-256: {payloads.sign(body, settings.WHATSAPP_APP_SECRET or '')}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        requests.append((wamid, head.encode() + body))
    return requests


class _Connections:
    """Keep-alive HTTP/1.1 connections, one request at a time each (raw asyncio: httpx cost more CPU per
    request than the ingress it measured). One idle for a while is dropped, not reused: uvicorn closes
    idle connections after 5 s."""

    IDLE_SECONDS = 2.0

    def __init__(self, port: int) -> None:
        self.port = port
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter, float]] = []

    async def post(self, request: bytes) -> bytes:
        while self.idle:
            reader, writer, used = self.idle.pop()
            if time.monotonic() - used < self.IDLE_SECONDS:
                break
            writer.close()
        else:
            reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        head = await exchange(reader, writer, request)
        self.idle.append((reader, writer, time.monotonic()))
        return head

    def close(self) -> None:
        for _, writer, _ in self.idle:
            writer.close()


def _cpu_seconds(web: int, worker: int) -> dict[str, float]:
    """CPU seconds (user + system) used so far by the web and worker process trees, PostgreSQL, Redis and
    this load generator, and the machine's busy and stolen time (Linux /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    procs: dict[int, tuple[str, int, float]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                raw = handle.read()
        except OSError:
            continue
        comm = raw[raw.index("(") + 1 : raw.rindex(")")]
        fields = raw[raw.rindex(")") + 2 :].split()
        procs[int(entry)] = (comm, int(fields[1]), (int(fields[11]) + int(fields[12])) / tick)

    def tree(root: int) -> float:
        members, grew = {root}, True
        while grew:
            grew = False
            for pid, (_, parent, _) in procs.items():
                if parent in members and pid not in members:
                    members.add(pid)
                    grew = True
        return sum(procs[pid][2] for pid in members if pid in procs)

    with open("/proc/stat") as handle:
        user, nice, system, _idle, _iowait, irq, softirq, steal = (
            int(v) for v in handle.readline().split()[1:9]
        )
    return {
        "web": tree(web),
        "worker": tree(worker),
        "postgres": sum(cpu for comm, _, cpu in procs.values() if comm == "postgres"),
        "redis": sum(cpu for comm, _, cpu in procs.values() if comm.startswith("redis-server")),
        "load generator": procs.get(os.getpid(), ("", 0, 0.0))[2],
        "machine busy": (user + nice + system + irq + softirq) / tick,
        "machine stolen": steal / tick,
    }


async def _drive(
    port: int, cookie: str, rate: float, seconds: float, wa_ids: list[str], pids: tuple[int, int]
) -> dict[str, Any]:
    import websockets
    from django.conf import settings

    arrived: dict[int, float] = {}
    # The tenant's host in the URL (Host header); the TCP connection goes to 127.0.0.1.
    url = f"ws://{HOST}:{port}/ws/inbox/"
    headers = {"Origin": f"http://{HOST}", "Cookie": f"{settings.SESSION_COOKIE_NAME}={cookie}"}
    total = int(rate * seconds)
    tag = f"{os.getpid()}.{int(time.time())}"
    warmup = _webhook_requests(port, wa_ids[::-1], f"{tag}.warm", WARMUP)
    requests = _webhook_requests(port, wa_ids, tag, total)
    sent: dict[str, float] = {}
    acks: list[float] = []
    connections = _Connections(port)
    async with websockets.connect(
        url, additional_headers=headers, max_size=None, host="127.0.0.1", port=port
    ) as ws:
        hello = await ws.recv()
        assert b"hello" in (hello if isinstance(hello, bytes) else hello.encode()), hello
        received = 0

        async def receive() -> None:
            import json

            nonlocal received
            async for raw in ws:
                event = json.loads(raw)
                if event.get("type") == "message.created" and event.get("direction") == "in":
                    received += 1
                    arrived.setdefault(event["message"], time.perf_counter())

        receiver = asyncio.create_task(receive())

        async def post(wamid: str, request: bytes, record: bool) -> None:
            started = time.perf_counter()
            head = await connections.post(request)
            assert head.startswith(b"HTTP/1.1 200"), head
            if record:
                sent[wamid] = started
                acks.append(time.perf_counter() - started)

        # Warm-up at a tenth of the rate, until every message arrived: the worker has imported Django,
        # opened its connections and filled its caches before the clock starts.
        for wamid, request in warmup:
            await post(wamid, request, record=False)
            await asyncio.sleep(10 / rate)
        deadline = time.perf_counter() + 60
        while received < WARMUP and time.perf_counter() < deadline:
            await asyncio.sleep(0.05)
        arrived.clear()

        cpu_before = _cpu_seconds(*pids)
        started = time.perf_counter()
        tasks = []
        for index, (wamid, request) in enumerate(requests):
            delay = started + index / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(post(wamid, request, record=True)))
        await asyncio.gather(*tasks)
        achieved = total / (time.perf_counter() - started)
        deadline = time.perf_counter() + 60
        while len(arrived) < total and time.perf_counter() < deadline:
            await asyncio.sleep(0.1)
        cpu_after = _cpu_seconds(*pids)
        receiver.cancel()
        connections.close()
    cpu_ms = {name: round((cpu_after[name] - cpu_before[name]) * 1000 / total, 2) for name in cpu_before}
    return {"sent": sent, "arrived": arrived, "achieved_rate": achieved, "acks": acks, "cpu_ms": cpu_ms}


def measure_webhook_to_socket(rate: float, seconds: float, conversations: int) -> dict[str, Any]:
    from django_tenants.utils import schema_context

    from conversations.models import Message

    port = _free_port()
    env = {
        **os.environ,
        "DJANGO_ENV": "development",
        "DJANGO_DEBUG": "false",
        "DATABASE_URL": bench_database_url(),
        "DRAMATIQ_BROKER": "redis",
        "LOG_LEVEL": "WARNING",
    }
    bin_dir = os.path.dirname(sys.executable)
    web = _start(
        [
            f"{bin_dir}/uvicorn",
            "config.asgi:application",
            "--port",
            str(port),
            "--no-access-log",
            "--log-level",
            "warning",
        ],
        env,
    )
    worker = _start(
        [
            f"{bin_dir}/dramatiq",
            "config.worker",
            "--processes",
            os.environ.get("BENCH_WORKERS", "2"),
            "--threads",
            "8",
            "--queues",
            "inbound",
            "default",
        ],
        env,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("the web server did not start") from None
                time.sleep(0.2)
        time.sleep(3)  # the worker imports Django too
        # Existing customers write again (their conversations are found and reopened).
        wa_ids = [f"4930{i:09d}" for i in random.Random(3).sample(range(1, conversations + 1), 2000)]
        cookie = _session_cookie()
        outcome = asyncio.run(_drive(port, cookie, rate, seconds, wa_ids, (web.pid, worker.pid)))
    finally:
        _stop(web)
        _stop(worker)
    with schema_context(SLUG):
        stored = list(
            Message.objects.filter(wamid__in=list(outcome["sent"])).values_list("wamid", "pk", "created_at")
        )
    by_wamid = {wamid: pk for wamid, pk, _ in stored}
    # The two halves of the delay: to the message's INSERT in the worker (its created_at, wall clock),
    # and from there to the socket (the rest of the round, the commit and the push).
    wall = time.time() - time.perf_counter()
    to_stored, to_socket = [], []
    for wamid, pk, created in stored:
        if pk in outcome["arrived"]:
            to_stored.append(created.timestamp() - (outcome["sent"][wamid] + wall))
            to_socket.append(outcome["arrived"][pk] + wall - created.timestamp())
    delays = [
        outcome["arrived"][by_wamid[wamid]] - posted
        for wamid, posted in outcome["sent"].items()
        if wamid in by_wamid and by_wamid[wamid] in outcome["arrived"]
    ]
    missing = len(outcome["sent"]) - len(delays)
    summary = summary_ms(delays) if delays else {}
    acks = summary_ms(outcome["acks"])
    print(f"webhook acknowledgements: p50 {acks['p50_ms']} ms, p99 {acks['p99_ms']} ms")
    print(
        f"webhook -> socket at {outcome['achieved_rate']:.0f}/s ({len(outcome['sent'])} messages): "
        f"p50 {summary.get('p50_ms')} ms, p99 {summary.get('p99_ms')} ms, missing {missing}"
    )
    stages = {"to_stored": summary_ms(to_stored), "stored_to_socket": summary_ms(to_socket)} if delays else {}
    for name, stage in stages.items():
        print(f"  {name}: p50 {stage['p50_ms']} ms, p99 {stage['p99_ms']} ms")
    print("CPU ms per message: " + ", ".join(f"{name} {ms}" for name, ms in outcome["cpu_ms"].items()))
    return {
        "rate": round(outcome["achieved_rate"], 1),
        "delay": summary,
        "ack": acks,
        "missing": missing,
        "stages": stages,
        "cpu_ms_per_message": outcome["cpu_ms"],
    }


def main() -> dict[str, Any]:
    conversations = int(os.environ.get("BENCH_CONVERSATIONS", "100000"))
    per = int(os.environ.get("BENCH_MESSAGES_PER", "10"))
    samples = int(os.environ.get("BENCH_SAMPLES", "200"))
    rate = float(os.environ.get("BENCH_RATE", "200"))
    seconds = float(os.environ.get("BENCH_SECONDS", "10"))
    reuse = os.environ.get("BENCH_REUSE") == "1"
    setup_django(fresh=not reuse)
    from django.core.management import call_command

    from tenants.models import Tenant

    call_command("migrate_platform", verbosity=0)
    if not Tenant.objects.filter(slug=SLUG).exists():
        build(conversations, per)
    pages = measure_pages(samples, conversations)
    socket_result = measure_webhook_to_socket(rate, seconds, conversations)
    return {
        "conversations": conversations,
        "messages": conversations * per,
        **pages,
        "webhook_to_socket": socket_result,
    }


if __name__ == "__main__":
    main()
