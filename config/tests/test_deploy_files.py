from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PROCESSES = ("web", "worker", "replies", "scheduler")


def compose_command() -> list[str]:
    """docker compose, or Debian's docker-compose (which `make test` installs when run as root with apt).

    Missing: the validation is skipped with the reason, except in CI, where it must run.
    """
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0:
        return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    if legacy:
        return [legacy]
    reason = (
        "neither `docker compose` nor docker-compose is installed (`make test` installs Debian's "
        "docker-compose when run as root with apt-get; else: apt-get install docker-compose)"
    )
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


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
    assert {"postgres", "redis", *PROCESSES} <= set(services)
    assert services["postgres"]["image"] == "postgres:16"
    assert services["redis"]["image"] == "redis:7"
    for name in ("postgres", "redis", *PROCESSES):
        check = services[name]["healthcheck"]
        assert not check.get("disable"), name
        assert check["test"][0] in ("CMD", "CMD-SHELL") and len(check["test"]) > 1, name
    for name in PROCESSES:
        assert services[name]["healthcheck"]["test"][-3:] == ["healthcheck", "--process", name], name
    assert {"pgdata", "redisdata"} <= set(spec["volumes"])


def test_the_procfile_runs_web_workers_and_scheduler():
    names = {line.split(":", 1)[0] for line in (ROOT / "Procfile").read_text().splitlines() if line.strip()}
    assert set(PROCESSES) <= names


def test_web_worker_and_scheduler_share_one_metrics_directory_that_starts_empty():
    spec = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = spec["services"]
    for name in PROCESSES:
        service = services[name]
        assert service["environment"]["PROMETHEUS_MULTIPROC_DIR"] == "/data/metrics", name
        assert "metrics:/data/metrics" in service["volumes"], name
    # The one-shot migration is not a process worth counting.
    assert "PROMETHEUS_MULTIPROC_DIR" not in services["migrate"]["environment"]
    # tmpfs: fresh when the stack starts, never emptied under running processes.
    assert spec["volumes"]["metrics"]["driver_opts"]["type"] == "tmpfs"


def test_the_required_settings_have_no_default_in_the_compose_file():
    environment = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["x-app"]["environment"]
    for name in ("DJANGO_SECRET_KEY", "FIELD_ENCRYPTION_KEY", "WHATSAPP_APP_SECRET", "ALLOWED_HOSTS"):
        assert environment[name] == f"${{{name}:-}}", name


def dockerfile_steps() -> list[str]:
    """The Dockerfile's instructions, continuation lines joined, comments dropped."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def test_the_image_installs_the_locked_dependencies_before_copying_the_code():
    steps = dockerfile_steps()
    install = next(i for i, step in enumerate(steps) if "pip install" in step)
    copy_code = steps.index("COPY . .")
    assert "--require-hashes -r requirements/prod.lock" in steps[install]
    assert steps[install - 1] == "COPY requirements/prod.lock requirements/prod.lock"
    assert install < copy_code
    # Nothing before the install depends on the code.
    assert not any(step.startswith(("COPY", "ADD")) for step in steps[: install - 1])


def test_the_image_runs_as_a_user_and_checks_its_health():
    steps = dockerfile_steps()
    users = [step.split()[1] for step in steps if step.startswith("USER ")]
    assert users and users[-1] not in ("root", "0")
    healthcheck = next(step for step in steps if step.startswith("HEALTHCHECK "))
    assert '"healthcheck", "--process", "web"' in healthcheck


def test_the_image_never_receives_a_local_env_file():
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert ".env" in ignored


def _dramatiq_queues(command: list[str]) -> set[str] | None:
    """The queues a `dramatiq config.worker` command consumes (None: all of them)."""
    if "--queues" not in command:
        return None
    rest = command[command.index("--queues") + 1 :]
    return set(next((rest[:i] for i, word in enumerate(rest) if word.startswith("-")), rest))


def _worker_commands() -> dict[str, dict[str, list[str]]]:
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    procfile = dict(
        line.split(":", 1) for line in (ROOT / "Procfile").read_text().splitlines() if line.strip()
    )
    return {
        "docker-compose.yml": {
            name: service["command"]
            for name, service in services.items()
            if "dramatiq" in (service.get("command") or [])
        },
        "Procfile": {name: command.split() for name, command in procfile.items() if "dramatiq" in command},
    }


def test_every_queue_is_consumed_and_replies_have_a_process_of_their_own():
    """A queue nobody consumes would hold its jobs for ever: each declared queue is in exactly one worker
    command, and `outbound` (agents' and the AI's replies) is alone in its own (campaign traffic keeping
    the other workers busy never makes a reply wait)."""
    import tenants.jobs
    from config.worker import import_actors

    import_actors()
    declared = {queue for queue in tenants.jobs.broker.get_declared_queues() if not queue.endswith(".DQ")}
    assert {"outbound", "bulk", "inbound", "default"} <= declared
    for source, commands in _worker_commands().items():
        consumed = {name: _dramatiq_queues(command) for name, command in commands.items()}
        assert consumed["replies"] == {"outbound"}, source
        assert None not in consumed.values(), f"{source}: a worker without --queues takes replies too"
        everything = [queue for queues in consumed.values() for queue in queues or ()]
        assert sorted(everything) == sorted(declared), source
