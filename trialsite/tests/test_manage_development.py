"""`python manage.py …` in a second terminal next to `make run`: with DATABASE_URL and REDIS_URL unset it finds
the running stack's servers through the stack file `make run` writes (.local/stack.json)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from trialsite import localstack

ROOT = Path(settings.BASE_DIR)

pytestmark = pytest.mark.timeout(120)


def dev_env(worker_env, local_dir: Path) -> dict:
    env = {k: v for k, v in worker_env.items() if k not in ("DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE")}
    env["TRIALSITE_LOCAL_DIR"] = str(local_dir)
    return env


def manage(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=90
    )


def test_manage_py_without_urls_uses_the_running_make_run(worker_env, tmp_path, monkeypatch):
    monkeypatch.setenv("TRIALSITE_LOCAL_DIR", str(tmp_path))
    # What `make run` (trialsite.devrun) writes: this session's servers, owned by a live process (this one).
    path = localstack.stack_write(
        database_url=worker_env["DATABASE_URL"], redis_url=os.environ["REDIS_URL"], pid=os.getpid()
    )
    assert path == tmp_path / "stack.json" and (path.stat().st_mode & 0o777) == 0o600
    env = dev_env(worker_env, tmp_path)

    checked = manage(env, "check", "--database", "default")
    assert checked.returncode == 0, checked.stderr
    assert "no issues" in checked.stdout

    probe = (
        "from django.db import connection; from django.core.cache import cache; from django.conf import settings; "
        "cache.set('manage-probe', 42); "
        "print(connection.settings_dict['NAME'], cache.get('manage-probe'), settings.CELERY_BROKER_URL)"
    )
    shell = manage(env, "shell", "--no-imports", "-c", probe)
    assert shell.returncode == 0, shell.stderr
    assert shell.stdout.split() == [connection.settings_dict["NAME"], "42", os.environ["REDIS_URL"]]

    # The same through make, for those who prefer it.
    made = subprocess.run(
        [
            "make",
            "-s",
            "manage",
            "ARGS=shell --no-imports -c \"from django.db import connection; print(connection.settings_dict['NAME'])\"",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert made.returncode == 0, made.stderr
    assert made.stdout.split()[-1] == connection.settings_dict["NAME"]


def test_a_stack_file_of_a_stopped_make_run_is_ignored(tmp_path, monkeypatch):
    monkeypatch.setenv("TRIALSITE_LOCAL_DIR", str(tmp_path))
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    localstack.stack_write(database_url="postgresql://x/y", redis_url="redis://127.0.0.1:1/0", pid=gone.pid)
    assert localstack.stack_read() is None
    (tmp_path / "stack.json").write_text("{not json")
    assert localstack.stack_read() is None
    localstack.stack_write(database_url="postgresql://x/y", redis_url="redis://127.0.0.1:1/0")
    assert localstack.stack_read()["DATABASE_URL"] == "postgresql://x/y"
    localstack.stack_remove(pid=gone.pid)  # not its file: kept
    assert (tmp_path / "stack.json").exists()
    localstack.stack_remove()
    assert not (tmp_path / "stack.json").exists()


def test_production_settings_never_read_the_stack_file(worker_env, tmp_path, monkeypatch):
    monkeypatch.setenv("TRIALSITE_LOCAL_DIR", str(tmp_path))
    localstack.stack_write(database_url=worker_env["DATABASE_URL"], redis_url=os.environ["REDIS_URL"])
    env = dev_env(worker_env, tmp_path) | {
        "DJANGO_SETTINGS_MODULE": "trialsite.settings.production",
        "DJANGO_SECRET_KEY": "x" * 60,
        "DJANGO_ALLOWED_HOSTS": "trial.example.org",
        "FIELD_ENCRYPTION_KEY": "ZGV2LW9ubHkta2V5LXRyaWFsc2l0ZS0wMDAwMDAwMDA=",
    }
    refused = manage(env, "check")
    assert refused.returncode != 0
    assert "DATABASE_URL is not set" in refused.stderr
