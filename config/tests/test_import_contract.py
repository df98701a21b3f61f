"""The apps' one dependency direction (pyproject.toml's [tool.importlinter], run by `make lint`).

The contract is checked on the tree as it is, and on a small tree of empty packages with the same names
built from the same contract: an upward import (a new cycle between apps) breaks it, a downward one and
a test reaching across do not. No database: the linter reads source files only.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"

pytestmark = pytest.mark.skipif(not LINT_IMPORTS.exists(), reason="import-linter is a dev dependency")


def _contract() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]


def _lint(cwd: Path, *config: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--no-logo", *config],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(cwd)},
    )


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    """Empty packages named as the contract's root packages, plus `files` (path: source); the contract
    is the project's own, written to the temp tree's pyproject.toml."""
    contract = _contract()
    for package in contract["root_packages"]:
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
    for path, source in files.items():
        target = tmp_path / path
        target.parent.mkdir(parents=True, exist_ok=True)
        for parent in target.relative_to(tmp_path).parents:
            if str(parent) != "." and not (tmp_path / parent / "__init__.py").exists():
                (tmp_path / parent / "__init__.py").write_text("")
        target.write_text(source)
    lines = ["[tool.importlinter]", f"root_packages = {contract['root_packages']!r}"]
    for item in contract["contracts"]:
        lines.append("[[tool.importlinter.contracts]]")
        lines += [f"{key} = {value!r}" for key, value in item.items()]
    (tmp_path / "pyproject.toml").write_text("\n".join(lines).replace("'", '"') + "\n")
    return tmp_path


def test_the_layers_run_from_config_down_to_core():
    [contract] = _contract()["contracts"]
    assert contract["type"] == "layers"
    layers = [
        "benchmarks",
        "config",
        "onboarding",
        "campaigns | integrations",
        "waha",  # the WhatsApp-Web channel reuses the Cloud API channel's delivery, limiter and media checks
        "whatsapp | knowledge",
        "conversations",
        "crm",
        "tenants",
        "core",
    ]
    assert contract["layers"] == layers


def test_an_upward_import_breaks_the_contract(tmp_path):
    tree = _tree(
        tmp_path, {"crm/services.py": "from conversations import models\n", "conversations/models.py": ""}
    )
    result = _lint(tree)
    assert result.returncode != 0
    assert "crm is not allowed to import conversations" in result.stdout
    assert "crm.services -> conversations.models" in result.stdout


def test_an_app_importing_config_breaks_the_contract(tmp_path):
    tree = _tree(tmp_path, {"tenants/actors.py": "import config.settings\n", "config/settings.py": ""})
    result = _lint(tree)
    assert result.returncode != 0
    assert "tenants is not allowed to import config" in result.stdout


def test_a_cycle_through_a_third_app_is_caught_too(tmp_path):
    # core -> tenants is upward on its own; the linter names the chain.
    tree = _tree(
        tmp_path,
        {
            "core/audit.py": "import crm.models\n",
            "crm/models.py": "import tenants.models\n",
            "tenants/models.py": "",
        },
    )
    result = _lint(tree)
    assert result.returncode != 0
    assert "core is not allowed to import crm" in result.stdout


def test_downward_imports_and_tests_reaching_across_keep_it(tmp_path):
    tree = _tree(
        tmp_path,
        {
            "whatsapp/services.py": "import conversations.models\nimport crm.models\nimport core.errors\n",
            "conversations/models.py": "import crm.models\n",
            "crm/models.py": "import tenants.models\n",
            "tenants/models.py": "import core.errors\n",
            "core/errors.py": "",
            "config/urls.py": "import whatsapp.services\nimport onboarding.views\n",
            "onboarding/views.py": "import crm.models\n",
            # Tests and test helpers may reach any app: production never imports them.
            "crm/tests/test_pages.py": "import conversations.models\nimport config.urls\n",
            "whatsapp/testing.py": "import config.urls\n",
        },
    )
    result = _lint(tree)
    assert result.returncode == 0, result.stdout


def test_the_tree_keeps_the_contract():
    result = _lint(ROOT, "pyproject.toml")
    assert result.returncode == 0, result.stdout[result.stdout.find("Broken contracts") :]
