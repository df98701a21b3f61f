"""`make run`'s variables move everything with them: WEB_PORT the site's links, SANDBOX_PORT the Graph API
the app talks to, WHATSAPP_APP_SECRET the sandbox's signatures."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from whatsapp import payloads
from whatsapp.sandbox import Sandbox, app_secret_from, build_parser

ROOT = Path(__file__).resolve().parents[2]


def settings_under(**env: str) -> dict[str, str]:
    """config.settings as a fresh process reads it with these variables (settings are read at import)."""
    code = (
        "import json, config.settings as s; "
        "print(json.dumps({'SITE_PORT': s.SITE_PORT, 'WHATSAPP_GRAPH_URL': s.WHATSAPP_GRAPH_URL, "
        "'OUTBOUND_ALLOWED_HOSTS': s.OUTBOUND_ALLOWED_HOSTS}))"
    )
    clean = {k: v for k, v in os.environ.items() if k not in {"SITE_PORT", "WEB_PORT", "SANDBOX_PORT"}}
    clean.pop("WHATSAPP_GRAPH_URL", None)
    result = subprocess.run(
        [sys.executable, "-c", code],
        env={**clean, **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


def test_web_port_moves_the_site_port_in_development():
    found = settings_under(DJANGO_ENV="development", WEB_PORT="9300")
    assert found["SITE_PORT"] == "9300"


def test_an_explicit_site_port_still_wins_over_web_port():
    found = settings_under(DJANGO_ENV="development", WEB_PORT="9300", SITE_PORT="443")
    assert found["SITE_PORT"] == "443"


def test_sandbox_port_moves_the_development_graph_url():
    found = settings_under(DJANGO_ENV="development", SANDBOX_PORT="9301")
    assert found["WHATSAPP_GRAPH_URL"] == "http://127.0.0.1:9301/v21.0"
    assert "127.0.0.1" in found["OUTBOUND_ALLOWED_HOSTS"]


def test_without_sandbox_port_development_uses_the_sandbox_on_8001():
    found = settings_under(DJANGO_ENV="development")
    assert found["WHATSAPP_GRAPH_URL"] == "http://127.0.0.1:8001/v21.0"
    assert found["SITE_PORT"] == "8000"


def test_the_sandbox_signs_with_the_app_secret_make_run_was_given():
    args = build_parser({"WHATSAPP_APP_SECRET": "my-own-secret", "SANDBOX_PORT": "9302", "WEB_PORT": "9303"})
    options = args.parse_args([])
    assert options.app_secret == "my-own-secret"
    assert options.port == 9302
    assert options.webhook_url == "http://127.0.0.1:9303/webhooks/whatsapp/"
    sandbox = Sandbox(app_secret=options.app_secret)
    body = b'{"object": "whatsapp_business_account"}'
    assert sandbox.sign(body) == payloads.sign(body, "my-own-secret")


def test_the_sandbox_reads_the_secret_from_a_file_too(tmp_path):
    secret_file = tmp_path / "secret"
    secret_file.write_text("from-a-file\n")
    assert app_secret_from({"WHATSAPP_APP_SECRET_FILE": str(secret_file)}) == "from-a-file"


def test_with_no_secret_set_the_sandbox_keeps_the_development_one():
    assert build_parser({}).parse_args([]).app_secret == "sandbox-app-secret"


def test_the_procfile_sandbox_follows_make_runs_ports():
    line = next(row for row in (ROOT / "Procfile").read_text().splitlines() if row.startswith("sandbox:"))
    assert "${SANDBOX_PORT:-8001}" in line and "${WEB_PORT:-8000}" in line
    # No secret on the command line (visible in `ps`): the sandbox reads it from the environment.
    assert "--app-secret" not in line


def test_make_manage_runs_a_command_on_make_runs_servers():
    makefile = (ROOT / "Makefile").read_text()
    assert "manage: install" in makefile
    assert "-m config.embedded -- $(PY) manage.py $(ARGS)" in makefile
