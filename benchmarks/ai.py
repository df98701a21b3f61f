"""The AI agent: webhook → AI reply latency, with the embedded default (no LLM: the best passage) and with the
LLM sandbox.

make bench BENCH_ARGS=ai
  BENCH_AI_QUESTIONS (40)     questions per mode, each from a new customer
  BENCH_AI_CONCURRENCY (4)    questions in flight at once
  BENCH_AI_LLM_LATENCY (0)    seconds the LLM sandbox adds to every answer (a real model's think time)
  BENCH_AI_THREADS (4)        threads of the one Dramatiq process

Real processes, as `make run` has them: uvicorn (1 process), one Dramatiq worker, the Graph API sandbox and
the LLM sandbox. BENCH_AI_CONCURRENCY customers each ask their next question once the previous one was
answered (a closed loop). A signed webhook POST per question (paraphrased, en/es/pt, from the evaluation
set of knowledge/tests/fixtures/ai_eval); the latency is from the POST to the AI's outcome committed (its
reply, or its handoff message) — the webhook's acknowledgement, the inbound job, the "ai" queue's job (typing,
retrieval, the LLM call) and the reply written and queued for sending. Target (issue 16): p95 ≤ 3 s with
the embedded default.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

from benchmarks.common import (
    ROOT,
    free_port,
    process_env,
    setup_django,
    spawn,
    stop,
    summary_ms,
    wait_for,
    wait_port,
)

EVAL = ROOT / "knowledge" / "tests" / "fixtures" / "ai_eval"
TITLES = {
    "prices": "Price list",
    "booking": "Appointments",
    "payment": "Payment",
    "horario": "Horario y ubicación",
    "estacionamento": "Estacionamento",
}
PNID = "100000000000777"


def _questions() -> list[str]:
    import csv

    with (EVAL / "qa.csv").open(encoding="utf-8") as handle:
        return [row["question"] for row in csv.DictReader(handle) if row["expected_source"]]


def _ask(port: int, schema: str, requests: list[tuple[str, bytes]], concurrency: int) -> dict[str, float]:
    """`concurrency` customers, each asking its next question only once the previous one was answered (a
    closed loop: the latency is the service time at that concurrency, not a queue growing without end).
    Returns wamid -> wall time of its POST."""
    import socket
    import threading

    from django.db import connection

    posted: dict[str, float] = {}
    lock = threading.Lock()
    pending = list(requests)

    def customer() -> None:
        with socket.create_connection(("127.0.0.1", port)) as sock:
            while True:
                with lock:
                    if not pending:
                        break
                    wamid, request = pending.pop(0)
                posted[wamid] = time.time()
                sock.sendall(request)
                received = b""
                while b"\r\n\r\n" not in received:
                    received += sock.recv(65536)
                head, _, body = received.partition(b"\r\n\r\n")
                length = next(
                    (
                        int(line.split(b":", 1)[1])
                        for line in head.split(b"\r\n")
                        if line.lower().startswith(b"content-length:")
                    ),
                    0,
                )
                while len(body) < length:
                    body += sock.recv(65536)
                if not head.startswith(b"HTTP/1.1 200"):
                    raise RuntimeError(head.decode(errors="replace"))
                wait_for(lambda w=wamid: w in _outcomes(schema, [w]), timeout=120, poll=0.02)
        connection.close()

    threads = [threading.Thread(target=customer) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return posted


def _requests(questions: list[str], count: int, tag: str, secret: str) -> list[tuple[str, bytes]]:
    from whatsapp import payloads

    items = []
    for index in range(count):
        wamid = payloads.new_wamid()
        body = payloads.encode(
            payloads.text_event(
                phone_number_id=PNID,
                wa_id=f"34{tag}{index:07d}",
                text=questions[index % len(questions)],
                wamid=wamid,
            )
        )
        head = (
            "POST /webhooks/whatsapp/ HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
            f"X-Hub-Signature-256: {payloads.sign(body, secret)}\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        items.append((wamid, head.encode() + body))
    return items


def _outcomes(schema: str, wamids: list[str]) -> dict[str, tuple[float, str]]:
    """wamid -> (time the AI's outcome was written, "reply" or the handoff reason)."""
    from django_tenants.utils import schema_context

    from knowledge.models import AIHandoff, AIReply

    with schema_context(schema):
        found: dict[str, tuple[float, str]] = {
            str(wamid): (at.timestamp(), "reply")
            for wamid, at in AIReply.objects.filter(inbound__wamid__in=wamids).values_list(
                "inbound__wamid", "created_at"
            )
        }
        for wamid, at, reason in AIHandoff.objects.filter(inbound__wamid__in=wamids).values_list(
            "inbound__wamid", "created_at", "reason"
        ):
            found[str(wamid)] = (at.timestamp(), reason)
    return found


def _round(
    port: int, schema: str, questions: list[str], count: int, concurrency: int, tag: str, secret: str
) -> dict[str, Any]:
    requests = _requests(questions, count, tag, secret)
    wamids = [wamid for wamid, _ in requests]
    posted = _ask(port, schema, requests, concurrency)
    wait_for(lambda: len(_outcomes(schema, wamids)) >= count, timeout=300, poll=0.2)
    outcomes = _outcomes(schema, wamids)
    latencies = [outcomes[w][0] - posted[w] for w in wamids]
    replies = sum(1 for w in wamids if outcomes[w][1] == "reply")
    return {**summary_ms(latencies), "answered": replies, "handed_over": count - replies}


def main() -> dict[str, Any]:
    os.environ["DJANGO_ENV"] = "test"
    os.environ["DRAMATIQ_BROKER"] = "redis"
    setup_django(fresh=True)
    from django.conf import settings
    from django.core.management import call_command
    from django_tenants.utils import schema_context

    from knowledge.ai_settings import update_agent_settings
    from knowledge.llm_sandbox import DEFAULT_KEY
    from knowledge.services import create_text_source
    from onboarding.services import onboard_tenant
    from tenants.jobs import broker
    from whatsapp import sandbox as sandbox_module
    from whatsapp.services import connect_channel

    count = int(os.environ.get("BENCH_AI_QUESTIONS", "40"))
    concurrency = int(os.environ.get("BENCH_AI_CONCURRENCY", "4"))
    llm_latency = os.environ.get("BENCH_AI_LLM_LATENCY", "0")
    threads = os.environ.get("BENCH_AI_THREADS", "4")

    call_command("migrate_platform", verbosity=0)
    tenant = onboard_tenant(
        slug="aibench", name="AI Bench", owner_email="owner@aibench.test", owner_password="Sturdy-Pass-42"
    ).tenant
    with sandbox_module.serving([(PNID, "777")]):
        connect_channel(tenant=tenant, phone_number_id=PNID, waba_id="777", access_token="bench")
    with schema_context(tenant.schema_name):
        for name, title in TITLES.items():
            create_text_source(title=title, text=(EVAL / f"{name}.md").read_text())
        update_agent_settings(changes={"enabled": True, "max_replies": 50})
    broker.flush_all()

    sandbox_port, llm_port, web_port = free_port(), free_port(), free_port()
    env = process_env(
        WHATSAPP_GRAPH_URL=f"http://127.0.0.1:{sandbox_port}/v21.0",
        LLM_SANDBOX_URL=f"http://127.0.0.1:{llm_port}/v1",
    )
    processes = [
        spawn(
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
        ),
        spawn(
            [
                sys.executable,
                "-m",
                "knowledge.llm_sandbox",
                "--port",
                str(llm_port),
                "--latency",
                llm_latency,
            ],
            env,
            "bench-llm.log",
        ),
        spawn(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "config.asgi:application",
                "--port",
                str(web_port),
                "--no-access-log",
                "--log-level",
                "warning",
            ],
            env,
            "bench-web.log",
        ),
        spawn(
            [sys.executable, "-m", "dramatiq", "config.worker", "--processes", "1", "--threads", threads],
            {k: v for k, v in env.items() if k != "DB_CONN_MAX_AGE"},
            "bench-worker.log",
        ),
    ]
    results: dict[str, Any] = {"questions": count, "concurrency": concurrency}
    questions = _questions()
    secret = settings.WHATSAPP_APP_SECRET or ""
    try:
        for port in (sandbox_port, llm_port, web_port):
            wait_port(port)
        # Warm-up: imports, the embedder's model, connections.
        _round(web_port, tenant.schema_name, questions, 4, 2, "90", secret)

        results["no_llm"] = _round(web_port, tenant.schema_name, questions, count, concurrency, "10", secret)
        r = results["no_llm"]
        print(
            f"(a) webhook → AI reply, embedded default (no LLM): {count} questions, {concurrency} at once: "
            f"p50 {r['p50_ms']} ms, p95 {r['p95_ms']} ms, max {r['max_ms']} ms "
            f"({r['answered']} answered, {r['handed_over']} handed over)"
        )

        with schema_context(tenant.schema_name):
            update_agent_settings(
                changes={
                    "llm_enabled": True,
                    "llm_base_url": f"http://127.0.0.1:{llm_port}/v1",
                    "llm_model": "sandbox-chat",
                    "llm_api_key": DEFAULT_KEY,
                }
            )
        results["llm_sandbox"] = _round(
            web_port, tenant.schema_name, questions, count, concurrency, "20", secret
        )
        results["llm_sandbox"]["llm_latency_s"] = float(llm_latency)
        r = results["llm_sandbox"]
        print(
            f"(b) webhook → AI reply with the LLM sandbox (+{llm_latency} s per answer): "
            f"p50 {r['p50_ms']} ms, p95 {r['p95_ms']} ms, max {r['max_ms']} ms "
            f"({r['answered']} answered, {r['handed_over']} handed over)"
        )
    finally:
        stop(processes)
    return results
