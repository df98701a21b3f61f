"""Campaign traffic: 13 numbers x 800 recipients through the sandbox, status webhooks on (issue 17).

make bench BENCH_ARGS=campaign
  BENCH_CAMPAIGN_RECIPIENTS (800)  recipients per number (13 numbers, 80 msg/s each)
  BENCH_CAMPAIGN_WEB (2)           uvicorn worker processes (the production layout: docker-compose.yml)
  BENCH_CAMPAIGN_WORKERS ("")      processes of the `worker` service (docker-compose.yml's own unless given:
                                   every queue but `outbound`; its `replies` service sends the agent replies)
  BENCH_CAMPAIGN_THREADS ("")      threads per `worker` process (docker-compose.yml's own unless given)
  BENCH_CAMPAIGN_REPLIES (40)      agent replies sent while the campaign runs, one every 250 ms
  BENCH_CAMPAIGN_STATUSES (1)      0: no status webhooks (to tell the send path's cost from theirs)
  BENCH_CAMPAIGN_STATUS_BATCH (50) statuses due together in one webhook body, at most (1: one each)
  BENCH_CAMPAIGN_POSTERS (4)       sandbox threads posting status webhooks at once
  BENCH_CAMPAIGN_BULK_JOBS (6)     WHATSAPP_BULK_JOBS_PER_PROCESS: bulk batches a worker process runs
  BENCH_CAMPAIGN_PROFILE ("")      a directory: py-spy records each worker and web process into it

Every recipient's message is a bulk template message created through the reply path (send_template_message
with bulk=True, as a campaign's dispatcher does), queued while the workers are stopped, one bulk job per
number (as the dispatcher's enqueues add up to); then the workers start. The sandbox posts three signed
statuses per message (sent, delivered, read) to the web, those due together batched into one webhook
body (as Meta does under load) from several threads.
Reported: msg/s from the sandbox's first campaign send to its last; the highest number of sends any one
number saw in one second (the sandbox's count; cap 80); the delay of each agent reply from the moment it
was queued to the moment the sandbox received it (p50/p99/max); CPU seconds per message of every process
(web, worker, sandbox: /proc utime+stime of each process tree; machine: every process, from /proc/stat,
with the idle share of the two cores over the same time). Targets: ≥ 1,000 msg/s, no number above
80/s, reply p99 ≤ 2 s.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import yaml

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

NUMBERS = 13
CAP = 80
TICKS = os.sysconf("SC_CLK_TCK")


def _processes() -> dict[int, tuple[int, str, float]]:
    """Every process alive now: pid -> (parent pid, name, CPU seconds of user + system time)."""
    found: dict[int, tuple[int, str, float]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            head, _, tail = (entry / "stat").read_text().rpartition(")")
        except OSError:
            continue
        fields = tail.split()
        name = head.partition("(")[2]
        found[int(entry.name)] = (int(fields[1]), name, (int(fields[11]) + int(fields[12])) / TICKS)
    return found


def _tree_cpu(root_pid: int) -> float:
    """CPU seconds (user + system) of a process and all its descendants, alive now."""
    processes = _processes()
    children: dict[int, list[int]] = {}
    for pid, (ppid, _, _) in processes.items():
        children.setdefault(ppid, []).append(pid)
    total, todo = 0.0, [root_pid]
    while todo:
        pid = todo.pop()
        total += processes[pid][2] if pid in processes else 0.0
        todo += children.get(pid, [])
    return total


def _named_cpu(name: str) -> float:
    """CPU seconds (user + system) of every process called `name` alive now (PostgreSQL's backends,
    Redis), whoever started it."""
    return sum(cpu for _, called, cpu in _processes().values() if called == name)


def _machine_cpu() -> tuple[float, float]:
    """CPU seconds of the whole machine since boot: (busy, idle), every core summed (/proc/stat)."""
    fields = [int(f) for f in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    return (sum(fields[:8]) - idle) / TICKS, idle / TICKS


def _compose_command(service: str, processes: int, threads: int) -> list[str]:
    """docker-compose.yml's command of a worker service (the production layout: its queues), with
    `processes` and `threads` in place of its own when given."""
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    command = list(services[service]["command"])
    for option, value in (("--processes", processes), ("--threads", threads)):
        if value:
            command[command.index(option) + 1] = str(value)
    return command


def _profile(directory: str, pids: dict[str, int]) -> list[subprocess.Popen[bytes]]:
    """py-spy (installed separately: not a project dependency) sampling each process tree into
    `directory` as collapsed stacks (<role>.txt), until it gets SIGINT."""
    if not directory:
        return []
    Path(directory).mkdir(parents=True, exist_ok=True)
    spy = str(Path(sys.executable).parent / "py-spy")
    return [
        subprocess.Popen(
            [
                *(
                    spy,
                    "record",
                    "--pid",
                    str(pid),
                    "--subprocesses",
                    "--nonblocking",
                    "--gil",
                    "--rate",
                    os.environ.get("BENCH_CAMPAIGN_PROFILE_RATE", "50"),
                ),
                *("--format", "raw", "--output", f"{directory}/{role}.txt"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for role, pid in pids.items()
    ]


def main() -> dict[str, Any]:
    os.environ["DJANGO_ENV"] = "test"
    os.environ["DRAMATIQ_BROKER"] = "redis"
    setup_django(fresh=True)
    import httpx
    import redis
    from django.conf import settings
    from django.core.management import call_command
    from django.utils import timezone
    from django_tenants.utils import schema_context

    from conversations.models import Conversation, Message
    from conversations.services import send_template_message, send_text_message
    from crm.models import Contact
    from onboarding.services import onboard_tenant
    from tenants.jobs import broker
    from whatsapp import sandbox as sandbox_module
    from whatsapp.actors import enqueue_bulk_number
    from whatsapp.models import MessageTemplate
    from whatsapp.services import connect_channel

    recipients = int(os.environ.get("BENCH_CAMPAIGN_RECIPIENTS", "800"))
    web_processes = int(os.environ.get("BENCH_CAMPAIGN_WEB", "2"))
    worker_processes = int(os.environ.get("BENCH_CAMPAIGN_WORKERS") or 0)  # 0: docker-compose.yml's
    worker_threads = int(os.environ.get("BENCH_CAMPAIGN_THREADS") or 0)
    reply_count = int(os.environ.get("BENCH_CAMPAIGN_REPLIES", "40"))
    statuses = os.environ.get("BENCH_CAMPAIGN_STATUSES", "1") != "0"
    status_batch = int(os.environ.get("BENCH_CAMPAIGN_STATUS_BATCH", "50"))
    posters = int(os.environ.get("BENCH_CAMPAIGN_POSTERS", "4"))
    bulk_jobs = os.environ.get("BENCH_CAMPAIGN_BULK_JOBS", "6")
    profile_dir = os.environ.get("BENCH_CAMPAIGN_PROFILE", "")
    total = recipients * NUMBERS

    call_command("migrate_platform", verbosity=0)
    tenant = onboard_tenant(
        slug="cpbench",
        name="Campaign Bench",
        owner_email="owner@cpbench.test",
        owner_password="Sturdy-Pass-42",
    ).tenant
    pnids = [f"3{index:014d}" for index in range(1, NUMBERS + 1)]
    with sandbox_module.serving([(p, "300") for p in pnids]):
        channels = [
            connect_channel(
                tenant=tenant, phone_number_id=p, waba_id="300", access_token="bench", throughput_cap=CAP
            )
            for p in pnids
        ]
    broker.flush_all()
    redis_client = redis.Redis.from_url(settings.REDIS_URL)
    for pattern in ("wacrm:wa:rate:*", "wacrm:wa:pair:*", "wacrm:wa:mktlimit:*", "wacrm:wa:bulk:*"):
        for key in redis_client.scan_iter(pattern):
            redis_client.delete(key)

    sandbox_port, web_port = free_port(), free_port()
    env = process_env(
        WHATSAPP_BULK_JOBS_PER_PROCESS=bulk_jobs, WHATSAPP_GRAPH_URL=f"http://127.0.0.1:{sandbox_port}/v21.0"
    )
    sandbox = spawn(
        [
            sys.executable,
            "-m",
            "whatsapp.sandbox",
            "--port",
            str(sandbox_port),
            "--status-delay",
            "0.5",
            "--webhook-url",
            f"http://127.0.0.1:{web_port}/webhooks/whatsapp/",
            "--status-batch",
            str(status_batch),
            "--status-posters",
            str(posters),
            "--redeliver",
            *([] if statuses else ["--no-statuses"]),
        ],
        {**env, "WHATSAPP_APP_SECRET": settings.WHATSAPP_APP_SECRET or ""},
        "bench-campaign-sandbox.log",
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
        "bench-campaign-web.log",
    )
    workers: list[subprocess.Popen[bytes]] = []
    results: dict[str, Any] = {}
    try:
        wait_port(sandbox_port)
        wait_port(web_port)
        with schema_context(tenant.schema_name):
            template = MessageTemplate.objects.create(
                waba_id="300",
                name="order_update",
                language="en_US",
                category="UTILITY",
                status="APPROVED",
                components=[{"type": "BODY", "text": "Hello {{1}}, your order is on its way."}],
            )
            now = timezone.now()
            contacts = Contact.objects.bulk_create(
                [
                    Contact(name=f"Customer {i}", phone=f"+4479{i:08d}", wa_id=f"4479{i:08d}")
                    for i in range(total)
                ]
            )
            conversations = Conversation.objects.bulk_create(
                [Conversation(contact=c, channel=channels[i % NUMBERS]) for i, c in enumerate(contacts)]
            )
            agents = []  # one conversation per number whose customer wrote a minute ago, for agent replies
            for index, channel in enumerate(channels):
                contact = Contact.objects.create(
                    phone=f"+4478{index:08d}", wa_id=f"4478{index:08d}", last_inbound_at=now
                )
                agents.append(Conversation.objects.create(contact=contact, channel=channel))
            queue_started = time.perf_counter()
            # The first recipient of each number through the reply path (send_template_message, bulk=True,
            # as the campaign dispatcher); the others are the same row with their own parameter (the reply
            # path costs the driver ~28 ms a message: 5 minutes of a shared core for 10,400), enqueued as
            # its on-commit callback does.
            firsts = {
                conversation.channel_id: send_template_message(
                    conversation=conversation, template=template.pk, parameters=["Customer"], bulk=True
                )
                for conversation in conversations[:NUMBERS]
            }
            rows = []
            for conversation in conversations[NUMBERS:]:
                first = firsts[conversation.channel_id]
                payload = json.loads(json.dumps(first.payload).replace("Customer", conversation.contact.name))
                rows.append(
                    Message(
                        conversation=conversation,
                        direction=first.direction,
                        type=first.type,
                        text=first.text.replace("Customer", conversation.contact.name),
                        payload=payload,
                        status=Message.Status.QUEUED,
                        bulk=True,
                        timestamp=timezone.now(),
                    )
                )
            Message.objects.bulk_create(rows, batch_size=1000)
            broker.flush_all()  # the firsts' jobs: one job per number instead
            for key in redis_client.scan_iter("wacrm:wa:bulk:*"):
                redis_client.delete(key)
            for channel in channels:
                enqueue_bulk_number(channel_id=channel.pk, schema=tenant.schema_name)
            queued_in = time.perf_counter() - queue_started
        print(f"    {total} campaign messages queued through the reply path in {queued_in:.1f} s")
        httpx.post(f"http://127.0.0.1:{sandbox_port}/_sandbox/reset")

        cpu_before = {"web": _tree_cpu(web.pid), "sandbox": _tree_cpu(sandbox.pid)}
        worker_env = {key: value for key, value in env.items() if key != "DB_CONN_MAX_AGE"}
        workers = [
            spawn(
                [sys.executable, "-m", *_compose_command(service, processes, threads)],
                worker_env,
                f"bench-campaign-{service}.log",
            )
            for service, processes, threads in (
                ("worker", worker_processes, worker_threads),
                ("replies", 0, 0),
            )
        ]
        profilers = _profile(profile_dir, {"worker": workers[0].pid, "web": web.pid, "sandbox": sandbox.pid})
        replies: list[tuple[int, float]] = []  # (message id, time.time() when queued)

        def agent() -> None:
            with schema_context(tenant.schema_name):
                for index in range(reply_count):
                    time.sleep(0.25)
                    queued_at = time.time()
                    message = send_text_message(
                        conversation=agents[index % NUMBERS], text=f"Agent reply {index}"
                    )
                    replies.append((message.pk, queued_at))

        with schema_context(tenant.schema_name):
            first_sent = wait_for(
                lambda: Message.objects.filter(bulk=True, wamid__isnull=False).exists(),
                timeout=120,
                poll=0.05,
            )
            cpu_before["worker"] = sum(_tree_cpu(w.pid) for w in workers)  # after the processes booted
            machine_before = _machine_cpu()
            cpu_before["postgres"] = _named_cpu("postgres")
            cpu_before["redis"] = _named_cpu("redis-server")
            replier = threading.Thread(target=agent)
            replier.start()
            wait_for(
                lambda: Message.objects.filter(bulk=True, status="queued").count() == 0, timeout=900, poll=0.5
            )
            replier.join()
            wait_for(
                lambda: (
                    Message.objects.filter(pk__in=[pk for pk, _ in replies], wamid__isnull=True).count() == 0
                ),
                timeout=60,
                poll=0.2,
            )
            # The status webhooks of the last sends (0.5, 1.0, 1.5 s later) and their processing.
            settle_started = time.perf_counter()
            try:
                if not statuses:
                    raise RuntimeError("no status webhooks")
                wait_for(
                    lambda: Message.objects.filter(bulk=True, status__in=["read", "failed"]).count() >= total,
                    timeout=300,
                    poll=0.5,
                )
                statuses_done = round(time.perf_counter() - settle_started, 1)
            except RuntimeError:
                statuses_done = None
            failed = Message.objects.filter(bulk=True, status="failed").count()
            read = Message.objects.filter(bulk=True, status="read").count()
        for profiler in profilers:
            profiler.send_signal(signal.SIGINT)
            profiler.wait(timeout=60)
        machine_after = _machine_cpu()
        cpu_after = {
            "web": _tree_cpu(web.pid),
            "sandbox": _tree_cpu(sandbox.pid),
            "worker": sum(_tree_cpu(w.pid) for w in workers),
            # Backends that exited meanwhile are not counted: the workers keep theirs (DB_CONN_MAX_AGE).
            "postgres": _named_cpu("postgres"),
            "redis": _named_cpu("redis-server"),
        }
        state = httpx.get(f"http://127.0.0.1:{sandbox_port}/_sandbox/state", timeout=60).json()
        campaign = [s for s in state["sent"] if s["body"].get("type") == "template"]
        at = {s["body"].get("biz_opaque_callback_data"): s["at"] for s in state["sent"]}
        seconds = max(s["at"] for s in campaign) - min(s["at"] for s in campaign)
        delays = [at[f"wacrm:{pk}"] - queued_at for pk, queued_at in replies if f"wacrm:{pk}" in at]
        rates = state["max_rates"]
        per_second: dict[tuple[str, int], int] = {}
        for send in campaign:
            key = (send["phone_number_id"], int(send["at"]))
            per_second[key] = per_second.get(key, 0) + 1
        over_cap = sorted(n for n in per_second.values() if n > CAP)
        cpu = {
            role: round((cpu_after[role] - cpu_before.get(role, 0.0)) / max(1, len(campaign)) * 1000, 3)
            for role in cpu_after
        }
        # Everything else on the machine in the same time: PostgreSQL, Redis, this driver.
        busy = machine_after[0] - machine_before[0]
        cpu["machine"] = round(busy / max(1, len(campaign)) * 1000, 3)
        cpu["machine_idle_share"] = round(
            (machine_after[1] - machine_before[1]) / max(1e-9, busy + machine_after[1] - machine_before[1]), 3
        )
        results = {
            "messages": total,
            "numbers": NUMBERS,
            "cap": CAP,
            "sent_by_sandbox": len(campaign),
            "per_s": round(len(campaign) / seconds) if seconds else None,
            "max_number_rate": max(rates.values()) if rates else 0,
            # (number, wall-clock second) pairs with more campaign sends than the cap, on the sandbox's clock
            "number_seconds": len(per_second),
            "number_seconds_over_cap": over_cap,
            "reply_delay": summary_ms(delays),
            "replies": len(delays),
            "failed": failed,
            "read": read,
            "statuses_settled_s_after_last_send": statuses_done,
            "cpu_ms_per_message": cpu,
            "load_before": os.getloadavg(),
            "first_send_after_worker_start_s": round(first_sent - queue_started - queued_in, 1),
        }
        print(
            f"campaign: {len(campaign)}/{total} sent over {NUMBERS} numbers (cap {CAP}/s) "
            f"in {seconds:.1f} s: "
            f"{results['per_s']} msg/s; busiest number {results['max_number_rate']}/s "
            f"({len(over_cap)} of {len(per_second)} number-seconds over {CAP}: {over_cap}); agent replies "
            f"p50 {results['reply_delay']['p50_ms']} ms p99 {results['reply_delay']['p99_ms']} ms "
            f"(n={len(delays)}); {failed} failed; {read} read (statuses settled "
            f"{statuses_done} s after the last send); CPU ms/message {cpu}"
        )
    finally:
        stop([*workers, web, sandbox])
    return results


if __name__ == "__main__":
    main()
