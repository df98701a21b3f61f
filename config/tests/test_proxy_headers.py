"""The web process as the Procfile, the Dockerfile and docker-compose.yml start it: uvicorn believes
X-Forwarded-For only from FORWARDED_ALLOW_IPS, which is empty unless set. Left to itself uvicorn trusts
127.0.0.1, and a client on loopback picked the address its failed sign-ins were counted against."""

from __future__ import annotations

import json
import os
import re
import shlex
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from uvicorn import Config
from uvicorn.main import main as uvicorn_cli
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

ROOT = Path(__file__).resolve().parents[2]
_DEFAULTED = re.compile(r"\$\{(\w+):-([^}]*)\}")


def _expand(text: str) -> str:
    # What sh (Procfile, Dockerfile) and compose do with ${VAR:-default}.
    return _DEFAULTED.sub(lambda m: os.environ.get(m[1]) or m[2], text)


def _procfile_argv() -> list[str]:
    line = next(x for x in (ROOT / "Procfile").read_text().splitlines() if x.startswith("web:"))
    return shlex.split(_expand(line.split(":", 1)[1]))


def _dockerfile_argv() -> list[str]:
    cmd = next(x for x in (ROOT / "Dockerfile").read_text().splitlines() if x.startswith("CMD "))
    argv = json.loads(cmd[4:])
    if argv[:2] == ["sh", "-c"]:
        argv = shlex.split(_expand(argv[2]))
    return [a for a in argv if a != "exec"]


def _compose_argv() -> list[str]:
    spec = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return [_expand(a) for a in spec["services"]["web"]["command"]]


def _uvicorn_app(argv: list[str]) -> Any:
    """The ASGI app uvicorn would serve with these arguments (its own option parsing and wrapping)."""
    assert argv[0] == "uvicorn"
    params = uvicorn_cli.make_context("uvicorn", argv[1:]).params
    config = Config(
        app=params["app"],
        proxy_headers=params["proxy_headers"],
        forwarded_allow_ips=params["forwarded_allow_ips"],
    )
    config.load()
    return config.loaded_app


@pytest.mark.parametrize(
    "argv", [_procfile_argv, _dockerfile_argv, _compose_argv], ids=["Procfile", "Dockerfile", "compose"]
)
def test_no_deploy_file_lets_uvicorn_believe_x_forwarded_for_unless_configured(argv, monkeypatch):
    monkeypatch.delenv("FORWARDED_ALLOW_IPS", raising=False)
    app = _uvicorn_app(argv())
    assert isinstance(app, ProxyHeadersMiddleware)
    assert "127.0.0.1" not in app.trusted_hosts and "::1" not in app.trusted_hosts
    monkeypatch.setenv("FORWARDED_ALLOW_IPS", "10.0.0.5")
    app = _uvicorn_app(argv())
    assert "10.0.0.5" in app.trusted_hosts and "127.0.0.1" not in app.trusted_hosts


async def test_through_uvicorn_rotating_x_forwarded_for_from_loopback_is_throttled(
    committed_db, settings, monkeypatch
):
    monkeypatch.delenv("FORWARDED_ALLOW_IPS", raising=False)
    settings.FORWARDED_ALLOW_IPS = []
    # A period of this run's own: the counters of 127.0.0.1 start at zero whatever ran before.
    settings.LOGIN_FAILURE_IP_LIMIT = f"10/{900 + uuid.uuid4().int % 100000}s"
    app = _uvicorn_app(_procfile_argv())
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://alpha.localhost") as client:
        page = await client.get("/login/")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
        assert page.status_code == 200 and token
        statuses = []
        for n in range(30):
            response = await client.post(
                "/login/",
                data={
                    "csrfmiddlewaretoken": token[1],
                    "username": f"spray{n}.{uuid.uuid4().hex[:6]}@alpha.test",
                    "password": "not-the-password",
                },
                headers={"X-Forwarded-For": f"203.0.113.{n + 1}"},
            )
            statuses.append(response.status_code)
    assert statuses == [200] * 10 + [429] * 20
