"""Webhook acknowledgement under load (issue 14 item 1): capacity, 0.8x capacity, 1.5x capacity.

make bench BENCH_ARGS=webhook
  BENCH_WEBHOOK_EVENTS (4000)           signed POSTs for the capacity run (closed loop)
  BENCH_WEBHOOK_CONCURRENCY (16)        connections of the closed-loop run
  BENCH_WEBHOOK_WEB (2)                 uvicorn worker processes
  BENCH_WEBHOOK_STEADY_SECONDS (60)     open-loop run at 0.8x the measured capacity
  BENCH_WEBHOOK_OVERLOAD_SECONDS (60)   open-loop run at 1.5x the measured capacity (10 for a quick run)
  BENCH_WEBHOOK_PLAIN (1)               also measure a plain async Django view with abulk_create (0: skip)

Capacity is what the closed-loop run sustains: `BENCH_WEBHOOK_CONCURRENCY` keep-alive connections, each
sending its next POST when the last is answered. The open-loop runs then send at a fixed rate whatever
the answers (a POST is due at start + i / rate, sent on an idle connection or a new one), and measure
each answer from its due time, so a server that falls behind shows it instead of slowing the generator
down. Checks: at 0.8x capacity p99 ≤ 25 ms and max ≤ 1 s; at 1.5x every POST is answered within 1 s,
200 (stored) or 503 (not stored in time, Meta delivers it again), and every 200's event is in the
database. No worker runs: the events stay pending, only the web's work is measured.

The generator (benchmarks/loadgen.py: one asyncio Protocol per connection on uvloop, no task per
request) costs a fraction of what the server spends per POST, so it keeps its schedule at 1.5x; the
earlier one (streams and a task per request) fell seconds behind and measured itself. Closed-loop
capacity with 16 connections is latency-bound, not the most the server can take (64 or 256 connections
get more through, at tens of ms each), and is where the latency is still low: it is kept as "capacity",
and 1.5x of it does overload the two processes (they shed some POSTs with 503).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections import Counter
from typing import Any

from benchmarks import loadgen
from benchmarks.common import free_port, percentile, process_env, setup_django, spawn, stop, wait_port
from benchmarks.whatsapp import CAP, NUMBERS, post_all, webhook_requests

ANSWER_WITHIN = 1.0  # seconds: Meta's patience, with a margin


def _open_loop(
    port: int, requests: list[bytes], rate: float, *, max_connections: int = 2000, timeout: float = 10.0
) -> tuple[list[tuple[int, float, float, bytes]], list[float]]:
    """(status, seconds from due time to answer, seconds from writing it to its answer, body) per request
    (status 0: no answer within timeout), and how late each request was written (the generator's lag)."""
    outcome = loadgen.run(port, requests, rate=rate, max_connections=max_connections, timeout=timeout)
    if outcome.resent:
        print(f"  {outcome.resent} re-sent once on a new connection (kept-alive one closed)")
    results = []
    lags = []
    for status, due, written, answered, body in zip(
        outcome.status, outcome.due, outcome.written, outcome.answered, outcome.body, strict=True
    ):
        results.append((status, answered - due, answered - written if written else answered - due, body))
        if written:
            lags.append(written - due)
    return results, lags


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


def _latency(values: list[float]) -> dict[str, float]:
    return {
        "p50_ms": _ms(percentile(values, 50)),
        "p99_ms": _ms(percentile(values, 99)),
        "max_ms": _ms(max(values)),
        "n": len(values),
    }


def _serve(app: str, port: int, processes: int, env: dict[str, str], log: str) -> subprocess.Popen[bytes]:
    args = [sys.executable, "-m", "uvicorn", app, "--port", str(port), "--workers", str(processes)]
    return spawn([*args, "--no-access-log", "--log-level", "warning", "--backlog", "4096"], env, log)


def _capacity(port: int, requests: list[bytes], concurrency: int) -> dict[str, Any]:
    """Closed loop: `concurrency` keep-alive connections, each sending its next POST when the last is
    answered."""
    outcome = loadgen.run(port, requests, rate=None, max_connections=concurrency)
    latencies = [a - w for a, w in zip(outcome.answered, outcome.written, strict=True) if w]
    failures = sum(1 for status in outcome.status if status != 200)
    return {"per_s": round(len(requests) / outcome.elapsed), "failures": failures, **_latency(latencies)}


def _stored_ids(first_id: int) -> set[int]:
    from tenants.db import connection
    from tenants.models import WebhookEvent

    connection.set_schema_to_public()
    return set(WebhookEvent.objects.filter(pk__gt=first_id).values_list("pk", flat=True))


def _last_id() -> int:
    from tenants.db import connection
    from tenants.models import WebhookEvent

    connection.set_schema_to_public()
    return WebhookEvent.objects.order_by("-pk").values_list("pk", flat=True).first() or 0


def main() -> dict[str, Any]:
    os.environ["DJANGO_ENV"] = "test"
    os.environ["DRAMATIQ_BROKER"] = "redis"
    setup_django(fresh=True)
    from django.conf import settings
    from django.core.management import call_command

    from onboarding.services import onboard_tenant
    from tenants.jobs import broker
    from whatsapp import sandbox as sandbox_module
    from whatsapp.services import connect_channel

    events = int(os.environ.get("BENCH_WEBHOOK_EVENTS", "4000"))
    concurrency = int(os.environ.get("BENCH_WEBHOOK_CONCURRENCY", "16"))
    processes = int(os.environ.get("BENCH_WEBHOOK_WEB", "2"))
    steady_seconds = float(os.environ.get("BENCH_WEBHOOK_STEADY_SECONDS", "60"))
    overload_seconds = float(os.environ.get("BENCH_WEBHOOK_OVERLOAD_SECONDS", "60"))
    plain = os.environ.get("BENCH_WEBHOOK_PLAIN", "1") != "0"

    call_command("migrate_platform", verbosity=0)
    tenant = onboard_tenant(
        slug="whbench",
        name="Webhook Bench",
        owner_email="owner@whbench.test",
        owner_password="Sturdy-Pass-42",
    ).tenant
    pnids = [f"1{index:014d}" for index in range(1, NUMBERS + 1)]
    with sandbox_module.serving([(p, "100") for p in pnids]):
        for p in pnids:
            connect_channel(
                tenant=tenant, phone_number_id=p, waba_id="100", access_token="bench", throughput_cap=CAP
            )
    broker.flush_all()
    secret = settings.WHATSAPP_APP_SECRET or ""
    env = process_env()
    results: dict[str, Any] = {"web_processes": processes, "concurrency": concurrency}

    if plain:
        port = free_port()
        web = _serve("benchmarks.plain_webhook:application", port, processes, env, "bench-webhook-plain.log")
        try:
            wait_port(port)
            asyncio.run(post_all(port, webhook_requests(200, pnids, secret, "warm"), concurrency))
            results["plain_view"] = _capacity(
                port, webhook_requests(events, pnids, secret, "plain"), concurrency
            )
        finally:
            stop([web])
        print(f"plain async Django view, abulk_create: {_describe(results['plain_view'])}")

    port = free_port()
    web = _serve("config.asgi:application", port, processes, env, "bench-webhook.log")
    try:
        wait_port(port)
        asyncio.run(post_all(port, webhook_requests(200, pnids, secret, "warm"), concurrency))
        capacity = _capacity(port, webhook_requests(events, pnids, secret, "ingest"), concurrency)
        results["ingress"] = capacity
        print(f"ingress (bypass): {_describe(capacity)}")
        if plain:
            ratio = results["plain_view"]["per_s"] / capacity["per_s"]
            results["plain_over_ingress"] = round(ratio, 3)
            print(f"plain view / ingress throughput: {ratio:.2f} (prefer the plain view if ≥ 0.90)")

        rate = 0.8 * capacity["per_s"]
        steady = _open_loop_run(port, pnids, secret, "steady", rate, steady_seconds)
        # A 503 is allowed here too (a database stall of a few hundred ms sheds a few POSTs, and Meta
        # delivers them again); nothing accepted may be lost.
        steady["meets"] = (
            steady["p99_ms"] <= 25
            and steady["max_ms"] <= 1000
            and set(steady["statuses"]) <= {"200", "503"}
            and steady["accepted_lost"] == 0
        )
        results["steady_0_8x"] = steady
        print(
            f"0.8x capacity, {rate:.0f}/s for {steady_seconds:.0f} s: {_describe(steady)}; "
            f"accepted but lost {steady['accepted_lost']}; "
            f"p99 ≤ 25 ms and max ≤ 1 s: {'met' if steady['meets'] else 'MISSED'}"
        )

        rate = 1.5 * capacity["per_s"]
        overload = _open_loop_run(port, pnids, secret, "overload", rate, overload_seconds)
        overload["meets"] = (
            overload["answered_within_1s"] == overload["n"]
            and set(overload["statuses"]) <= {"200", "503"}
            and overload["accepted_lost"] == 0
        )
        results["overload_1_5x"] = overload
        print(
            f"1.5x capacity, {rate:.0f}/s for {overload_seconds:.0f} s: {_describe(overload)}; "
            f"answered within 1 s: {overload['answered_within_1s']}/{overload['n']} "
            f"({overload['answered_within_1s_of_writing']} within 1 s of being written); "
            f"stored {overload['stored']}, accepted but lost {overload['accepted_lost']}, "
            f"stored after a 503 {overload['stored_but_refused']}: {'met' if overload['meets'] else 'MISSED'}"
        )
    finally:
        stop([web])
    return results


def _open_loop_run(
    port: int, pnids: list[str], secret: str, tag: str, rate: float, seconds: float
) -> dict[str, Any]:
    """Offer `rate` POSTs a second for `seconds`; the answers' summary, and which accepted events were
    stored."""
    first = _last_id()
    answers, lags = _open_loop(port, webhook_requests(round(rate * seconds), pnids, secret, tag), rate)
    summary = _open_loop_summary(answers, lags, rate, seconds)
    time.sleep(2)  # a batch in flight for a POST that gave up commits meanwhile
    stored = _stored_ids(first)
    accepted = {json.loads(body)["event"] for status, _, _, body in answers if status == 200}
    summary["stored"] = len(stored)
    summary["accepted_lost"] = len(accepted - stored)
    summary["stored_but_refused"] = len(stored - accepted)  # redelivered by Meta: processed once
    summary["answered_within_1s"] = sum(
        1 for status, seconds, _, _ in answers if status and seconds <= ANSWER_WITHIN
    )
    # The same from the moment each request was written: what the server did, without the generator's own
    # delays (it shares the CPU).
    summary["answered_within_1s_of_writing"] = sum(
        1 for status, _, seconds, _ in answers if status and seconds <= ANSWER_WITHIN
    )
    return summary


def _open_loop_summary(
    answers: list[tuple[int, float, float, bytes]], lags: list[float], rate: float, seconds: float
) -> dict[str, Any]:
    statuses = Counter(str(status) for status, _, _, _ in answers)
    from_writing = _latency([seconds for _, _, seconds, _ in answers])
    return {
        "offered_per_s": round(rate),
        "seconds": seconds,
        "statuses": dict(sorted(statuses.items())),
        **_latency([latency for _, latency, _, _ in answers]),
        "from_writing": from_writing,
        "generator_lag_p99_ms": _ms(percentile(lags, 99)) if lags else 0.0,
        "generator_lag_max_ms": _ms(max(lags)) if lags else 0.0,
    }


def _describe(result: dict[str, Any]) -> str:
    rate = f"{result['per_s']}/s, " if "per_s" in result else ""
    extra = f", statuses {result['statuses']}" if "statuses" in result else f", {result['failures']} failures"
    times = f"p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms, max {result['max_ms']} ms"
    if "from_writing" in result:
        written = result["from_writing"]
        extra += (
            f"; from writing each request: p50 {written['p50_ms']} ms, p99 {written['p99_ms']} ms,"
            f" max {written['max_ms']} ms"
        )
    if "generator_lag_max_ms" in result:
        extra += (
            f", of which the generator's own lag p99 {result['generator_lag_p99_ms']} ms,"
            f" max {result['generator_lag_max_ms']} ms"
        )
    return f"{rate}{times} (n={result['n']}){extra}"


if __name__ == "__main__":
    main()
