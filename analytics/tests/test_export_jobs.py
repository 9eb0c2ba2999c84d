"""Export jobs finish: claim with a lease (attempt number), heartbeat, the sweep's reclaim and re-publish,
attempts counted and a clean failure after the last, a publish that never raises, the shell command recorded."""

import json
import uuid
import zipfile
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.core.management import CommandError

from analytics.models import ExportJob, ExportOrigin

NOW = datetime(2026, 4, 20, 12, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def export_root(settings, tmp_path):
    settings.EXPORT_ROOT = tmp_path / "exports"
    settings.EXPORT_HEARTBEAT_STALE_AFTER = 300
    settings.EXPORT_REQUEUE_AFTER = 120
    settings.EXPORT_MAX_ATTEMPTS = 3
    return settings.EXPORT_ROOT


@pytest.fixture
def small_trial(trial):
    from analytics.simulation import simulate_trial

    simulate_trial(trial=trial, participants=6, days=12, seed=3, now=NOW)
    return trial


def _job(trial, **kw) -> ExportJob:
    return ExportJob.objects.create(trial=trial, formats=["csv"], created_at=NOW, queued_at=NOW, **kw)


def test_a_claim_is_a_lease_and_the_sweep_reclaims_a_dead_run(trial, django_capture_on_commit_callbacks):
    from analytics.services import ExportLeaseLost, _Heartbeat, export_job_claim, export_jobs_sweep

    job = _job(trial)
    first = export_job_claim(job_id=job.pk, now=NOW)
    assert (first.status, first.attempts, first.heartbeat_at) == ("running", 1, NOW)
    # A duplicate or redelivered task while the run is alive does nothing.
    assert export_job_claim(job_id=job.pk, now=NOW + timedelta(seconds=299)) is None
    # Its worker dies: no heartbeat. Before the heartbeat is stale the sweep leaves it alone...
    assert export_jobs_sweep(now=NOW + timedelta(seconds=299))["reclaimed"] == 0
    # ...after, it is queued again (and published after commit), the lost attempt recorded.
    with django_capture_on_commit_callbacks(execute=False) as published:
        assert export_jobs_sweep(now=NOW + timedelta(seconds=301)) == {"reclaimed": 1, "failed": 0, "republished": 0}
    assert len(published) == 1
    job.refresh_from_db()
    assert job.status == "queued" and job.attempts == 1 and "attempt 1: no heartbeat" in job.error
    second = export_job_claim(job_id=job.pk, now=NOW + timedelta(seconds=302))
    assert second.attempts == 2
    # The first run, if it was only stalled, has lost its lease: its next beat stops it. (Beats take the wall
    # clock: here just after the second claim, so that the comparison below holds whatever the date.)
    with time_machine.travel(NOW + timedelta(seconds=303), tick=True):
        with pytest.raises(ExportLeaseLost):
            _Heartbeat(job=first, attempt=1)(0.5)
        _Heartbeat(job=second, attempt=2)(0.5)
    job.refresh_from_db()
    assert job.progress == 0.5 and job.heartbeat_at > NOW


def test_the_last_lost_attempt_fails_the_job_cleanly(trial):
    from analytics.services import export_job_claim, export_jobs_sweep

    job = _job(trial)
    at = NOW
    for attempt in (1, 2, 3):
        assert export_job_claim(job_id=job.pk, now=at).attempts == attempt
        at += timedelta(seconds=301)
        result = export_jobs_sweep(now=at)
    assert result == {"reclaimed": 0, "failed": 1, "republished": 0}
    job.refresh_from_db()
    assert job.status == "failed" and job.attempts == 3 and job.finished_at == at
    assert "gave up after 3 attempt(s)" in job.error
    assert export_job_claim(job_id=job.pk, now=at) is None  # a late redelivery changes nothing


def test_the_redelivered_task_of_a_dead_worker_runs_and_leaves_one_bundle(small_trial, export_root):
    from analytics.services import export_job_claim, export_job_run

    job = _job(small_trial)
    export_job_claim(job_id=job.pk, now=NOW)
    # The dead attempt left a part file and a temporary directory behind.
    export_root.mkdir(parents=True)
    (export_root / f".{job.uuid}.attempt-1.part").write_bytes(b"PK half a zip")
    (export_root / f".{job.uuid}.attempt-1.part.tmp-x").mkdir()
    # Today's bug: the redelivered task returned early because the job said `running`. Now it takes over.
    done = export_job_run(job_id=job.pk, now=NOW + timedelta(seconds=301))
    assert (done.status, done.attempts, done.progress) == ("done", 2, 1.0)
    assert sorted(p.name for p in export_root.iterdir()) == [f"{job.uuid}.zip"]
    manifest = json.loads(zipfile.ZipFile(done.file_path).read("manifest.json"))
    assert manifest["export_id"] == str(job.uuid) and manifest["snapshot"]["pg_snapshot"]


def test_a_queued_job_whose_message_was_lost_is_published_again(trial, settings, django_capture_on_commit_callbacks):
    import redis

    from analytics.services import export_jobs_sweep

    settings.EXPORT_QUEUE = f"test-export-{uuid.uuid4().hex[:10]}"
    job = _job(trial)
    assert export_jobs_sweep(now=NOW + timedelta(seconds=119))["republished"] == 0
    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    try:
        # The test's transaction never commits: run the sweep's after-commit publishing explicitly.
        with django_capture_on_commit_callbacks(execute=True):
            assert export_jobs_sweep(now=NOW + timedelta(seconds=121))["republished"] == 1
        assert broker.llen(settings.EXPORT_QUEUE) == 1
        message = json.loads(broker.lindex(settings.EXPORT_QUEUE, 0))
        assert message["headers"]["task"] == "analytics.tasks.export_job_run"
        job.refresh_from_db()
        assert job.queued_at == NOW + timedelta(seconds=121)  # backoff: not again before EXPORT_REQUEUE_AFTER
        assert export_jobs_sweep(now=NOW + timedelta(seconds=200))["republished"] == 0
    finally:
        broker.delete(settings.EXPORT_QUEUE)
        broker.close()


def test_publishing_with_the_broker_down_never_fails_the_request(
    trial, make_staff, api_client, django_capture_on_commit_callbacks, caplog
):
    """A committed export request is a 202 even when the broker refuses connections; the job stays queued."""
    from celery import current_app

    from trialsite.api.auth import token_issue

    key, _ = token_issue(user=make_staff("statistician"), kind="staff", ttl=timedelta(hours=1))
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    # Point the app at a port nothing listens on, with fresh pools; the process's own pools are put back as
    # they were afterwards (closing them would close kombu's shared pool for the rest of the run).
    saved = (current_app.conf.broker_url, current_app._pool, current_app.amqp._producer_pool)
    current_app.conf.broker_url = "redis://127.0.0.1:9/0"  # the discard port
    current_app._pool = None
    current_app.amqp._producer_pool = None
    try:
        with django_capture_on_commit_callbacks(execute=True) as callbacks:
            resp = api_client.post("/api/v1/staff/exports", {"trial": trial.slug}, format="json")
        assert len(callbacks) == 1
    finally:
        current_app.conf.broker_url, current_app._pool, current_app.amqp._producer_pool = saved
    assert resp.status_code == 202, resp.content
    assert "publishing failed; the sweep will re-publish it" in caplog.text  # the broker really was down
    assert ExportJob.objects.get(uuid=resp.json()["id"]).status == "queued"


def test_export_trial_records_the_job_and_a_failure_is_failed_not_running(small_trial, tmp_path, call):
    out = call("export_trial", "--trial", small_trial.slug, "--out", str(tmp_path / "x.zip"))
    job = ExportJob.objects.get(origin=ExportOrigin.COMMAND)
    assert job.status == "done" and job.sha256 in out and job.manifest["snapshot"]
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(CommandError):
        call("export_trial", "--trial", small_trial.slug, "--out", str(blocker / "y.zip"))
    failed = ExportJob.objects.filter(origin=ExportOrigin.COMMAND).exclude(pk=job.pk).get()
    assert failed.status == "failed" and failed.error and failed.finished_at


def test_a_stale_shell_export_is_failed_by_the_sweep_never_run_by_a_worker(trial):
    from analytics.services import export_job_claim, export_job_start_local, export_jobs_sweep

    job = export_job_start_local(trial=trial, blinded=True, formats=["csv"], reason="shell")
    assert export_job_claim(job_id=job.pk, now=job.heartbeat_at + timedelta(hours=1)) is None
    assert export_jobs_sweep(now=job.heartbeat_at + timedelta(hours=1))["failed"] == 1
    job.refresh_from_db()
    assert job.status == "failed"


def test_running_needs_a_heartbeat_both_ways(trial):
    from django.core.exceptions import ValidationError
    from django.db import IntegrityError, transaction

    with pytest.raises(ValidationError):
        ExportJob(trial=trial, status="running").full_clean()
    with pytest.raises(IntegrityError), transaction.atomic():
        ExportJob.objects.create(trial=trial, status="running")
    with pytest.raises(IntegrityError), transaction.atomic():
        ExportJob.objects.create(trial=trial, origin="cron")
    ExportJob.objects.create(trial=trial, status="running", attempts=1, heartbeat_at=NOW)


def test_an_idempotency_key_names_one_job_of_its_requester(trial, make_staff, django_capture_on_commit_callbacks):
    from analytics.services import ExportIdempotencyMismatch, export_job_create

    statistician, colleague = make_staff("statistician"), make_staff("statistician")
    key = uuid.uuid4()
    with django_capture_on_commit_callbacks() as published:
        first = export_job_create(trial=trial, actor=statistician, formats=["csv"], idempotency_key=key)
        again = export_job_create(trial=trial, actor=statistician, formats=["csv"], idempotency_key=key)
        # The same key of another requester is another job (keys are the client's, per requester).
        theirs = export_job_create(trial=trial, actor=colleague, formats=["csv"], idempotency_key=key)
        # Without a key every request is a job of its own (the contract before keys).
        plain = [export_job_create(trial=trial, actor=statistician) for _ in range(2)]
    assert again.pk == first.pk and theirs.pk != first.pk and plain[0].pk != plain[1].pk
    assert len(published) == 4  # the replay published nothing
    assert ExportJob.objects.count() == 4
    with pytest.raises(ExportIdempotencyMismatch):
        export_job_create(trial=trial, actor=statistician, formats=["csv", "parquet"], idempotency_key=key)
    with pytest.raises(ExportIdempotencyMismatch):
        export_job_create(trial=trial, actor=statistician, blinded=True, reason="other", idempotency_key=key)
