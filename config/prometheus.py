"""Prometheus across processes (prometheus_client's multiprocess mode).

Most WhatsApp metrics move inside Dramatiq worker processes, but Prometheus scrapes /metrics on the web.
With PROMETHEUS_MULTIPROC_DIR set, every process (web, each forked worker, the scheduler) writes its
samples to its own memory-mapped files in that shared directory, and /metrics adds them all up. Without
it, each process keeps its metrics in memory and /metrics shows the web process's own (tests, simple
runs).

The process runner empties the directory before any process starts (config/devrun.py; in
docker-compose.yml a tmpfs volume that is fresh whenever the stack starts), never while processes run:
they keep writing to the files they opened.
"""

from __future__ import annotations

import atexit
import os
import socket
from pathlib import Path

from prometheus_client import REGISTRY, CollectorRegistry, values
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

# Containers sharing the directory each have their own PID namespace (web and worker may both be
# PID 7), so the file names carry the host name too. prometheus_client splits file names on "_".
_HOST = socket.gethostname().replace("_", "-")


def process_identifier() -> str:
    # Called on every sample update (prometheus_client detects forks with it): keep it cheap.
    return f"{_HOST}-{os.getpid()}"


def enable_multiprocess(path: str) -> None:
    """Called from settings, before any metric exists (django_prometheus creates its metrics when the
    apps load, after settings)."""
    Path(path).mkdir(parents=True, exist_ok=True)
    # prometheus_client finds the directory in the environment when it opens a process's files.
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = path
    values.ValueClass = values.MultiProcessValue(process_identifier=process_identifier)
    # Web and scheduler exit through the interpreter; forked Dramatiq workers skip atexit and are
    # marked dead by their middleware (config/dramatiq_metrics.py).
    atexit.register(mark_this_process_dead, path)


def mark_this_process_dead(path: str) -> None:
    """Drop this process's live gauges (in-progress counts); its counters and histograms stay summed."""
    mark_process_dead(process_identifier(), path)


def export_registry(multiprocess_dir: str) -> CollectorRegistry:
    if not multiprocess_dir:
        return REGISTRY
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=multiprocess_dir)
    return registry


def empty_multiprocess_dir(path: str | Path) -> None:
    """Before the processes start: samples of an earlier run must not add to this one. Only the
    metric files go, in case the variable points at a directory that holds anything else."""
    directory = Path(path)
    directory.mkdir(parents=True, exist_ok=True)
    for db_file in directory.glob("*.db"):
        db_file.unlink()
