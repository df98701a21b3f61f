"""Shared set-up for benchmarks: a database of their own (<name>_bench), Django, percentiles, HTTP."""

from __future__ import annotations

import asyncio
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/wacrm"
ROOT = Path(__file__).resolve().parent.parent


def bench_database_url() -> str:
    url = os.environ.get("DATABASE_URL", DEFAULT_URL)
    parts = urlsplit(url)
    name = parts.path.lstrip("/") or "wacrm"
    if not name.endswith("_bench"):
        name = f"{name}_bench"
    return urlunsplit(parts._replace(path=f"/{name}"))


def setup_django(*, fresh: bool) -> None:
    """Point Django at the benchmark database (created, or recreated when fresh) and set it up."""
    import django
    import psycopg

    url = bench_database_url()
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_ENV", "test")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    from environ import Env

    config = Env.db_url_config(url)
    from urllib.parse import unquote

    admin = psycopg.connect(
        host=unquote(config["HOST"]) or None,
        port=config["PORT"] or None,
        user=config["USER"],
        dbname="postgres",
        autocommit=True,
    )
    name = config["NAME"]
    exists = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
    if exists and fresh:
        admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        exists = None
    if not exists:
        admin.execute(f'CREATE DATABASE "{name}"')
    admin.close()
    django.setup()


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


def summary_ms(values: list[float]) -> dict[str, float]:
    """Seconds in, milliseconds out."""
    return {
        "mean_ms": round(statistics.fmean(values) * 1000, 2),
        "p50_ms": round(percentile(values, 50) * 1000, 2),
        "p95_ms": round(percentile(values, 95) * 1000, 2),
        "p99_ms": round(percentile(values, 99) * 1000, 2),
        "max_ms": round(max(values) * 1000, 2) if values else float("nan"),
        "n": len(values),
    }


async def exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes) -> bytes:
    """Send a raw HTTP/1.1 request on a keep-alive connection and read the response; returns its head."""
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    if length:
        await reader.readexactly(length)
    return head


def process_env(**extra: str) -> dict[str, str]:
    """The environment of the product's processes a benchmark starts (web, worker, sandbox): its database,
    the Redis broker, production's webhook deadline and connection handling, this checkout first."""
    (ROOT / ".data").mkdir(exist_ok=True)
    return {
        **os.environ,
        "DATABASE_URL": bench_database_url(),
        "DRAMATIQ_BROKER": "redis",
        "DJANGO_ENV": "test",
        "LOG_LEVEL": "WARNING",
        # As in the Procfile: the web keeps no persistent connections (ASGI threads), workers keep theirs.
        "DB_CONN_MAX_AGE": "0",
        # The production deadline (DJANGO_ENV=test would give the tests' generous one).
        "WHATSAPP_WEBHOOK_ACK_DEADLINE": os.environ.get("WHATSAPP_WEBHOOK_ACK_DEADLINE", "0.5"),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        # This checkout first, whatever else the environment has installed in editable mode.
        "PYTHONPATH": str(ROOT),
        **extra,
    }


# -- the processes a benchmark starts ------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port}")


def spawn(args: list[str], env: dict[str, str], log: str) -> subprocess.Popen[bytes]:
    handle = open(ROOT / ".data" / log, "wb")  # noqa: SIM115 - lives as long as the process
    return subprocess.Popen(args, env=env, cwd=ROOT, stdout=handle, stderr=subprocess.STDOUT)


def stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()


def wait_for(predicate: Any, timeout: float, poll: float = 0.05) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return time.perf_counter()
        time.sleep(poll)
    raise RuntimeError("timed out")
