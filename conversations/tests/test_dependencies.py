"""conversations sits below the channel apps: it imports none of them, and its modules import at the top
(no function-local import dodging a cycle). The import-linter contract in `make lint` checks the app
graph; this reads conversations' own source, so a regression names the file and line."""

from __future__ import annotations

import ast
from pathlib import Path

import conversations

ROOT = Path(conversations.__file__).parent
CHANNEL_APPS = ("whatsapp", "waha")


def _modules() -> list[Path]:
    return [
        path
        for path in sorted(ROOT.rglob("*.py"))
        if "tests" not in path.relative_to(ROOT).parts and "migrations" not in path.relative_to(ROOT).parts
    ]


def _imported(node: ast.AST) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
        return [node.module]
    return []


def test_conversations_imports_no_channel_app() -> None:
    found = [
        f"{path.relative_to(ROOT.parent)}:{node.lineno} imports {name}"
        for path in _modules()
        for node in ast.walk(ast.parse(path.read_text()))
        for name in _imported(node)
        if name.split(".")[0] in CHANNEL_APPS
    ]
    assert found == []


def test_conversations_has_no_function_local_imports() -> None:
    found = []
    for path in _modules():
        for function in ast.walk(ast.parse(path.read_text())):
            if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            if path.name == "apps.py" and function.name == "ready":
                continue  # AppConfig.ready() runs once the models are loaded: Django's place for wiring
            found += [
                f"{path.relative_to(ROOT.parent)}:{node.lineno}"
                for node in ast.walk(function)
                if isinstance(node, ast.Import | ast.ImportFrom)
            ]
    assert found == []


def test_the_checks_see_the_modules_they_read() -> None:
    names = {path.name for path in _modules()}
    assert {"channels.py", "models.py", "views.py", "api.py", "reply.py"} <= names
