from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def compose_command() -> list[str]:
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0:
        return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    assert legacy, "docker compose (or docker-compose, installed by .ci/run) is needed to validate the file"
    return [legacy]


def test_the_compose_file_validates():
    result = subprocess.run(
        [*compose_command(), "-f", str(ROOT / "docker-compose.yml"), "config", "-q"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr


def test_the_compose_file_runs_every_process_with_healthchecks_and_volumes():
    spec = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = spec["services"]
    assert {"postgres", "redis", "web", "worker", "scheduler"} <= set(services)
    assert services["postgres"]["image"] == "postgres:16"
    assert services["redis"]["image"] == "redis:7"
    for name in ("postgres", "redis", "web", "worker"):
        assert "healthcheck" in services[name], name
    assert {"pgdata", "redisdata"} <= set(spec["volumes"])


def test_the_procfile_runs_web_worker_and_scheduler():
    names = {line.split(":", 1)[0] for line in (ROOT / "Procfile").read_text().splitlines() if line.strip()}
    assert {"web", "worker", "scheduler"} <= names


def test_web_worker_and_scheduler_share_one_metrics_directory_that_starts_empty():
    spec = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = spec["services"]
    for name in ("web", "worker", "scheduler"):
        service = services[name]
        assert service["environment"]["PROMETHEUS_MULTIPROC_DIR"] == "/data/metrics", name
        assert "metrics:/data/metrics" in service["volumes"], name
    # The one-shot migration is not a process worth counting.
    assert "PROMETHEUS_MULTIPROC_DIR" not in services["migrate"]["environment"]
    # tmpfs: fresh when the stack starts, never emptied under running processes.
    assert spec["volumes"]["metrics"]["driver_opts"]["type"] == "tmpfs"
