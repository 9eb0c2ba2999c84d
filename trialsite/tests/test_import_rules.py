"""The dependency rules, enforced on the source (every import statement, including those inside functions):

- the spine (`trialsite/`) imports no app: apps contribute through registries they fill in AppConfig.ready();
- the direction is analytics → surveys → participants → trialsite, never the reverse;
- no app imports another app's `api` or `admin` modules (shared API and admin material lives in the spine).

Tests and migrations are exempt (tests drive every app; migrations are generated).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
APPS = ("participants", "surveys", "analytics")
# What each package may import among the apps (the dependency direction).
ALLOWED = {
    "trialsite": set(),
    "participants": {"participants"},
    "surveys": {"surveys", "participants"},
    "analytics": {"analytics", "surveys", "participants"},
}


def modules(package: str) -> list[Path]:
    return sorted(
        path
        for path in (ROOT / package).rglob("*.py")
        if "tests" not in path.relative_to(ROOT).parts and "migrations" not in path.relative_to(ROOT).parts
    )


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in the file, and of import_module("...") calls."""
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts)
    if path.name != "__init__.py":
        package = package.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            found.append((node.lineno, name))
            # `from participants import admin` imports the module participants.admin
            found += [(node.lineno, f"{name}.{alias.name}") for alias in node.names]
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", getattr(node.func, "id", None)) == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            found.append((node.lineno, node.args[0].value))
    return found


def violations(package: str) -> list[str]:
    problems = []
    for path in modules(package):
        where = path.relative_to(ROOT)
        for line, name in imported_modules(path):
            parts = name.split(".")
            app = parts[0]
            if app not in APPS:
                continue
            if app not in ALLOWED[package]:
                problems.append(f"{where}:{line} imports {name} ({package} may not import {app})")
            elif app != package and len(parts) > 1 and parts[1] in ("api", "admin"):
                problems.append(f"{where}:{line} imports {name} (another app's {parts[1]} module)")
    return sorted(problems)


@pytest.mark.parametrize("package", ["trialsite", *APPS])
def test_imports_follow_the_dependency_rules(package):
    assert violations(package) == []


def test_the_checker_sees_forbidden_imports(tmp_path, monkeypatch):
    """The rules above catch what they claim to (so an empty list is a real result)."""
    fake = tmp_path / "trialsite"
    (fake / "sub").mkdir(parents=True)
    (fake / "sub" / "x.py").write_text(
        "import os\n"
        "def f():\n"
        "    from participants.models import Participant\n"
        "    import importlib\n"
        "    importlib.import_module('surveys.selectors')\n"
    )
    app = tmp_path / "analytics"
    app.mkdir()
    (app / "views.py").write_text("from participants.api.permissions import IsStaff\nfrom surveys import admin\n")
    (tmp_path / "participants").mkdir()
    (tmp_path / "participants" / "y.py").write_text("from surveys.selectors import baseline_status\nfrom . import m\n")
    monkeypatch.setitem(globals(), "ROOT", tmp_path)
    assert violations("trialsite") == [
        "trialsite/sub/x.py:3 imports participants.models (trialsite may not import participants)",
        "trialsite/sub/x.py:3 imports participants.models.Participant (trialsite may not import participants)",
        "trialsite/sub/x.py:5 imports surveys.selectors (trialsite may not import surveys)",
    ]
    assert violations("analytics") == [
        "analytics/views.py:1 imports participants.api.permissions (another app's api module)",
        "analytics/views.py:1 imports participants.api.permissions.IsStaff (another app's api module)",
        "analytics/views.py:2 imports surveys.admin (another app's admin module)",
    ]
    assert violations("participants") == [
        "participants/y.py:1 imports surveys.selectors (participants may not import surveys)",
        "participants/y.py:1 imports surveys.selectors.baseline_status (participants may not import surveys)",
    ]
