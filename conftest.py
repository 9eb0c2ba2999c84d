"""Fixtures shared by every app's tests. The database and Redis are real (see trialsite.localstack)."""

import os
from pathlib import Path

import pytest
from django.core.management import call_command

from trialsite.tests import clock

DEMO_PROTOCOL = Path(__file__).resolve().parent / "protocols" / "microdose-mood.yaml"


def pytest_configure(config):
    clock.start()  # TRIALSITE_TEST_CLOCK (off unless set): the whole session at another instant


def pytest_report_header(config):
    if clock.offset() is not None:
        return f"{clock.CLOCK}: the session's clock started at {os.environ[clock.CLOCK]} (ticking)"
    return None


@pytest.fixture(autouse=True)
def _fresh_cache():
    """Each test starts with an empty cache (Redis db 1: throttle counters), so rate limits are per test."""
    from django.core.cache import cache

    cache.clear()
    yield


@pytest.fixture(autouse=True)
def _fresh_protocol_cache():
    """Each test starts with an empty parsed-protocol cache: a test that flushed (ids restart) leaves nothing behind
    (the cache also checks itself: trialsite.protocol.services.protocol_of_version)."""
    from trialsite.protocol.services import protocol_cache_clear

    protocol_cache_clear()


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
def make_staff(db, request):
    """make_staff("coordinator", site=site) → a staff user holding that role (trialsite/tests/factories.py), in
    the only trial (the demo one, loaded on first use when the test has none) unless `trial=` names one."""
    from trialsite.models import Trial
    from trialsite.tests.factories import STAFF_PASSWORD, StaffFactory

    def make(*roles: str, site=None, trial=None, username: str | None = None, password: str = STAFF_PASSWORD):
        if roles and trial is None and not Trial.objects.exists():
            request.getfixturevalue("trial")
        extra = {"username": username} if username else {}
        return StaffFactory(roles=roles, site=site, trial=trial, password=password, **extra)

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
    import os
    import subprocess
    import sys
    import uuid

    queue = f"test-{uuid.uuid4().hex[:12]}"
    procs: list[subprocess.Popen] = []

    def start(
        concurrency: int = 1, pool: str = "prefork", env: dict | None = None, queues: str | None = None
    ) -> subprocess.Popen:
        # `env` overrides (e.g. REDIS_URL of a private Redis, TEST_SMTP_PORT); `queues` replaces the private queue.
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "trialsite",
                "worker",
                "-Q",
                queues or queue,
                "--pool",
                pool,
                "--concurrency",
                str(concurrency),
                "--loglevel",
                os.environ.get("TEST_CELERY_LOGLEVEL", "WARNING"),
                "--without-heartbeat",
                "--without-mingle",
                "--without-gossip",
                "-n",
                f"{queue}-{len(procs)}@%h",
            ],
            env={**worker_env, **(env or {})},
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


# --- outbox: private servers and processes for the fault tests (`-m faults`) --------------------------------


def wait_for(predicate, *, timeout: float, interval: float = 0.1, what: str = "condition"):
    """Poll until predicate() is truthy (returns it) or fail after `timeout` seconds: a positive signal, no sleep."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


class SmtpSink:
    """A real SMTP server (aiosmtpd) on 127.0.0.1 that keeps what it receives; stop() and start() on the same port
    simulate a mail server outage."""

    def __init__(self) -> None:
        import threading

        from trialsite.localstack import free_port

        self.port = free_port()
        self.messages: list[tuple[list[str], str]] = []
        self._lock = threading.Lock()
        self._controller = None

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's handler protocol
        with self._lock:
            self.messages.append((list(envelope.rcpt_tos), envelope.content.decode("utf-8", "replace")))
        return "250 Message accepted for delivery"

    def start(self) -> None:
        from aiosmtpd.controller import Controller

        self._controller = Controller(self, hostname="127.0.0.1", port=self.port, ready_timeout=10)
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def received_by(self, address: str) -> list[str]:
        with self._lock:
            return [content for rcpts, content in self.messages if address in rcpts]


@pytest.fixture
def smtp_server():
    sink = SmtpSink()
    sink.start()
    yield sink
    sink.stop()


@pytest.fixture
def private_redis(tmp_path):
    """A private redis-server (trialsite.localstack.RedisProcess), restartable on its port; `hang()` SIGSTOPs it
    (connections are accepted by the kernel, nothing answers) and `resume()` SIGCONTs it."""
    import os
    import signal

    from trialsite.localstack import RedisProcess

    redis = RedisProcess(tmp_path / "redis")
    redis.start()
    redis.hang = lambda: os.kill(redis.proc.pid, signal.SIGSTOP)
    redis.resume = lambda: os.kill(redis.proc.pid, signal.SIGCONT)
    yield redis
    if redis.proc is not None and redis.proc.poll() is None:
        redis.resume()
    redis.stop()


@pytest.fixture
def celery_beat_process(worker_env, tmp_path):
    """start(env) → a real `celery beat` process (own schedule file); all are stopped at the end of the test."""
    import os
    import signal
    import subprocess
    import sys

    procs: list[subprocess.Popen] = []

    def start(env: dict | None = None) -> subprocess.Popen:
        n = len(procs)
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "trialsite",
                "beat",
                "--loglevel",
                os.environ.get("TEST_CELERY_LOGLEVEL", "WARNING"),
                "-s",
                str(tmp_path / f"beat-schedule-{n}"),
                "--pidfile",
                str(tmp_path / f"beat-{n}.pid"),
            ],
            env={**worker_env, **(env or {})},
            start_new_session=True,
        )
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture
def web_process(worker_env):
    """start(env, workers=1) → (gunicorn process, base URL): the real WSGI app in its own process on 127.0.0.1."""
    import signal
    import socket
    import subprocess
    import sys

    from trialsite.localstack import free_port

    procs: list[subprocess.Popen] = []

    def start(env: dict | None = None, workers: int = 1):
        port = free_port()
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "trialsite.wsgi:application",
                "--bind",
                f"127.0.0.1:{port}",
                "--workers",
                str(workers),
                "--timeout",
                "60",
                "--log-level",
                "warning",
            ],
            env={**worker_env, **(env or {})},
            start_new_session=True,
        )
        procs.append(proc)

        def up():
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    return True
            except OSError:
                return proc.poll() is not None  # exited: stop waiting, the caller's request fails loudly

        wait_for(up, timeout=30, what="gunicorn to listen")
        return proc, f"http://127.0.0.1:{port}"

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture
def fault_report(capsys):
    """fault_report(scenario, expected, delivered): the one-line figure, shown even without -s."""

    def report(scenario: str, *, expected: int, delivered: int, duplicated: int | None = None) -> str:
        dup = duplicated if duplicated is not None else max(0, delivered - expected)
        line = f"FAULT {scenario}: expected={expected} delivered={delivered} duplicated={dup}"
        with capsys.disabled():
            print(f"\n{line}", flush=True)
        return line

    return report


@pytest.fixture
def midday():
    """The clock pinned (ticking) to 12:00 UTC of today: for tests that place events hours or days before "now"
    through interfaces that read the clock themselves (the phone API), so that no result depends on the hour the
    suite runs at (an event "two hours ago" never falls on the day before a participant's local midnight). The
    database's own clock stays within 12 hours of it."""
    from datetime import UTC, datetime, time

    import time_machine

    noon = datetime.combine(datetime.now(UTC).date(), time(12), tzinfo=UTC)
    with time_machine.travel(noon, tick=True):
        yield noon
