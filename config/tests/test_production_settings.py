"""Production fails fast: with DJANGO_ENV=production each required secret has no default, `*_FILE` variants
are read by django-environ's FileAwareEnv, and `check --deploy` passes on the documented settings
(.env.example, which docker-compose reads as .env). Each case is a fresh process: settings are read at
import."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parents[2]
REQUIRED = ["DJANGO_SECRET_KEY", "FIELD_ENCRYPTION_KEY", "WHATSAPP_APP_SECRET", "ALLOWED_HOSTS"]
GENERATED = {
    "DJANGO_SECRET_KEY": lambda: secrets.token_urlsafe(50),
    "FIELD_ENCRYPTION_KEY": lambda: Fernet.generate_key().decode(),
    "WHATSAPP_APP_SECRET": lambda: secrets.token_hex(16),
    "WHATSAPP_VERIFY_TOKEN": lambda: secrets.token_urlsafe(24),
    "METRICS_TOKEN": lambda: secrets.token_urlsafe(24),
}
DUMP = (
    "import json, config.settings as s; print(json.dumps({'SECRET_KEY': s.SECRET_KEY, "
    "'FIELD_ENCRYPTION_KEYS': s.FIELD_ENCRYPTION_KEYS, 'WHATSAPP_APP_SECRET': s.WHATSAPP_APP_SECRET, "
    "'ALLOWED_HOSTS': s.ALLOWED_HOSTS, 'DEBUG': s.DEBUG}))"
)


def documented_settings() -> dict[str, str]:
    """.env.example's variables, its empty secrets filled in as the operator is told to."""
    found: dict[str, str] = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = (part.strip() for part in line.partition("="))
            found[name] = value or (GENERATED[name]() if name in GENERATED else "")
    return found


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    # Only these variables: none of the test run's own (DJANGO_ENV=test, DATABASE_URL...) leak in.
    return subprocess.run(
        [sys.executable, *args],
        env={"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"), **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def settings_of(env: dict[str, str]) -> dict[str, object]:
    result = run(["-c", DUMP], env)
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


def production(**overrides: str) -> dict[str, str]:
    return {**documented_settings(), "DJANGO_ENV": "production", **overrides}


def test_every_required_variable_is_in_the_documented_settings():
    assert set(REQUIRED) <= set(documented_settings())


def test_check_deploy_passes_on_the_documented_production_settings():
    result = run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], production())

    assert result.returncode == 0, result.stdout + result.stderr
    assert "identified no issues" in result.stdout


def test_the_images_collectstatic_step_succeeds_on_production_settings(tmp_path):
    # The Dockerfile's step: the manifest storage fails on any reference to a missing file (a source map).
    result = run(
        ["manage.py", "collectstatic", "--noinput", "-v0"], production(STATIC_ROOT=str(tmp_path / "static"))
    )

    assert result.returncode == 0, result.stderr
    assert (tmp_path / "static" / "staticfiles.json").exists()


@pytest.mark.parametrize("name", REQUIRED)
@pytest.mark.parametrize("how", ["unset", "empty"])
def test_production_refuses_to_start_without_each_required_variable(name, how):
    env = production()
    if how == "unset":
        del env[name]
    else:
        env[name] = "  "

    result = run(["manage.py", "check"], env)

    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert f"{name} is required when DJANGO_ENV=production" in result.stderr


def test_production_never_derives_an_encryption_key_from_the_secret_key():
    env = production()
    del env["FIELD_ENCRYPTION_KEY"]

    result = run(["-c", DUMP], env)

    assert result.returncode != 0
    assert "FIELD_ENCRYPTION_KEY is required" in result.stderr


def test_a_malformed_encryption_key_is_refused_without_being_printed():
    good = Fernet.generate_key().decode()
    result = run(["-c", DUMP], production(FIELD_ENCRYPTION_KEY=f"{good},not-a-fernet-key"))

    assert result.returncode != 0
    assert "FIELD_ENCRYPTION_KEY: key 2 is not a Fernet key" in result.stderr
    assert "not-a-fernet-key" not in result.stderr


def test_several_encryption_keys_are_read_in_order():
    first, second = Fernet.generate_key().decode(), Fernet.generate_key().decode()

    found = settings_of(production(FIELD_ENCRYPTION_KEY=f"{first}, {second}"))

    assert found["FIELD_ENCRYPTION_KEYS"] == [first, second]


def test_secrets_are_read_from_their_file_variants(tmp_path):
    first, second = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    files = {
        "DJANGO_SECRET_KEY": "file-secret-key-" + secrets.token_hex(20),
        "FIELD_ENCRYPTION_KEY": f"{first},{second}",
        "WHATSAPP_APP_SECRET": "file-app-secret",
    }
    env = production()
    for name, value in files.items():
        path = tmp_path / name.lower()
        path.write_text(value + "\n")  # as `echo value > file` leaves it
        env[f"{name}_FILE"] = str(path)
        env[name] = "the-variable-loses-to-the-file"

    found = settings_of(env)

    assert found["SECRET_KEY"] == files["DJANGO_SECRET_KEY"]
    assert found["FIELD_ENCRYPTION_KEYS"] == [first, second]
    assert found["WHATSAPP_APP_SECRET"] == "file-app-secret"


def test_a_file_variant_that_cannot_be_read_stops_the_process_naming_it(tmp_path):
    env = production()
    del env["WHATSAPP_APP_SECRET"]
    env["WHATSAPP_APP_SECRET_FILE"] = str(tmp_path / "missing")

    result = run(["-c", DUMP], env)

    assert result.returncode != 0
    assert "WHATSAPP_APP_SECRET_FILE names a file that cannot be read" in result.stderr


def test_a_secret_starting_with_a_dollar_is_taken_literally():
    # django-environ's env.str would look up a variable named after the rest of it.
    found = settings_of(production(DJANGO_SECRET_KEY="$" + secrets.token_urlsafe(50)))

    assert str(found["SECRET_KEY"]).startswith("$")


@pytest.mark.parametrize("environment", ["development", "test"])
def test_development_and_tests_start_with_no_secrets_set(environment):
    found = settings_of({"DJANGO_ENV": environment})

    # One Fernet key derived from the fixed development SECRET_KEY: a `make run` database stays readable.
    keys = found["FIELD_ENCRYPTION_KEYS"]
    assert isinstance(keys, list) and len(keys) == 1
    Fernet(keys[0])
    assert found["WHATSAPP_APP_SECRET"] == "sandbox-app-secret"
    assert "localhost" in list(found["ALLOWED_HOSTS"])  # type: ignore[call-overload]


def test_the_readme_lists_every_variable_the_settings_read_and_marks_the_required_ones():
    import re

    names = set(
        re.findall(r'(?:env\.\w+|secret)\(\s*"([A-Z][A-Z0-9_]+)"', (ROOT / "config/settings.py").read_text())
    )
    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("## Configuration") :]
    rows = {
        match.group(1): line
        for line in table.splitlines()
        if (match := re.match(r"\| `([A-Z][A-Z0-9_]+)`", line))
    }
    listed = set(re.findall(r"`([A-Z][A-Z0-9_]+)`", "\n".join(line.split("|")[1] for line in rows.values())))
    assert sorted(names - listed) == [], (
        "read by config/settings.py, missing from README's configuration table"
    )
    required = {name for name, line in rows.items() if line.rstrip().endswith("| **yes** |")}
    assert required == set(REQUIRED)
