"""PgBouncer in transaction-pooling mode in front of the embedded PostgreSQL: the phone API (gunicorn), a reminder
sweep and an export (a Celery worker) all run through it, with fewer server connections than clients.

Debian's pgbouncer (`make pgbouncer-deps`); missing, the test fails saying so unless SKIP_PGBOUNCER=1.
Web and worker run with DB_TRANSACTION_POOLING=1 (no server-side cursors) and persistent client connections, so
one client connection's successive transactions really land on different server connections.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import time
import uuid
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from django.db import connection
from django.utils import timezone

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

POOL_SIZE = 2


def wait_for(predicate, *, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.1)


def pgbouncer_binary() -> str:
    found = shutil.which("pgbouncer") or ("/usr/sbin/pgbouncer" if os.path.exists("/usr/sbin/pgbouncer") else None)
    if found:
        return found
    if os.environ.get("SKIP_PGBOUNCER") == "1":
        pytest.skip("SKIP_PGBOUNCER=1")
    pytest.fail("pgbouncer is missing: `make pgbouncer-deps` (as root: apt-get install -y pgbouncer)")


@pytest.fixture
def pgbouncer():
    """(port, admin(sql) → rows): a transaction-pooling PgBouncer in front of this test's database."""
    import tempfile
    from pathlib import Path

    from trialsite.localstack import free_port

    binary = pgbouncer_binary()
    s = connection.settings_dict
    name, user, host, pg_port = s["NAME"], s["USER"] or "postgres", s["HOST"], s["PORT"] or 5432
    port = free_port()
    # Not under pytest's tmp_path: as root, PgBouncer runs as another user, who must reach its files.
    workdir = Path(tempfile.mkdtemp(prefix="pgbouncer-"))
    (workdir / "pgbouncer.ini").write_text(
        f"[databases]\n{name} = host={host} port={pg_port} dbname={name} user={user}\n\n"
        "[pgbouncer]\n"
        f"listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n"
        "auth_type = any\n"
        f"admin_users = {user}\n"
        "pool_mode = transaction\n"
        f"default_pool_size = {POOL_SIZE}\nmin_pool_size = 0\nreserve_pool_size = 0\nmax_client_conn = 200\n"
        "ignore_startup_parameters = extra_float_digits,options\n"
        f"logfile = {workdir}/pgbouncer.log\npidfile = {workdir}/pgbouncer.pid\n"
    )
    argv = [binary, str(workdir / "pgbouncer.ini")]
    if os.geteuid() == 0:
        # PgBouncer refuses to run as root: run it as the owner of the database's socket directory.
        owner = pwd.getpwuid(os.stat(host).st_uid) if host and host.startswith("/") else pwd.getpwnam("nobody")
        os.chown(workdir, owner.pw_uid, owner.pw_gid)
        for path in workdir.iterdir():
            os.chown(path, owner.pw_uid, owner.pw_gid)
        argv[1:1] = ["-u", owner.pw_name]
    errors = open(workdir / "stderr.txt", "w")  # noqa: SIM115 - closed at teardown
    proc = subprocess.Popen(argv, start_new_session=True, stderr=errors, stdout=errors)

    def listening():
        if proc.poll() is not None:
            logs = [p.read_text() for p in (workdir / "pgbouncer.log", workdir / "stderr.txt") if p.exists()]
            raise AssertionError(f"pgbouncer exited: {' '.join(logs)}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return True
        except OSError:
            return False

    wait_for(listening, timeout=30, what="pgbouncer to listen")

    def admin(sql: str) -> list[dict]:
        import psycopg
        from psycopg.rows import dict_row

        with psycopg.connect(
            host="127.0.0.1",
            port=port,
            dbname="pgbouncer",
            user=user,
            autocommit=True,
            cursor_factory=psycopg.ClientCursor,
            row_factory=dict_row,
        ) as conn:
            return conn.execute(sql).fetchall()

    yield port, admin
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    errors.close()
    shutil.rmtree(workdir, ignore_errors=True)


@pytest.mark.timeout(300)
def test_phone_api_reminder_sweep_and_export_through_pgbouncer_in_transaction_mode(
    trial, site_ldn, make_staff, pgbouncer, worker_env, web_process, celery_worker_process, settings, tmp_path
):
    import requests

    from analytics.models import ExportJob
    from analytics.services import export_job_create
    from surveys.models import Reminder, Response
    from surveys.tests import factories, reminder_helpers
    from trialsite.celery import app

    port, admin = pgbouncer
    s = connection.settings_dict
    queue, start_worker, _stop = celery_worker_process
    maildir = tmp_path / "mail"
    maildir.mkdir()
    through_pgbouncer = {
        "DATABASE_URL": f"postgresql://{s['USER'] or 'postgres'}@127.0.0.1:{port}/{s['NAME']}",
        "DB_TRANSACTION_POOLING": "1",
        "DB_CONN_MAX_AGE": "60",  # one client connection carries many transactions
        "DJANGO_SETTINGS_MODULE": "trialsite.settings.development",  # file-based e-mail
        "EMAIL_FILE_PATH": str(maildir),
        "REMINDER_QUEUE": queue,
        "EXPORT_QUEUE": queue,
        "EXPORT_ROOT": str(tmp_path / "exports"),
    }
    settings.EXPORT_QUEUE = queue
    settings.EXPORT_ROOT = tmp_path / "exports"

    # The phone API through PgBouncer: a submission, its replay, and /me.
    phone, key = factories.make_participant(trial=trial, site=site_ldn)
    factories.sign_consent(phone, at=timezone.now() - timedelta(hours=1))
    instances = [
        factories.make_instance(phone, slug="daily-mood", opens_at=timezone.now() - timedelta(minutes=5))
        for _ in range(4)
    ]
    _web, base = web_process(env=through_pgbouncer)
    http = requests.Session()
    http.headers["Authorization"] = f"Bearer {key}"
    body = {
        "answers": {"mood": 60, "anxiety": 20, "energy": 55, "focus": 70, "dose_taken": True},
        "authored": timezone.now().isoformat(),
    }
    for instance in instances:
        idem = {"Idempotency-Key": str(uuid.uuid4())}
        first = http.post(f"{base}/api/v1/surveys/{instance.uuid}/response", json=body, headers=idem, timeout=30)
        assert first.status_code == 201, first.text
        again = http.post(f"{base}/api/v1/surveys/{instance.uuid}/response", json=body, headers=idem, timeout=30)
        assert (again.status_code, again.json()) == (200, first.json())
    me = http.get(f"{base}/api/v1/me", timeout=30)
    assert me.status_code == 200 and me.json()["study_id"] == phone.study_id
    assert Response.objects.filter(participant=phone).count() == 4

    # A reminder sweep and its send, in a worker through PgBouncer.
    local = timezone.now().astimezone(ZoneInfo("Europe/London"))
    awake = ((local + timedelta(hours=6)).time().replace(microsecond=0), (local + timedelta(hours=6, minutes=1)).time())
    ann = reminder_helpers.make_participant(trial, site_ldn, email="ann@example.org", quiet=awake)
    due = reminder_helpers.make_instance(ann, opens_at=timezone.now() - timedelta(minutes=1), window=timedelta(hours=4))
    start_worker(concurrency=2, env=through_pgbouncer)
    app.send_task("surveys.reminders.sweep", queue=queue)
    wait_for(
        lambda: Reminder.objects.filter(instance=due, stage="at_open", status="sent").exists(),
        timeout=60,
        what="the swept reminder to be sent",
    )
    assert [p.read_text().count("To: ann@example.org") for p in maildir.iterdir()] == [1]

    # An export (one REPEATABLE READ transaction of COPYs) in the same worker, through PgBouncer.
    job = export_job_create(trial=trial, actor=make_staff("statistician"), formats=["csv"])
    wait_for(
        lambda: ExportJob.objects.filter(pk=job.pk, status__in=["done", "failed"]).exists(),
        timeout=90,
        what="the export",
    )
    job.refresh_from_db()
    assert job.status == "done", job.error
    assert job.file_path and os.path.exists(job.file_path)

    # It really went through PgBouncer: its transactions counted there, over at most POOL_SIZE server connections.
    stats = {row["database"]: row for row in admin("SHOW STATS")}[s["NAME"]]
    pools = {row["database"]: row for row in admin("SHOW POOLS")}[s["NAME"]]
    assert stats["total_xact_count"] > 20
    assert (
        pools["sv_active"] + pools["sv_idle"] + pools["sv_used"] + pools["sv_tested"] + pools["sv_login"] <= POOL_SIZE
    )
