"""/metrics in both modes: one process's own registry, or every process's samples from the shared
PROMETHEUS_MULTIPROC_DIR. The live web and worker processes are exercised in
whatsapp/tests/test_live_processes.py."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from config.prometheus import empty_multiprocess_dir
from whatsapp import metrics

ROOT = Path(__file__).resolve().parents[2]

# What a worker process does: Django set up with the directory in its environment, then counting.
WORKER_SCRIPT = """
import sys, django
django.setup()
from whatsapp import metrics
n = int(sys.argv[1])
metrics.MESSAGES.labels(direction="out", type="text", status="sent").inc(n)
metrics.SEND_RETRIES.labels(reason="131056").inc()
for _ in range(n):
    metrics.SEND_SECONDS.observe(0.2)
    metrics.LIMITER_WAIT_SECONDS.observe(0.01)
"""


def scrape(content: bytes) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(content.decode())
        for sample in family.samples
    }


def run_counting_processes(directory: Path, *counts: int) -> None:
    env = {
        **os.environ,
        "DJANGO_ENV": "test",
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "PROMETHEUS_MULTIPROC_DIR": str(directory),
    }
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER_SCRIPT, str(n)], cwd=ROOT, env=env, stderr=subprocess.PIPE
        )
        for n in counts
    ]
    for process in processes:
        _, stderr = process.communicate(timeout=120)
        assert process.returncode == 0, stderr.decode()


def test_metrics_counted_in_other_processes_are_summed_on_the_public_host(public_client, settings, tmp_path):
    run_counting_processes(tmp_path, 3, 4)
    settings.PROMETHEUS_MULTIPROC_DIR = str(tmp_path)

    response = public_client.get("/metrics")

    assert response.status_code == 200
    found = scrape(response.content)
    sent = frozenset({"direction": "out", "type": "text", "status": "sent"}.items())
    assert found[("wacrm_whatsapp_messages_total", sent)] == 7
    assert found[("wacrm_whatsapp_send_retries_total", frozenset({("reason", "131056")}))] == 2
    assert found[("wacrm_whatsapp_send_seconds_count", frozenset())] == 7
    assert found[("wacrm_whatsapp_send_seconds_bucket", frozenset({("le", "0.25")}))] == 7
    assert found[("wacrm_whatsapp_limiter_wait_seconds_count", frozenset())] == 7
    # Each process writes files of its own, named by host and PID (containers share PIDs).
    assert len(list(tmp_path.glob("counter_*.db"))) == 2


def test_metrics_of_other_processes_on_a_tenant_host_still_need_the_token(client_a, settings, tmp_path):
    run_counting_processes(tmp_path, 1)
    settings.PROMETHEUS_MULTIPROC_DIR = str(tmp_path)
    settings.METRICS_TOKEN = "s3cret-token"

    assert client_a.get("/metrics").status_code == 403
    response = client_a.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-token")
    assert response.status_code == 200
    assert b"wacrm_whatsapp_messages_total" in response.content


def test_without_a_multiprocess_directory_metrics_are_the_web_process_own(public_client, settings):
    settings.PROMETHEUS_MULTIPROC_DIR = ""
    metrics.SEND_RETRIES.labels(reason="in-this-process").inc()

    found = scrape(public_client.get("/metrics").content)

    assert found[("wacrm_whatsapp_send_retries_total", frozenset({("reason", "in-this-process")}))] >= 1
    assert ("process_cpu_seconds_total", frozenset()) in found  # this process's own collectors


def test_emptying_the_directory_removes_only_metric_files(tmp_path):
    (tmp_path / "counter_host-1.db").write_bytes(b"x")
    (tmp_path / "gauge_livesum_host-2.db").write_bytes(b"x")
    (tmp_path / "notes.txt").write_text("not ours")

    empty_multiprocess_dir(tmp_path)
    empty_multiprocess_dir(tmp_path / "new")

    assert sorted(p.name for p in tmp_path.iterdir()) == ["new", "notes.txt"]
