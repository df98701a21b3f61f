"""WebSockets per web process: idle authenticated connections held, their memory, and one event's fan-out.

make bench BENCH_ARGS=sockets
    BENCH_SOCKETS (5000 in all), BENCH_FANOUT (1000 of them on the tenant the events go to, the rest on a
    second tenant), BENCH_USERS (20 users per tenant, one session each, shared round-robin by the
    sockets), BENCH_HOLD (30 s idle), BENCH_ROUNDS (20 fan-outs), BENCH_GENERATORS (2 load-generator
    processes), BENCH_PING (0: no pings; 25: every socket sends the browser's ping every 25 s, as an open
    inbox tab does, and the pong round trips are reported), BENCH_REUSE=1 keeps the database of an earlier
    run.

One web process runs the Procfile's `web` command (uvicorn, DJANGO_ENV=development) on a free loopback
port. Two tenants get BENCH_USERS users each (the owner and agents) and a database session per user,
created directly; every socket is authenticated as the browser's is: the user's session cookie and the
tenant's host in the Host header (and Origin), to /ws/inbox/. Load-generator processes (asyncio and the
`websockets` client, no protocol pings, as a browser's socket) open the sockets, at most 64 handshakes
in flight each, and wait for each socket's `hello`.

Measured: handshakes that succeeded, the web process's RSS (psutil) once warm with one socket and again
with every socket open and after BENCH_HOLD idle seconds, and that no socket closed meanwhile. Then
BENCH_ROUNDS times, half a second apart, an unassigned conversation of the first tenant changes through
the product's path (conversations.events.conversation_updated: an InboxEvent row, and on commit the
channel-layer message to the conversation's audience, its tenant's `all` and `unassigned` groups): the
delay from just before that call to the event's arrival on each of the tenant's sockets (p50/p95/p99/max
over rounds x sockets; one clock, CLOCK_MONOTONIC, shared by the processes). The second tenant's sockets
must receive none of it. Targets: >= 5,000 sockets in < 1 GiB; fan-out to 1,000 sockets p99 <= 500 ms.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import resource
import signal
import socket
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path
from typing import Any

from benchmarks.common import bench_database_url, setup_django, summary_ms

TENANTS = ("sockbench", "sockother")
EVENT_TYPE = "conversation.updated"
HANDSHAKES_IN_FLIGHT = 64
ROUND_GAP = 0.5


def _raise_fd_limit() -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _free_port() -> int:
    with closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ---------------------------------------------------------------------------------------------------
# Data: two tenants, their users and sessions, one conversation
# ---------------------------------------------------------------------------------------------------


def build(users: int) -> dict[str, Any]:
    """The tenants (kept between runs with BENCH_REUSE=1), `users` users each, a new session per user, and
    an unassigned conversation of the first tenant. Returns the hosts, cookies and the conversation id."""
    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
    from django.contrib.sessions.backends.db import SessionStore
    from django_tenants.utils import schema_context

    from conversations.models import Conversation
    from crm.models import Agent, Contact
    from crm.services.agents import create_agent
    from onboarding.services import onboard_tenant
    from tenants.models import Tenant

    out: dict[str, Any] = {"cookie_name": settings.SESSION_COOKIE_NAME}
    for slug in TENANTS:
        if not Tenant.objects.filter(slug=slug).exists():
            onboard_tenant(
                slug=slug,
                name=slug.title(),
                owner_email=f"owner@{slug}.test",
                owner_password="Sturdy-Pass-42",
            )
        with schema_context(slug):
            user_model = get_user_model()
            for index in range(user_model.objects.count(), users):
                create_agent(email=f"agent{index}@{slug}.test", password=None, role=Agent.Role.AGENT)
            cookies = []
            for user in user_model.objects.order_by("pk")[:users]:
                session = SessionStore()
                session[SESSION_KEY] = str(user.pk)
                session[BACKEND_SESSION_KEY] = settings.AUTHENTICATION_BACKENDS[0]
                session[HASH_SESSION_KEY] = user.get_session_auth_hash()
                session.create()
                cookies.append(session.session_key)
            out[slug] = {"host": f"{slug}.{settings.BASE_DOMAIN}", "cookies": cookies}
    with schema_context(TENANTS[0]):
        contact, _ = Contact.objects.get_or_create(phone="+15550000001", defaults={"name": "Fan-out"})
        conversation = Conversation.objects.filter(contact=contact).first() or Conversation.objects.create(
            contact=contact
        )
        Conversation.objects.filter(pk=conversation.pk).update(assignee=None, team=None)
        out["conversation"] = conversation.pk
    return out


# ---------------------------------------------------------------------------------------------------
# The web process
# ---------------------------------------------------------------------------------------------------


def _procfile_web() -> str:
    for line in Path("Procfile").read_text().splitlines():
        if line.startswith("web:"):
            return line.split(":", 1)[1].strip()
    raise RuntimeError("no web process in the Procfile")


def start_web(port: int) -> subprocess.Popen[bytes]:
    bin_dir = os.path.dirname(sys.executable)
    env = {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ.get('PATH', '')}",
        "DJANGO_ENV": "development",
        "DJANGO_DEBUG": "false",
        "DATABASE_URL": bench_database_url(),
        "LOG_LEVEL": "WARNING",
        # uvicorn's own log (its --log-level): not a line per socket opened.
        "UVICORN_LOG_LEVEL": "warning",
        "WEB_HOST": "127.0.0.1",
        "WEB_PORT": str(port),
    }
    # `exec`: the shell becomes uvicorn, so the pid measured is the server's.
    process = subprocess.Popen(
        ["bash", "-c", f"exec {_procfile_web()}"], env=env, start_new_session=True, preexec_fn=_raise_fd_limit
    )
    deadline = time.monotonic() + 60
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return process
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the web server did not start") from None
            time.sleep(0.2)


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


# ---------------------------------------------------------------------------------------------------
# The load generator (its own processes; no Django)
# ---------------------------------------------------------------------------------------------------


def generator(conn: Any, port: int, cookie_name: str, specs: list[tuple[str, str, str]]) -> None:
    """Opens one socket per (label, host, session key), then answers the coordinator's commands:
    "status" (open and closed counts, pong round trips), ("count", seqs) (those events received),
    "arrivals" ((label, seq, monotonic time) of each), ("ping", seconds) (from now on each socket sends
    the browser's {"type": "ping"} that often, the first at a random moment) and "close"."""
    _raise_fd_limit()
    asyncio.run(_generate(conn, port, cookie_name, specs))


async def _generate(conn: Any, port: int, cookie_name: str, specs: list[tuple[str, str, str]]) -> None:
    import random

    import websockets

    loop = asyncio.get_running_loop()
    gate = asyncio.Semaphore(HANDSHAKES_IN_FLIGHT)
    sockets: list[Any] = []
    readers: list[asyncio.Task[None]] = []
    arrivals: list[tuple[str, Any, float]] = []
    connect_times: list[float] = []
    errors: list[str] = []
    closed: list[Any] = []
    pinged: dict[Any, float] = {}
    pongs: list[float] = []

    async def read(label: str, ws: Any) -> None:
        try:
            async for raw in ws:
                if EVENT_TYPE in raw:
                    arrivals.append((label, json.loads(raw).get("seq"), time.monotonic()))
                elif '"pong"' in raw and ws in pinged:
                    pongs.append(time.monotonic() - pinged.pop(ws))
        except websockets.ConnectionClosed:
            pass
        closed.append(ws.close_code)

    async def ping(ws: Any, ping_every: float) -> None:
        await asyncio.sleep(random.uniform(0, ping_every))
        while True:
            pinged[ws] = time.monotonic()
            await ws.send('{"type": "ping"}')
            await asyncio.sleep(ping_every)

    async def open_one(label: str, host: str, key: str) -> None:
        async with gate:
            started = time.monotonic()
            try:
                ws = await websockets.connect(
                    f"ws://{host}:{port}/ws/inbox/",
                    additional_headers={"Origin": f"http://{host}", "Cookie": f"{cookie_name}={key}"},
                    host="127.0.0.1",
                    port=port,
                    ping_interval=None,
                    open_timeout=120,
                )
                hello = json.loads(await asyncio.wait_for(ws.recv(), 120))
                if hello.get("type") != "hello":
                    raise RuntimeError(f"no hello: {hello}")
            except Exception as exc:
                errors.append(repr(exc))
                return
            connect_times.append(time.monotonic() - started)
            sockets.append(ws)
            readers.append(asyncio.create_task(read(label, ws)))

    await asyncio.gather(*(open_one(*spec) for spec in specs))
    conn.send({"opened": len(sockets), "errors": errors[:5], "failed": len(errors), "connect": connect_times})
    pingers: list[asyncio.Task[None]] = []
    while True:
        command = await loop.run_in_executor(None, conn.recv)
        if command == "status":
            conn.send(
                {
                    "open": len(sockets) - len(closed),
                    "closed": len(closed),
                    "codes": closed[:5],
                    "pongs": pongs,
                }
            )
        elif isinstance(command, tuple) and command[0] == "count":
            wanted = set(command[1])
            conn.send(sum(1 for _, seq, _ in arrivals if seq in wanted))
        elif command == "arrivals":
            conn.send(arrivals)
        elif isinstance(command, tuple) and command[0] == "ping":
            pingers += [asyncio.create_task(ping(ws, command[1])) for ws in sockets]
            conn.send("pinging")
        elif command == "close":
            for task in pingers:
                task.cancel()
            for ws in sockets:
                await ws.close()
            await asyncio.gather(*readers, return_exceptions=True)
            conn.send("closed")
            return


# ---------------------------------------------------------------------------------------------------
# The coordinator
# ---------------------------------------------------------------------------------------------------


def _warm_up(port: int, cookie_name: str, host: str, key: str) -> None:
    """One socket opened and closed: the consumer's code paths are imported before the baseline RSS."""

    async def once() -> None:
        import websockets

        for _ in range(3):
            async with websockets.connect(
                f"ws://{host}:{port}/ws/inbox/",
                additional_headers={"Origin": f"http://{host}", "Cookie": f"{cookie_name}={key}"},
                host="127.0.0.1",
                port=port,
            ) as ws:
                assert "hello" in await ws.recv()

    asyncio.run(once())


def _mib(value: float) -> float:
    return round(value / 2**20, 1)


def fan_out(conversation_id: int, rounds: int) -> dict[int, float]:
    """`rounds` changes of the conversation through the product's path; the seq of each and when it began."""
    from django.db import transaction
    from django_tenants.utils import schema_context

    from conversations import events
    from conversations.models import Conversation, InboxEvent

    sent: dict[int, float] = {}
    with schema_context(TENANTS[0]):
        conversation = Conversation.objects.get(pk=conversation_id)
        for _ in range(rounds):
            started = time.monotonic()
            with transaction.atomic():
                events.conversation_updated(conversation)
                seq = InboxEvent.objects.order_by("-pk").values_list("pk", flat=True).first()
            assert seq is not None
            sent[seq] = started
            time.sleep(ROUND_GAP)
        events.flush()
    return sent


def _status(pipes: list[Any]) -> dict[str, Any]:
    for pipe in pipes:
        pipe.send("status")
    status = [pipe.recv() for pipe in pipes]
    pongs = [t for s in status for t in s["pongs"]]
    return {
        "open": sum(s["open"] for s in status),
        "closed": sum(s["closed"] for s in status),
        "pong_round_trip": summary_ms(pongs) if pongs else {},
    }


def _hold(server: Any, seconds: float) -> dict[str, Any]:
    """Wait, sampling the web process's RSS; its CPU meanwhile."""
    cpu = sum(server.cpu_times()[:2])
    peak = server.memory_info().rss
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(1)
        peak = max(peak, server.memory_info().rss)
    return {
        "rss": server.memory_info().rss,
        "peak": peak,
        "cpu_percent": round((sum(server.cpu_times()[:2]) - cpu) / seconds * 100, 1),
    }


def _fan_out_phase(
    pipes: list[Any], server: Any, conversation: int, fanout: int, rounds: int
) -> dict[str, Any]:
    cpu = sum(server.cpu_times()[:2])
    sent = fan_out(conversation, rounds)
    # Until every event arrived, or none did for 10 s.
    expected, received, last_change = fanout * rounds, -1, time.monotonic()
    while time.monotonic() - last_change < 10:
        for pipe in pipes:
            pipe.send(("count", list(sent)))
        now = sum(pipe.recv() for pipe in pipes)
        if now != received:
            received, last_change = now, time.monotonic()
        if received >= expected:
            break
        time.sleep(0.2)
    cpu_ms = (sum(server.cpu_times()[:2]) - cpu) * 1000 / max(rounds, 1)
    for pipe in pipes:
        pipe.send("arrivals")
    arrivals = [item for pipe in pipes for item in pipe.recv() if item[1] in sent]
    delays = [at - sent[seq] for label, seq, at in arrivals if label == "a"]
    # The first round after the quiet spell: every socket is due for its session re-check.
    first = [at - sent[seq] for label, seq, at in arrivals if label == "a" and seq == min(sent)]
    return {
        "all": summary_ms(delays) if delays else {},
        "first_round": summary_ms(first) if first else {},
        "missing": expected - len(delays),
        "other_tenant_received": sum(1 for label, _, _ in arrivals if label == "b"),
        "web_cpu_ms_per_round": round(cpu_ms, 1),
    }


def _print_fan_out(title: str, result: dict[str, Any], fanout: int, rounds: int) -> None:
    fan, first = result["all"], result["first_round"]
    print(
        f"{title}: fan-out to {fanout} sockets x {rounds} rounds: p50 {fan.get('p50_ms')} ms, "
        f"p95 {fan.get('p95_ms')} ms, p99 {fan.get('p99_ms')} ms, max {fan.get('max_ms')} ms; "
        f"missing {result['missing']}, delivered to the other tenant {result['other_tenant_received']}; "
        f"web CPU {result['web_cpu_ms_per_round']:.0f} ms per round"
    )
    print(
        f"  first round (every socket re-checks its session): p50 {first.get('p50_ms')} ms, "
        f"p99 {first.get('p99_ms')} ms, max {first.get('max_ms')} ms"
    )


def main() -> dict[str, Any]:
    import psutil

    total = int(os.environ.get("BENCH_SOCKETS", "5000"))
    fanout = min(total, int(os.environ.get("BENCH_FANOUT", "1000")))
    users = int(os.environ.get("BENCH_USERS", "20"))
    hold = float(os.environ.get("BENCH_HOLD", "30"))
    rounds = int(os.environ.get("BENCH_ROUNDS", "20"))
    generators = max(1, int(os.environ.get("BENCH_GENERATORS", "2")))
    ping_every = float(os.environ.get("BENCH_PING", "0"))
    setup_django(fresh=os.environ.get("BENCH_REUSE") != "1")
    from django.core.management import call_command

    call_command("migrate_platform", verbosity=0)
    data = build(users)
    _raise_fd_limit()
    first, second = (data[slug] for slug in TENANTS)
    specs = [("a", first["host"], first["cookies"][i % len(first["cookies"])]) for i in range(fanout)]
    specs += [
        ("b", second["host"], second["cookies"][i % len(second["cookies"])]) for i in range(total - fanout)
    ]
    port = _free_port()
    web = start_web(port)
    context = multiprocessing.get_context("spawn")
    pipes, workers = [], []
    result: dict[str, Any] = {"sockets": total, "fanout_sockets": fanout, "rounds": rounds, "users": users}
    try:
        server = psutil.Process(web.pid)
        _warm_up(port, data["cookie_name"], first["host"], first["cookies"][0])
        time.sleep(2)
        rss_base = server.memory_info().rss
        load_before = os.getloadavg()
        started = time.monotonic()
        for index in range(generators):
            parent, child = context.Pipe()
            worker = context.Process(
                target=generator,
                args=(child, port, data["cookie_name"], specs[index::generators]),
                daemon=True,
            )
            worker.start()
            pipes.append(parent)
            workers.append(worker)
        opened = [pipe.recv() for pipe in pipes]
        connect_s = time.monotonic() - started
        held = sum(report["opened"] for report in opened)
        handshakes = summary_ms([t for report in opened for t in report["connect"]])
        result.update(
            held=held,
            failed=sum(report["failed"] for report in opened),
            connect_s=round(connect_s, 1),
            handshake=handshakes,
        )
        print(
            f"sockets: {held} of {total} open in {connect_s:.1f} s, {held / connect_s:.0f}/s "
            f"({result['failed']} failed {[e for r in opened for e in r['errors']][:3]}); "
            f"handshake p50 {handshakes['p50_ms']} ms, p99 {handshakes['p99_ms']} ms"
        )
        idle = _hold(server, hold)
        status = _status(pipes)
        per_socket = (idle["rss"] - rss_base) / max(held, 1)
        result["idle"] = {
            "open": status["open"],
            "closed": status["closed"],
            "rss_mib": {"warm": _mib(rss_base), "held": _mib(idle["rss"]), "peak": _mib(idle["peak"])},
            "kib_per_socket": round(per_socket / 1024, 1),
            "web_cpu_percent": idle["cpu_percent"],
        }
        print(
            f"after {hold:.0f} s idle: {status['open']} open, {status['closed']} closed; "
            f"web RSS {_mib(rss_base)} MiB warm, {_mib(idle['rss'])} MiB with the sockets "
            f"(peak {_mib(idle['peak'])}), {per_socket / 1024:.1f} KiB per socket; "
            f"web CPU {idle['cpu_percent']} %"
        )
        result["idle"]["fanout"] = _fan_out_phase(pipes, server, data["conversation"], fanout, rounds)
        _print_fan_out("idle", result["idle"]["fanout"], fanout, rounds)
        if ping_every:
            # The browser's pings (inbox.js: every 25 s): each is a session re-check when due and a sign
            # of life written for the agent (routing.touch_agent).
            for pipe in pipes:
                pipe.send(("ping", ping_every))
                pipe.recv()
            pinging = _hold(server, max(hold, ping_every * 1.5))
            status = _status(pipes)
            pongs = status["pong_round_trip"]
            result["pinging"] = {
                "ping_every_s": ping_every,
                "open": status["open"],
                "closed": status["closed"],
                "rss_mib": _mib(pinging["rss"]),
                "web_cpu_percent": pinging["cpu_percent"],
                "pong_round_trip": pongs,
            }
            print(
                f"pinging every {ping_every:.0f} s: {status['open']} open, {status['closed']} closed; "
                f"web RSS {_mib(pinging['rss'])} MiB, web CPU {pinging['cpu_percent']} %; "
                f"{pongs.get('n', 0)} pongs, round trip p50 {pongs.get('p50_ms')} ms, "
                f"p99 {pongs.get('p99_ms')} ms, max {pongs.get('max_ms')} ms"
            )
            result["pinging"]["fanout"] = _fan_out_phase(pipes, server, data["conversation"], fanout, rounds)
            _print_fan_out("pinging", result["pinging"]["fanout"], fanout, rounds)
        for pipe in pipes:
            pipe.send("close")
            pipe.recv()
        load_after = os.getloadavg()
    finally:
        for worker in workers:
            worker.join(timeout=30)
            if worker.is_alive():
                worker.kill()
        stop(web)
    print(
        f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f} (1 min); {os.cpu_count()} cores"
    )
    result["load_average"] = {"before": load_before, "after": load_after}
    return result


if __name__ == "__main__":
    main()
