"""The Makefile's venv: made and installed on a fresh clone, installed into again when the pins change, left alone
by a git worktree whose `.venv` is a symlink to a shared venv (new file times, the same pins).

`make` runs for real, with a stand-in `python3` (PYTHON=…) that records its calls and makes a stand-in venv."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent

FAKE_PYTHON = """#!/bin/sh
echo "python $*" >> "$MAKE_LOG"
if [ "$1" = "-c" ]; then exec "$REAL_PYTHON" "$@"; fi
if [ "$1" = "-m" ] && [ "$2" = "venv" ]; then mkdir -p "$3/bin"; cp "$0" "$3/bin/python"; cp "$FAKE_RUFF" "$3/bin/ruff"; fi
exit 0
"""
FAKE_RUFF = """#!/bin/sh
echo "ruff $*" >> "$MAKE_LOG"
"""


@pytest.fixture
def checkout(tmp_path):
    """checkout(name) → a directory with the repo's Makefile and requirement files; make(dir, *targets) → the calls."""
    log = tmp_path / "calls.log"
    python = tmp_path / "python3"
    python.write_text(FAKE_PYTHON)
    ruff = tmp_path / "ruff"
    ruff.write_text(FAKE_RUFF)
    python.chmod(0o755)
    ruff.chmod(0o755)
    env = {**os.environ, "MAKE_LOG": str(log), "REAL_PYTHON": sys.executable, "FAKE_RUFF": str(ruff)}
    env.pop("MAKEFLAGS", None)

    def new(name: str) -> Path:
        where = tmp_path / name
        where.mkdir()
        for file in ("Makefile", "requirements.txt", "requirements-dev.txt"):
            shutil.copy(ROOT / file, where / file)
        return where

    def make(where: Path, *targets: str) -> list[str]:
        log.write_text("")
        done = subprocess.run(
            ["make", "--no-print-directory", f"PYTHON={python}", *targets],
            cwd=where,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return [line for line in log.read_text().splitlines() if not line.startswith("python -c")]

    return new, make


def installs(calls: list[str]) -> list[str]:
    return [c for c in calls if "-m venv" in c or "pip install" in c]


def test_a_fresh_clone_gets_its_venv_and_the_pins_once(checkout):
    new, make = checkout
    fresh = new("fresh")
    calls = make(fresh, "lint")
    assert calls[0].startswith("python -m venv .venv")
    assert "python -m pip install --quiet -r requirements.txt -r requirements-dev.txt" in calls
    assert calls[-2:] == ["ruff check .", "ruff format --check ."]
    assert installs(make(fresh, "lint")) == []  # installed: nothing again


def test_changed_pins_are_installed_into_the_existing_venv(checkout):
    new, make = checkout
    clone = new("clone")
    make(clone, "lint")
    with open(clone / "requirements-dev.txt", "a") as fh:
        fh.write("example-package==1.0\n")
    assert installs(make(clone, "lint")) == [
        "python -m pip install --quiet -r requirements.txt -r requirements-dev.txt"
    ]
    assert installs(make(clone, "lint")) == []


def test_a_worktree_sharing_the_venv_through_a_symlink_leaves_it_alone(checkout):
    new, make = checkout
    main = new("main")
    make(main, "lint")
    worktree = new("worktree")
    (worktree / ".venv").symlink_to(main / ".venv")
    stamp = (main / ".venv" / ".installed").stat().st_mtime
    for file in ("requirements.txt", "requirements-dev.txt"):  # checked out after the venv was installed
        os.utime(worktree / file, (stamp + 3600, stamp + 3600))
    assert make(worktree, "lint") == ["ruff check .", "ruff format --check ."]
    assert make(worktree, "manage", "ARGS=check") == ["python manage.py check"]
    assert (worktree / ".venv").is_symlink()
    # Pins the worktree changed are installed into the shared venv, which is not re-created.
    with open(worktree / "requirements.txt", "a") as fh:
        fh.write("example-package==1.0\n")
    assert installs(make(worktree, "manage", "ARGS=check")) == [
        "python -m pip install --quiet -r requirements.txt -r requirements-dev.txt"
    ]
    assert (worktree / ".venv").is_symlink()
