"""Fixtures shared by every app's tests. The database and Redis are real (see trialsite.localstack)."""

from pathlib import Path

import pytest
from django.core.management import call_command

DEMO_PROTOCOL = Path(__file__).resolve().parent / "protocols" / "microdose-mood.yaml"


@pytest.fixture(autouse=True)
def _fresh_cache():
    """Each test starts with an empty cache (Redis db 1: throttle counters), so rate limits are per test."""
    from django.core.cache import cache

    cache.clear()
    yield


@pytest.fixture
def demo_protocol_source() -> str:
    return DEMO_PROTOCOL.read_text(encoding="utf-8")


@pytest.fixture
def trial(db):
    """The demo trial loaded from protocols/microdose-mood.yaml, with sites LDN and NYC."""
    from trialsite.models import Trial
    from trialsite.protocol.services import protocol_load_file
    from trialsite.services import site_create

    result = protocol_load_file(path=DEMO_PROTOCOL)
    site_create(code="LDN", name="London", timezone="Europe/London", trials=[result.trial])
    site_create(code="NYC", name="New York", timezone="America/New_York", trials=[result.trial])
    return Trial.objects.get(pk=result.trial.pk)


@pytest.fixture
def site_ldn(trial):
    from trialsite.models import Site

    return Site.objects.get(code="LDN")


@pytest.fixture
def site_nyc(trial):
    from trialsite.models import Site

    return Site.objects.get(code="NYC")


@pytest.fixture
def make_staff(db):
    """make_staff("coordinator", site=site) → a staff user holding that role."""
    from django.contrib.auth import get_user_model

    from trialsite.services import role_grant

    counter = {"n": 0}

    def make(*roles: str, site=None, username: str | None = None, password: str = "correct-horse-battery-9"):
        counter["n"] += 1
        User = get_user_model()
        user = User.objects.create_user(
            username or f"staff{counter['n']}", f"staff{counter['n']}@example.org", password, is_staff=True
        )
        for role in roles:
            role_grant(user=user, role=role, site=site)
        return user

    return make


@pytest.fixture
def api_client():
    from rest_framework.test import APIClient

    return APIClient()


@pytest.fixture
def call():
    """Run a management command, return its stdout."""
    import io

    def run(*args, **kwargs):
        out = io.StringIO()
        call_command(*args, stdout=out, **kwargs)
        return out.getvalue()

    return run


@pytest.fixture
def worker_env(transactional_db):
    """Environment for a subprocess (Celery worker, gunicorn) that must see this test's database."""
    import os

    from django.db import connection

    env = dict(os.environ)
    env["DJANGO_SETTINGS_MODULE"] = "trialsite.settings.test"
    settings_dict = connection.settings_dict
    host = settings_dict["HOST"] or ""
    from urllib.parse import quote

    env["DATABASE_URL"] = (
        f"postgresql://{settings_dict['USER']}:{quote(settings_dict['PASSWORD'] or '')}@{quote(host, safe='')}"
        f"{':' + str(settings_dict['PORT']) if settings_dict['PORT'] else ''}/{settings_dict['NAME']}"
    )
    env["DB_CONN_MAX_AGE"] = "0"
    return env


@pytest.fixture
def celery_worker_process(worker_env):
    """Start a real Celery worker (separate process, real Redis) on a private queue; yields (queue, start, stop).

    The queue name is unique per test, so concurrent test runs sharing one Redis never steal each other's
    messages. Tasks must be sent with `queue=queue`.
    """
    import subprocess
    import sys
    import uuid

    queue = f"test-{uuid.uuid4().hex[:12]}"
    procs: list[subprocess.Popen] = []

    def start(concurrency: int = 1, pool: str = "prefork") -> subprocess.Popen:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "trialsite",
                "worker",
                "-Q",
                queue,
                "--pool",
                pool,
                "--concurrency",
                str(concurrency),
                "--loglevel",
                "WARNING",
                "--without-heartbeat",
                "--without-mingle",
                "--without-gossip",
                "-n",
                f"{queue}-{len(procs)}@%h",
            ],
            env=worker_env,
            start_new_session=True,
        )
        procs.append(proc)
        return proc

    def stop(proc: subprocess.Popen, sig=None) -> None:
        import signal

        if proc.poll() is None:
            proc.send_signal(sig or signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    yield queue, start, stop
    for proc in procs:
        stop(proc)
