"""PostgreSQL's client programs (pg_dump, pg_restore) of the server's own major version, and how to
reach the server with them.

A pg_dump older than the server refuses to dump it; a newer one writes archives an older pg_restore
cannot read. So the programs are picked by `SHOW server_version_num`, from (in order) PG_BIN_DIR,
Debian's /usr/lib/postgresql/<major>/bin, the binaries pgserver bundles (the embedded server under
`make run`), and the PATH; each candidate's own `--version` must name the same major version.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import psycopg
from django.conf import settings
from django.db import connection

from core.errors import ServiceError

_VERSION_RE = re.compile(r"\(PostgreSQL\)\s+(\d+)")


def server_major() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version_num")
        return int(cursor.fetchone()[0]) // 10000


@functools.cache
def _major_of(program: str) -> int | None:
    try:
        out = subprocess.run([program, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    found = _VERSION_RE.search(out)
    return int(found.group(1)) if found else None


def _candidates(name: str, major: int) -> list[Path]:
    found: list[Path] = []
    if getattr(settings, "PG_BIN_DIR", ""):
        found.append(Path(settings.PG_BIN_DIR) / name)
    found.append(Path(f"/usr/lib/postgresql/{major}/bin") / name)
    try:
        from pgserver._commands import POSTGRES_BIN_PATH  # type: ignore[import-untyped]

        found.append(Path(POSTGRES_BIN_PATH) / name)
    except ImportError:
        pass
    on_path = shutil.which(name)
    if on_path:
        found.append(Path(on_path))
    return found


def pg_program(name: str, *, major: int | None = None) -> str:
    """The path of `name` (pg_dump, pg_restore) whose major version is the server's."""
    major = major if major is not None else server_major()
    for candidate in _candidates(name, major):
        if candidate.is_file() and os.access(candidate, os.X_OK) and _major_of(str(candidate)) == major:
            return str(candidate)
    raise ServiceError(
        "pg_tools_missing",
        f"No {name} of PostgreSQL {major} (the server's version) was found. Install the PostgreSQL "
        f"{major} client programs or set PG_BIN_DIR to their directory.",
        status=500,
    )


def conninfo(database: str | None = None) -> dict[str, Any]:
    """psycopg connection keywords for the default database (or another on the same server)."""
    conf = connection.settings_dict
    info: dict[str, Any] = {"dbname": database or conf["NAME"]}
    for key, name in (("HOST", "host"), ("PORT", "port"), ("USER", "user"), ("PASSWORD", "password")):
        if conf.get(key):
            info[name] = str(conf[key])
    sslmode = (conf.get("OPTIONS") or {}).get("sslmode")
    if sslmode:
        info["sslmode"] = sslmode
    return info


def client_env(database: str | None = None) -> dict[str, str]:
    """The environment for pg_dump/pg_restore: the password never appears on a command line."""
    info = conninfo(database)
    env = dict(os.environ)
    for name, var in (
        ("host", "PGHOST"),
        ("port", "PGPORT"),
        ("user", "PGUSER"),
        ("password", "PGPASSWORD"),
        ("dbname", "PGDATABASE"),
        ("sslmode", "PGSSLMODE"),
    ):
        if name in info:
            env[var] = str(info[name])
    return env


def connect(database: str | None = None, *, autocommit: bool = False) -> psycopg.Connection[Any]:
    return psycopg.connect(**conninfo(database), autocommit=autocommit)


def run(args: list[str], *, database: str | None = None, what: str) -> None:
    """Run a client program; its failure is a ServiceError carrying the program's own message."""
    result = subprocess.run(args, env=client_env(database), capture_output=True, text=True)
    if result.returncode != 0:
        raise ServiceError(
            "pg_command_failed",
            f"{what} failed: {(result.stderr or result.stdout).strip()[-1500:]}",
            status=500,
        )
