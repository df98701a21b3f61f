"""The live processes outlive their dependencies: web (uvicorn), a Dramatiq worker and the scheduler run
against a PostgreSQL and a Redis that this module starts for itself (never the machine's shared ones),
while signed webhooks arrive throughout. Redis is stopped for 10 s, then PostgreSQL for 10 s. Afterwards
every webhook that was answered 200 has become a message, every request was answered (503 while its
event could not be stored is fine: Meta delivers it again) and no process exited.

The private database is a copy (pg_dump | pg_restore) of the session's migrated test database, which
already holds the tenants; a number is connected in it for alpha. Restoring takes a second or two where
migrating a fresh database takes far longer.
"""

from __future__ import annotations

import contextlib
import copy
import importlib.util
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from django.conf import settings
from django.db import connections

from conftest import wait_until
from whatsapp import payloads
from whatsapp.sandbox import Sandbox
from whatsapp.testing import FIXTURES, _sandbox_server  # noqa: F401 - the Graph API sandbox fixture

# django_db: the session then sets the test database up, which the private one is copied from.
pytestmark = [pytest.mark.resilience, pytest.mark.django_db]

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# Spare ports of this test's own (the web, Redis, PostgreSQL), never the machine's 5432 and 6379.
WEB_PORT, REDIS_PORT, PG_PORT = _free_port(), _free_port(), _free_port()
PNID, WABA = "106540352242922", "102290129340398"
OUTAGE_SECONDS = 10.0
WAIT = 90.0


TOOLS = ("initdb", "pg_ctl", "postgres", "createdb", "pg_dump", "pg_restore")


def _pg_bindir(major: int) -> Path | None:
    """Server binaries of the test database's major version (its dump must restore): Debian's packages
    (CI's server) or pgserver's bundled ones (the embedded server `make test` starts on a bare machine)."""
    for bindir in [*sorted(Path("/usr/lib/postgresql").glob("*/bin")), _pgserver_bindir()]:
        if not all((bindir / tool).exists() for tool in TOOLS):
            continue
        found = subprocess.run([bindir / "postgres", "--version"], capture_output=True, text=True).stdout
        if found.split()[-1].split(".")[0] == str(major):
            return bindir
    return None


def _pgserver_bindir() -> Path:
    spec = importlib.util.find_spec("pgserver")  # not imported: it would set up directories of its own
    origin = spec.origin if spec is not None else None
    return Path(origin).parent / "pginstall" / "bin" if origin else Path("/nonexistent")


def _system_user() -> str | None:
    """PostgreSQL refuses to run as root: under root (CI) it runs as the postgres (or pgserver) user."""
    if os.geteuid() != 0:
        return ""
    for name in ("postgres", "pgserver"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    return None


REDIS_SERVER = shutil.which("redis-server")
if REDIS_SERVER is None:
    pytest.skip("needs redis-server (Debian's redis-server package)", allow_module_level=True)


@dataclass
class PrivatePostgres:
    datadir: Path
    bindir: Path
    user: str

    def ctl(self, *args: str) -> None:
        subprocess.run(
            [str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-w", "-t", "60", *args],
            check=True,
            capture_output=True,
            **self.as_user(),
        )

    def as_user(self) -> dict[str, Any]:
        return {"user": self.user, "group": self.user} if self.user else {}

    def start(self) -> None:
        # Durability is not what this test is about: no fsync makes the restore and restarts quick.
        options = (
            f"-p {PG_PORT} -k {self.datadir} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        self.ctl("-o", options, "-l", str(self.datadir / "server.log"), "start")

    def stop(self) -> None:
        self.ctl("-m", "fast", "stop")

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{PG_PORT}/wacrm"


@dataclass
class PrivateRedis:
    datadir: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                str(REDIS_SERVER),
                "--port",
                str(REDIS_PORT),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.datadir),
                # A save point, so that SIGTERM saves what is queued and the restart loads it.
                "--save",
                "3600 1",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(self._answers, what="the private redis-server to answer")

    def _answers(self) -> bool:
        import redis

        with contextlib.suppress(redis.RedisError):
            return bool(redis.Redis(port=REDIS_PORT, socket_connect_timeout=1).ping())
        return False

    def stop(self) -> None:
        """A clean stop that keeps what is queued (SIGTERM saves), as a restarted Redis would."""
        assert self.process is not None
        self.process.terminate()
        self.process.wait(timeout=WAIT)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{REDIS_PORT}/0"


def _copy_test_database(target: PrivatePostgres) -> None:
    db = connections["default"].settings_dict
    source = {
        "PGHOST": db["HOST"] or "127.0.0.1",
        "PGPORT": str(db["PORT"] or 5432),
        "PGUSER": db["USER"] or "postgres",
        "PGPASSWORD": db["PASSWORD"] or "",
        "PGDATABASE": db["NAME"],
    }
    subprocess.run(
        [str(target.bindir / "createdb"), "-h", "127.0.0.1", "-p", str(PG_PORT), "-U", "postgres", "wacrm"],
        check=True,
    )
    dump = target.datadir.parent / "test-database.dump"
    subprocess.run(
        [str(target.bindir / "pg_dump"), "-Fc", "--no-owner", "-f", str(dump)],
        env={**os.environ, **source},
        check=True,
    )
    # In parallel from a file: a few seconds instead of ten on a busy machine.
    subprocess.run(
        [
            *(str(target.bindir / "pg_restore"), "--no-owner", "-j", "4"),
            *("-h", "127.0.0.1", "-p", str(PG_PORT), "-U", "postgres", "-d", "wacrm", str(dump)),
        ],
        check=True,
    )


CONNECT_NUMBER = f"""
from tenants.models import Tenant
from whatsapp.services import connect_channel
connect_channel(tenant=Tenant.objects.get(slug="alpha"), phone_number_id="{PNID}", waba_id="{WABA}",
                access_token="token-resilience")
"""


@dataclass
class Stack:
    env: dict[str, str]
    logs: Path
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, name: str, command: list[str]) -> None:
        log = (self.logs / f"{name}.log").open("ab")
        self.processes[name] = subprocess.Popen(
            command, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")[-4000:]

    def logs_of_all(self) -> str:
        return "\n".join(f"--- {name}\n{self.log(name)}" for name in self.processes)

    def stop_all(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


@dataclass
class Poster:
    """Posts a signed text webhook every few tens of milliseconds and records how each was answered."""

    base: str
    secret: str
    answers: list[tuple[str, int | str]] = field(default_factory=list)
    stopping: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None

    def body(self, text: str) -> bytes:
        data = copy.deepcopy(_TEMPLATE)
        message = data["entry"][0]["changes"][0]["value"]["messages"][0]
        message["id"] = f"wamid.resilience.{text}"
        message["timestamp"] = str(int(time.time()))
        message["text"]["body"] = text
        return payloads.encode(data)

    def post(self, client: httpx.Client, text: str) -> int | str:
        raw = self.body(text)
        try:
            response = client.post(
                f"{self.base}/webhooks/whatsapp/",
                content=raw,
                headers={
                    "Content-Type": "application/json",
                    "X-Hub-Signature-256": payloads.sign(raw, self.secret),
                    "Host": "localhost",
                },
            )
        except httpx.HTTPError as exc:
            return f"no answer: {exc!r}"
        return response.status_code

    def run(self) -> None:
        with httpx.Client(timeout=30) as client:
            number = 0
            while not self.stopping.is_set():
                number += 1
                text = f"resilience-{number}"
                self.answers.append((text, self.post(client, text)))
                self.stopping.wait(0.05)

    def start(self) -> None:
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()
        assert self.thread is not None
        self.thread.join(timeout=60)

    def accepted(self) -> set[str]:
        return {text for text, status in self.answers if status == 200}


_TEMPLATE = json.loads((FIXTURES / "text.json").read_text())


@pytest.fixture(scope="module")
def private_servers(
    django_db_setup: Any, django_db_blocker: Any
) -> Iterator[tuple[PrivatePostgres, PrivateRedis]]:
    assert connections["default"].settings_dict["NAME"].startswith("test_"), "no test database"
    with django_db_blocker.unblock():
        major = connections["default"].pg_version // 10000
    bindir, user = _pg_bindir(major), _system_user()
    if bindir is None:
        pytest.skip(f"needs PostgreSQL {major}'s server binaries (Debian's postgresql-{major} or pgserver)")
    if user is None:
        pytest.skip("runs as root without a postgres or pgserver user for PostgreSQL to run as")
    tmp = Path(tempfile.mkdtemp(prefix="wacrm-resilience-"))
    pgdata = tmp / "pg"
    pgdata.mkdir()
    redis_dir = tmp / "redis"
    redis_dir.mkdir()
    if user:
        shutil.chown(tmp, user, user)
        shutil.chown(pgdata, user, user)
    postgres = PrivatePostgres(pgdata, bindir, user)
    redis_server = PrivateRedis(redis_dir)
    try:
        subprocess.run(
            [str(bindir / "initdb"), "-N", "-D", str(pgdata), "-U", "postgres", "--auth=trust", "-E", "UTF8"],
            check=True,
            capture_output=True,
            **postgres.as_user(),
        )
        postgres.start()
        with django_db_blocker.unblock():
            _copy_test_database(postgres)
        redis_server.start()
        yield postgres, redis_server
    finally:
        with contextlib.suppress(Exception):
            redis_server.stop()
        with contextlib.suppress(Exception):
            postgres.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def _message_texts(postgres: PrivatePostgres, table: str) -> set[str]:
    with psycopg.connect(postgres.url.replace("postgres://", "postgresql://"), connect_timeout=5) as conn:
        rows = conn.execute(f'SELECT text FROM "alpha"."{table}" WHERE text LIKE %s', ("resilience-%",))
        return {row[0] for row in rows}


def test_processes_survive_redis_and_postgres_outages(private_servers, request, tmp_path):
    from conversations.models import Message

    postgres, redis_server = private_servers
    sandbox: Sandbox = request.getfixturevalue("_sandbox_server")
    sandbox.reset()
    sandbox.add_number(PNID, waba_id=WABA, tokens=["token-resilience"])
    env = {
        **os.environ,
        "DJANGO_ENV": "test",
        "DATABASE_URL": postgres.url,
        "REDIS_URL": redis_server.url,
        "DRAMATIQ_BROKER": "redis",
        "DRAMATIQ_BROKER_URL": redis_server.url,
        "WHATSAPP_GRAPH_URL": sandbox.url,
        "WHATSAPP_SWEEP_AFTER_SECONDS": "2",
        "LOG_LEVEL": "WARNING",
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", CONNECT_NUMBER], cwd=ROOT, env=env, check=True
    )
    stack = Stack(env=env, logs=tmp_path)
    base = f"http://127.0.0.1:{WEB_PORT}"
    stack.start(
        "web",
        [
            sys.executable,
            "-m",
            "uvicorn",
            "config.asgi:application",
            "--host",
            "127.0.0.1",
            "--port",
            str(WEB_PORT),
            "--no-access-log",
            "--log-level",
            "warning",
        ],
    )
    stack.start(
        "worker",
        [sys.executable, "-m", "dramatiq", "config.worker", "--processes", "1", "--threads", "2"],
    )
    stack.start("scheduler", [sys.executable, "manage.py", "run_scheduler"])
    poster = Poster(base=base, secret=settings.WHATSAPP_APP_SECRET or "")
    table = Message._meta.db_table

    def health() -> dict[str, Any] | None:
        with contextlib.suppress(httpx.HTTPError, ValueError):
            response = httpx.get(f"{base}/healthz", timeout=5)
            return {**response.json(), "code": response.status_code}
        return None

    try:
        wait_until(
            lambda: (health() or {}).get("code") == 200,
            what=f"the web to answer\n{stack.logs_of_all()}",
            timeout=WAIT,
        )
        poster.start()
        wait_until(lambda: len(poster.accepted()) >= 5, what=f"webhooks accepted\n{stack.logs_of_all()}")

        redis_server.stop()
        during_redis = wait_until(health, what="/healthz while Redis is away")
        time.sleep(OUTAGE_SECONDS)
        redis_server.start()
        accepted_before_pg = len(poster.accepted())
        wait_until(
            lambda: len(poster.accepted()) >= accepted_before_pg + 5,
            what=f"webhooks accepted after Redis came back\n{stack.logs_of_all()}",
        )

        postgres.stop()
        during_postgres = wait_until(health, what="/healthz while PostgreSQL is away")
        # A page or API call that needs the database answers 503 (try again), not 500.
        api_during_postgres = httpx.get(
            f"{base}/api/v1/contacts/",
            headers={"Host": "alpha.localhost", "Authorization": "Bearer wacrm_nosuchkey_notasecret"},
            timeout=30,
        )
        time.sleep(OUTAGE_SECONDS)
        postgres.start()
        accepted_after = len(poster.accepted())
        wait_until(
            lambda: len(poster.accepted()) >= accepted_after + 5,
            what=f"webhooks accepted after PostgreSQL came back\n{stack.logs_of_all()}",
        )
        poster.stop()

        accepted = poster.accepted()
        missing: set[str] = set()

        def all_processed() -> bool:
            nonlocal missing
            with contextlib.suppress(psycopg.Error):
                missing = accepted - _message_texts(postgres, table)
                return not missing
            return False

        try:
            wait_until(all_processed, what="every accepted webhook to become a message", timeout=WAIT)
        except AssertionError:
            raise AssertionError(
                f"{len(missing)} of {len(accepted)} accepted webhooks not processed: "
                f"{sorted(missing)[:10]}\n{stack.logs_of_all()}"
            ) from None

        unanswered = [(text, status) for text, status in poster.answers if status not in (200, 503)]
        assert not unanswered, f"{unanswered[:10]}\n{stack.logs_of_all()}"
        assert any(status == 503 for _, status in poster.answers), "the outage refused nothing?"
        assert (during_redis["code"], during_redis["status"]) == (200, "degraded"), during_redis
        assert "redis" in during_redis["down"]
        assert (during_postgres["code"], during_postgres["status"]) == (503, "unavailable"), during_postgres
        assert "database" in during_postgres["down"]
        assert api_during_postgres.status_code == 503, api_during_postgres.text
        assert api_during_postgres.json()["error"]["code"] == "unavailable"
        gone = {
            name: process.returncode
            for name, process in stack.processes.items()
            if process.poll() is not None
        }
        assert not gone, f"processes exited: {gone}\n{stack.logs_of_all()}"
    finally:
        if not poster.stopping.is_set() and poster.thread is not None:
            poster.stop()
        stack.stop_all()
        sandbox.reset()
