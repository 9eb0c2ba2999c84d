"""The production shape really starts: docker-compose.yml's own commands and health checks, run here under
`trialsite.settings.production` against the test session's real PostgreSQL and Redis.

Each command is taken from docker-compose.yml; only what cannot be the same outside a container is changed
(the port gunicorn binds, 127.0.0.1 instead of 0.0.0.0; the /data volume becomes a temporary directory;
`python`/`celery` become this interpreter). Every wait is bounded and waits for a positive signal.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
import yaml
from cryptography.fernet import Fernet
from django.conf import settings

from trialsite.localstack import free_port

pytestmark = [pytest.mark.timeout(240)]

ROOT = Path(settings.BASE_DIR)
# The processes started here use their own Redis database, so beat's messages reach only the worker started
# here (never another test's worker) and are dropped afterwards.
BROKER_DB = 9


def compose_services() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]


def healthcheck(service: str) -> list[str]:
    """The service's health-check command as docker runs it (CMD → argv, CMD-SHELL → sh -c)."""
    test = compose_services()[service]["healthcheck"]["test"]
    kind, *rest = test
    if kind == "CMD":
        return list(rest)
    assert kind == "CMD-SHELL", test
    # Compose turns $$ into a literal $ for the shell in the container.
    return ["sh", "-c", rest[0].replace("$$", "$")]


def run_healthcheck(argv: list[str], env: dict, timeout: float = 20) -> subprocess.CompletedProcess:
    if argv[0] == "python":
        argv = [sys.executable, *argv[1:]]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout, cwd=ROOT)


@pytest.fixture
def prod_env(worker_env, tmp_path):
    base = os.environ["REDIS_URL"].rsplit("/", 1)[0]
    env = dict(worker_env)
    env.update(
        DJANGO_SETTINGS_MODULE="trialsite.settings.production",
        DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
        DJANGO_ALLOWED_HOSTS="trial.example.org",
        FIELD_ENCRYPTION_KEY=Fernet.generate_key().decode(),
        # participant app / reminder providers: e-mail only (SMS and push would need a configured provider)
        PUBLIC_BASE_URL="https://trial.example.org",
        REMINDER_CHANNELS="email",
        REDIS_URL=f"{base}/{BROKER_DB}",
        STATIC_ROOT=str(tmp_path / "static"),
        MEDIA_ROOT=str(tmp_path / "media"),
        EXPORT_ROOT=str(tmp_path / "exports"),
        EMAIL_HOST="127.0.0.1",
        EMAIL_PORT=str(free_port()),
        HOSTNAME=socket.gethostname(),
        PYTHONUNBUFFERED="1",
    )
    yield env
    redis.Redis.from_url(env["REDIS_URL"]).flushdb()


@pytest.fixture
def processes():
    started: list[subprocess.Popen] = []

    def start(argv: list[str], env: dict) -> subprocess.Popen:
        proc = subprocess.Popen(
            argv, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
        )
        started.append(proc)
        return proc

    yield start
    for proc in started:
        stop(proc)


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def wait_for(predicate, *, timeout: float, what: str, proc: subprocess.Popen | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"{what}: the process exited ({proc.returncode}): {proc.stderr.read()[-3000:]!r}")
        time.sleep(0.2)
    raise AssertionError(f"{what}: not within {timeout} s")


def http_get(port: int, path: str, host: str) -> tuple[int, bytes] | None:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("GET", path, headers={"Host": host})
        response = conn.getresponse()
        return response.status, response.read()
    except OSError:
        return None


def gunicorn_argv(port: int) -> list[str]:
    """The gunicorn part of the compose web command, bound to 127.0.0.1:port with two workers."""
    command = compose_services()["web"]["command"]
    assert command[:2] == ["sh", "-c"]
    segment = next(s for s in command[2].split("&&") if s.strip().startswith("gunicorn"))
    argv = shlex.split(segment)
    assert argv[argv.index("--bind") + 1] == "0.0.0.0:8000"
    argv[argv.index("--bind") + 1] = f"127.0.0.1:{port}"
    argv[argv.index("--workers") + 1] = "2"
    return [sys.executable, "-m", *argv]


def test_migrate_service_runs_under_production_settings(prod_env):
    command = compose_services()["migrate"]["command"]
    assert command[0] == "python"
    done = subprocess.run(
        [sys.executable, *command[1:]], env=prod_env, cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "No migrations to apply" in done.stdout


def test_web_starts_under_production_settings_and_its_healthcheck_passes(prod_env, processes):
    port, broken_port = free_port(), free_port()
    web = processes(gunicorn_argv(port), prod_env)
    # A second server whose broker is unreachable: the same health check must fail on it (503).
    broken_env = {**prod_env, "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}
    broken = processes(gunicorn_argv(broken_port), broken_env)
    wait_for(lambda: http_get(port, "/health", "trial.example.org"), timeout=90, what="gunicorn", proc=web)
    wait_for(lambda: http_get(broken_port, "/health", "trial.example.org"), timeout=90, what="gunicorn", proc=broken)

    check = healthcheck("web")
    assert "http://127.0.0.1:8000/health" in check[-1]
    healthy = run_healthcheck([*check[:-1], check[-1].replace("127.0.0.1:8000", f"127.0.0.1:{port}")], prod_env)
    assert healthy.returncode == 0, healthy.stderr
    status, body = http_get(port, "/health", "127.0.0.1")
    assert (status, body) == (200, b'{"database": "ok", "broker": "ok"}')

    unhealthy = run_healthcheck(
        [*check[:-1], check[-1].replace("127.0.0.1:8000", f"127.0.0.1:{broken_port}")], prod_env
    )
    assert unhealthy.returncode != 0
    status, body = http_get(broken_port, "/health", "127.0.0.1")
    assert status == 503 and b'"broker": "down' in body

    # Only /health is answered by address: everything else still needs an allowed host.
    assert http_get(port, "/admin/login/", "127.0.0.1")[0] == 400
    assert http_get(port, "/health/", "127.0.0.1")[0] == 400
    assert http_get(port, "/api/v1/me", "evil.example.com")[0] == 400
    # An allowed host over plain HTTP is sent to HTTPS (SECURE_SSL_REDIRECT); /health is exempt.
    status, _ = http_get(port, "/admin/login/", "trial.example.org")
    assert status == 301

    stop(web)
    assert run_healthcheck([*check[:-1], check[-1].replace("127.0.0.1:8000", f"127.0.0.1:{port}")], prod_env).returncode


@pytest.mark.parametrize("service", ["worker", "worker-exports"])
def test_worker_starts_under_production_settings_and_its_healthcheck_passes(prod_env, processes, service):
    command = compose_services()[service]["command"]
    assert command[:4] == ["celery", "-A", "trialsite", "worker"]
    argv = [sys.executable, "-m", *command]
    argv[argv.index("--concurrency") + 1] = "1"
    worker = processes([*argv, "--without-mingle", "--without-gossip"], prod_env)

    check = healthcheck(service)
    assert check[2].startswith("celery ")
    check[2] = f"{shlex.quote(sys.executable)} -m {check[2]}"
    wait_for(lambda: run_healthcheck(check, prod_env).returncode == 0, timeout=90, what="worker ping", proc=worker)
    stop(worker)
    assert run_healthcheck(check, prod_env).returncode != 0


def test_beat_starts_under_production_settings_and_its_healthcheck_reads_a_live_heartbeat(
    prod_env, processes, tmp_path
):
    data = tmp_path / "data"
    data.mkdir()
    command = compose_services()["beat"]["command"]
    assert command[:4] == ["celery", "-A", "trialsite", "beat"]
    assert "/data/celerybeat-schedule" in command
    argv = [sys.executable, "-m", *(part.replace("/data/", f"{data}/") for part in command)]
    beat = processes(argv, prod_env)

    check = [part.replace("/data/", f"{data}/") for part in healthcheck("beat")]
    assert check != healthcheck("beat")
    heartbeat = data / "celerybeat-schedule.heartbeat"
    wait_for(heartbeat.exists, timeout=90, what="beat heartbeat", proc=beat)
    assert run_healthcheck(check, prod_env).returncode == 0
    # A beat that stopped publishing: its heartbeat ages, and the check fails once it is three minutes old.
    stop(beat)
    # 181 s older than it was on the real clock (file times, and the check's own time.time(); TRIALSITE_TEST_CLOCK
    # moves only the test processes' clock).
    old = heartbeat.stat().st_mtime - 181
    os.utime(heartbeat, (old, old))
    assert run_healthcheck(check, prod_env).returncode != 0
    heartbeat.unlink()
    assert run_healthcheck(check, prod_env).returncode != 0


@pytest.mark.django_db(transaction=True)
def test_demo_refuses_to_run_under_production_settings(prod_env):
    from django.contrib.auth import get_user_model

    done = subprocess.run(
        [sys.executable, "manage.py", "demo"], env=prod_env, cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode != 0
    assert "refuses to run under production settings" in done.stderr
    assert not get_user_model().objects.exists()
