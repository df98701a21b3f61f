"""WhatsApp channel: (a) webhook ingestion, (b) end to end, (c) outbound through the sandbox.

make bench BENCH_ARGS=whatsapp
  BENCH_WA_EVENTS (3000)   signed webhook POSTs for (a) and for (b)
  BENCH_WA_CONCURRENCY (16) concurrent connections of the load generator
  BENCH_WA_WEB (2)          uvicorn worker processes
  BENCH_WA_WORKERS (2)      Dramatiq processes
  BENCH_WA_THREADS (8)      threads per Dramatiq process
  BENCH_WA_SENDS (4000)     outbound messages over the 13 numbers for (c)

(a) accepted/s and p50/p99/max acknowledgement latency of many concurrent signed POSTs (no workers running:
    only the web's work). (b) the same number of new messages posted while the workers run: from the
    first POST to the last message stored (and pushed to the channel layer), per second. (c) messages
    queued over 13 numbers (80 msg/s each) and sent through the sandbox: total msg/s and the highest rate
    any number saw in one second, as counted by the sandbox.
Targets (2 cores): (a) ≥ 1,000/s, p99 ≤ 50 ms; (b) ≥ 500/s; (c) ≥ 1,000 msg/s, no number above its cap.
The load generator is a raw asyncio HTTP/1.1 client (keep-alive), cheap enough to share the 2 cores.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from typing import Any

from benchmarks.common import (
    exchange,
    free_port,
    process_env,
    setup_django,
    spawn,
    stop,
    summary_ms,
    wait_for,
    wait_port,
)

NUMBERS = 13
CAP = 80


async def post_all(port: int, requests: list[bytes], concurrency: int) -> tuple[list[float], int, float]:
    """Send pre-built HTTP requests over `concurrency` keep-alive connections; latency per request."""
    latencies: list[float] = []
    failures = 0
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for request in requests:
        queue.put_nowait(request)

    async def connection() -> None:
        nonlocal failures
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        while True:
            try:
                request = queue.get_nowait()
            except asyncio.QueueEmpty:
                break
            started = time.perf_counter()
            head = await exchange(reader, writer, request)
            latencies.append(time.perf_counter() - started)
            if not head.startswith(b"HTTP/1.1 200"):
                failures += 1
        writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(connection() for _ in range(concurrency)))
    return latencies, failures, time.perf_counter() - started


def webhook_requests(count: int, phone_number_ids: list[str], secret: str, tag: str) -> list[bytes]:
    from whatsapp import payloads

    requests = []
    for index in range(count):
        body = payloads.encode(
            payloads.text_event(
                phone_number_id=phone_number_ids[index % len(phone_number_ids)],
                wa_id=f"4479{index % 500:08d}",
                text=f"{tag} message {index}",
                name=f"Customer {index % 500}",
            )
        )
        head = (
            "POST /webhooks/whatsapp/ HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
            f"X-Hub-Signature-256: {payloads.sign(body, secret)}\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        requests.append(head.encode() + body)
    return requests


def main() -> dict[str, Any]:
    os.environ["DJANGO_ENV"] = "test"
    os.environ["DRAMATIQ_BROKER"] = "redis"
    setup_django(fresh=True)
    import httpx
    from django.conf import settings
    from django.core.management import call_command
    from django.utils import timezone
    from django_tenants.utils import schema_context

    from conversations.models import Conversation, Message
    from crm.models import Contact
    from onboarding.services import onboard_tenant
    from tenants.jobs import broker
    from whatsapp import sandbox as sandbox_module
    from whatsapp.actors import send_message
    from whatsapp.services import connect_channel

    events = int(os.environ.get("BENCH_WA_EVENTS", "3000"))
    concurrency = int(os.environ.get("BENCH_WA_CONCURRENCY", "16"))
    web_processes = int(os.environ.get("BENCH_WA_WEB", "2"))
    worker_processes = int(os.environ.get("BENCH_WA_WORKERS", "2"))
    worker_threads = int(os.environ.get("BENCH_WA_THREADS", "8"))
    sends = int(os.environ.get("BENCH_WA_SENDS", "4000"))

    call_command("migrate_platform", verbosity=0)
    tenant = onboard_tenant(
        slug="wabench", name="WA Bench", owner_email="owner@wabench.test", owner_password="Sturdy-Pass-42"
    ).tenant
    pnids = [f"1{index:014d}" for index in range(1, NUMBERS + 1)]
    # Connecting asks Meta whether the numbers are the account's: a sandbox of its own answers.
    with sandbox_module.serving([(p, "100") for p in pnids]):
        channels = [
            connect_channel(
                tenant=tenant, phone_number_id=p, waba_id="100", access_token="bench", throughput_cap=CAP
            )
            for p in pnids
        ]
    broker.flush_all()
    import redis

    redis_client = redis.Redis.from_url(settings.REDIS_URL)
    for key in redis_client.scan_iter("wacrm:wa:rate:*"):
        redis_client.delete(key)

    sandbox_port, web_port = free_port(), free_port()
    env = process_env(WHATSAPP_GRAPH_URL=f"http://127.0.0.1:{sandbox_port}/v21.0")
    sandbox = spawn(
        [
            sys.executable,
            "-m",
            "whatsapp.sandbox",
            "--port",
            str(sandbox_port),
            "--no-statuses",
            "--webhook-url",
            "",
        ],
        env,
        "bench-sandbox.log",
    )
    web = spawn(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "config.asgi:application",
            "--port",
            str(web_port),
            "--workers",
            str(web_processes),
            "--no-access-log",
            "--log-level",
            "warning",
        ],
        env,
        "bench-web.log",
    )
    workers: list[subprocess.Popen[bytes]] = []
    results: dict[str, Any] = {}
    try:
        wait_port(sandbox_port)
        wait_port(web_port)
        secret = settings.WHATSAPP_APP_SECRET or ""
        # Warm up every web process (imports, connections) before measuring.
        asyncio.run(post_all(web_port, webhook_requests(200, pnids, secret, "warm"), concurrency))

        # (a) ingestion only
        latencies, failures, elapsed = asyncio.run(
            post_all(web_port, webhook_requests(events, pnids, secret, "ingest"), concurrency)
        )
        ack = summary_ms(latencies)
        results["ingestion"] = {"accepted_per_s": round(events / elapsed), "failures": failures, **ack}
        print(
            f"(a) webhook ingestion: {events} POSTs, {concurrency} connections, {web_processes} web: "
            f"{results['ingestion']['accepted_per_s']}/s, p50 {ack['p50_ms']} ms, p99 {ack['p99_ms']} ms, "
            f"max {ack['max_ms']} ms, "
            f"{failures} failures"
        )

        # Drain the backlog of (a) before (b) so (b) measures only its own messages.
        workers = [
            spawn(
                [
                    sys.executable,
                    "-m",
                    "dramatiq",
                    "config.worker",
                    "--processes",
                    str(worker_processes),
                    "--threads",
                    str(worker_threads),
                ],
                {key: value for key, value in env.items() if key != "DB_CONN_MAX_AGE"},
                "bench-worker.log",
            )
        ]
        expected = events + 200
        with schema_context(tenant.schema_name):
            drain_started = time.perf_counter()
            done = wait_for(lambda: Message.objects.count() >= expected, timeout=600, poll=0.2)
        results["backlog_drain_per_s"] = round(expected / (done - drain_started))
        print(f"    backlog of {expected} events processed at {results['backlog_drain_per_s']}/s")

        # (b) end to end while the workers run
        with schema_context(tenant.schema_name):
            before = Message.objects.count()
        requests = webhook_requests(events, pnids, secret, "e2e")
        started = time.perf_counter()
        latencies, failures, _ = asyncio.run(post_all(web_port, requests, concurrency))
        with schema_context(tenant.schema_name):
            done = wait_for(lambda: Message.objects.count() >= before + events, timeout=600, poll=0.05)
        e2e = round(events / (done - started))
        results["end_to_end"] = {"per_s": e2e, "ack": summary_ms(latencies), "failures": failures}
        print(f"(b) end to end (accepted → stored and pushed): {events} messages at {e2e}/s")

        # (c) outbound through the sandbox, 13 numbers at 80 msg/s each
        with schema_context(tenant.schema_name):
            now = timezone.now()
            conversations = []
            for index, channel in enumerate(channels):
                contact = Contact.objects.create(
                    phone=f"+4478{index:08d}", wa_id=f"4478{index:08d}", last_inbound_at=now
                )
                conversations.append(Conversation.objects.create(contact=contact, channel=channel))
            queued = Message.objects.bulk_create(
                [
                    Message(
                        conversation=conversations[i % NUMBERS],
                        direction="out",
                        type="text",
                        text=f"outbound {i}",
                        payload={"text": {"body": f"outbound {i}"}},
                        status="queued",
                        timestamp=now,
                    )
                    for i in range(sends)
                ]
            )
            httpx.post(f"http://127.0.0.1:{sandbox_port}/_sandbox/reset")
            started = time.perf_counter()
            for message in queued:
                send_message.send_with_options(args=(message.pk,), tenant_schema=tenant.schema_name)
            ids = [m.pk for m in queued]
            done = wait_for(
                lambda: Message.objects.filter(pk__in=ids, wamid__isnull=False).count() >= sends,
                timeout=600,
                poll=0.2,
            )
        state = httpx.get(f"http://127.0.0.1:{sandbox_port}/_sandbox/state").json()
        rates = state["max_rates"]
        total = round(sends / (done - started))
        results["outbound"] = {
            "messages": sends,
            "numbers": NUMBERS,
            "cap": CAP,
            "per_s": total,
            "max_number_rate": max(rates.values()) if rates else 0,
            "sent_by_sandbox": len(state["sent"]),
        }
        print(
            f"(c) outbound: {sends} messages over {NUMBERS} numbers (cap {CAP}/s): {total} msg/s in total, "
            f"highest rate of one number {results['outbound']['max_number_rate']}/s, "
            f"{len(state['sent'])} received by the sandbox"
        )
    finally:
        stop([*workers, web, sandbox])
    return results


if __name__ == "__main__":
    main()
