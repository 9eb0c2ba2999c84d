"""Writes of the analytics app: export jobs (requested, run in the background, recorded).

An export job finishes under faults:
- `export_job_create` records the job (queued) and publishes its task after commit, best effort: a broker that
  is down never fails the request; the sweep re-publishes a job still queued after EXPORT_REQUEUE_AFTER.
- `export_job_run` claims the job under its row lock (queued, or running with a stale heartbeat): attempts + 1,
  and that attempt number is the run's lease. The run beats `heartbeat_at` (through a second connection, since
  the bundle is read in one read-only transaction) and stops if the lease was taken from it. It writes to a
  private part file and, under the row lock and only while it still holds the lease, renames it into place
  and marks the job done: two runs of one job never leave two bundles.
- `export_jobs_sweep` (beat, every minute) re-queues a running job whose heartbeat is older than
  EXPORT_HEARTBEAT_STALE_AFTER (its worker died) and fails it cleanly once EXPORT_MAX_ATTEMPTS runs were lost.
"""

from __future__ import annotations

import contextlib
import logging
import time
from datetime import datetime, timedelta
from pathlib import Path

from celery import current_app
from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import (
    DEFAULT_DB_ALIAS,
    DatabaseError,
    IntegrityError,
    InterfaceError,
    OperationalError,
    connection,
    connections,
    transaction,
)
from django.utils import timezone

from trialsite import policy
from trialsite.models import Trial

from .export import FORMATS, write_bundle
from .models import ExportJob, ExportOrigin, ExportStatus

logger = logging.getLogger(__name__)


def export_check_allowed(*, actor, trial: Trial, blinded: bool, reason: str) -> str:
    """The trial's statistician roles may export; unblinded needs the unblinded role in that trial and a reason
    (trialsite.policy). Returns the reason."""
    reason = (reason or "").strip()
    policy.require(actor, policy.EXPORT_BLINDED, trial)
    if not blinded:
        policy.require(actor, policy.EXPORT_UNBLINDED, trial)
        if len(reason) < 3:
            raise PermissionDenied("An unblinded export needs a reason.")
    return reason


def _clean_formats(formats) -> list[str]:
    formats = list(formats or ["csv"])
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise ValidationError(
            {"formats": [f"Unknown format(s): {', '.join(map(str, unknown))}; use {', '.join(FORMATS)}."]}
        )
    return [f for f in FORMATS if f in set(formats) | {"csv"}]


EXPORT_TASK = "analytics.tasks.export_job_run"
SWEEP_BATCH = 100


def _max_attempts() -> int:
    return int(getattr(settings, "EXPORT_MAX_ATTEMPTS", 3))


def _stale_after() -> timedelta:
    return timedelta(seconds=float(getattr(settings, "EXPORT_HEARTBEAT_STALE_AFTER", 300)))


def _requeue_after() -> timedelta:
    return timedelta(seconds=float(getattr(settings, "EXPORT_REQUEUE_AFTER", 120)))


def export_job_publish(*, job_id: int) -> bool:
    """Hand the job to the broker, best effort. Never raises: a lost or unsent message is re-published by the
    sweep (the job stays `queued` in the database, which is what counts)."""
    queue = getattr(settings, "EXPORT_QUEUE", None)
    try:
        current_app.send_task(
            EXPORT_TASK, kwargs={"job_id": job_id}, retry=False, **({"queue": queue} if queue else {})
        )
    except Exception:  # noqa: BLE001 - any broker failure: the sweep re-publishes
        logger.warning("export job %s: publishing failed; the sweep will re-publish it", job_id, exc_info=True)
        return False
    return True


def _publish_on_commit(job_id: int) -> None:
    transaction.on_commit(lambda: export_job_publish(job_id=job_id))


class ExportIdempotencyMismatch(Exception):
    """The requester used this Idempotency-Key for a different export request."""


def _export_replay(*, actor, key, trial: Trial, blinded: bool, formats: list[str], reason: str) -> ExportJob | None:
    """The requester's job of this key, if any; raises ExportIdempotencyMismatch when it asked for another export."""
    job = ExportJob.objects.filter(requested_by=actor, idempotency_key=key).first()
    if job is None:
        return None
    if (job.trial_id, job.blinded, list(job.formats), job.reason) != (trial.pk, blinded, formats, reason):
        raise ExportIdempotencyMismatch("This Idempotency-Key was used with a different export request.")
    return job


@transaction.atomic
def export_job_create(
    *,
    trial: Trial,
    actor,
    blinded: bool = True,
    formats=None,
    reason: str = "",
    idempotency_key=None,
    now: datetime | None = None,
) -> ExportJob:
    """Record the request and publish the job after commit (best effort; see the module docstring).

    With an `idempotency_key`, the requester's earlier job of that key is returned (nothing new recorded or
    published); a concurrent duplicate, on this or another web process, blocks on the unique index until the first
    commits and then answers with its job."""
    now = now or timezone.now()
    reason = export_check_allowed(actor=actor, trial=trial, blinded=blinded, reason=reason)
    formats = _clean_formats(formats)
    same = {"actor": actor, "key": idempotency_key, "trial": trial, "blinded": blinded, "formats": formats}
    if idempotency_key is not None:
        replay = _export_replay(**same, reason=reason)
        if replay is not None:
            return replay
    job = ExportJob(
        trial=trial,
        requested_by=actor,
        blinded=blinded,
        formats=formats,
        reason=reason,
        idempotency_key=idempotency_key,
        created_at=now,
        queued_at=now,
    )
    job.full_clean(validate_constraints=False)
    try:
        with transaction.atomic():
            job.save()
    except IntegrityError:
        replay = _export_replay(**same, reason=reason) if idempotency_key is not None else None
        if replay is None:
            raise
        return replay
    _publish_on_commit(job.pk)
    return job


class ExportLeaseLost(Exception):
    """This run's attempt is no longer the job's current one (reclaimed by the sweep or another run)."""


class _Heartbeat:
    """The progress callback of one run: records progress and heartbeat_at, and checks the lease.

    The bundle is read in a read-only transaction on the default connection, so beats go through a second,
    autocommit connection and are seen by the sweep at once. Inside a caller's transaction (tests) the job row
    is not visible to a second connection: beats are then written in that transaction, on the connection the bundle
    is read on (`shares_connection`), so write_bundle beats only between tables, never while a COPY streams on it.
    """

    def __init__(self, *, job: ExportJob, attempt: int):
        self.job = job
        self.attempt = attempt
        self.own = None if connection.in_atomic_block else connections.create_connection(DEFAULT_DB_ALIAS)
        self.shares_connection = self.own is None

    def __call__(self, value: float) -> None:
        sql = (
            f"UPDATE {ExportJob._meta.db_table} SET progress = %s, heartbeat_at = %s "  # noqa: S608 - table name
            "WHERE id = %s AND status = %s AND attempts = %s"
        )
        params = [round(min(max(value, 0), 1), 4), timezone.now(), self.job.pk, ExportStatus.RUNNING, self.attempt]
        with (self.own or connection).cursor() as cur:
            cur.execute(sql, params)
            beat = cur.rowcount
        if beat != 1:
            raise ExportLeaseLost(f"export {self.job.uuid}: attempt {self.attempt} lost its lease")
        _test_pause(self.job, self.attempt)

    def close(self) -> None:
        if self.own is not None:
            self.own.close()


def _test_pause(job: ExportJob, attempt: int) -> None:
    """Test hook (fault tests only; EXPORT_TEST_PAUSE_DIR is unset in every real deployment): after a beat,
    say so with `<uuid>.attempt-<n>.running` and wait while `<uuid>.hold` exists (bounded)."""
    pause_dir = getattr(settings, "EXPORT_TEST_PAUSE_DIR", None)
    if not pause_dir:
        return
    pause_dir = Path(pause_dir)
    (pause_dir / f"{job.uuid}.attempt-{attempt}.running").touch()
    deadline = time.monotonic() + 120
    while (pause_dir / f"{job.uuid}.hold").exists() and time.monotonic() < deadline:
        time.sleep(0.05)


def _fail(job: ExportJob, *, error: str, now: datetime) -> None:
    """Caller holds the row lock."""
    job.status = ExportStatus.FAILED
    job.finished_at = now
    job.error = error[:2000]
    job.save(update_fields=["status", "finished_at", "error"])


@transaction.atomic
def export_job_claim(*, job_id: int, now: datetime | None = None) -> ExportJob | None:
    """Take the job for one run: a queued job, or a running one whose heartbeat is stale (its worker died and
    this is the redelivered task). Returns the job with its new attempt number, or None when there is nothing
    to run (done, failed, missing, or running with a live heartbeat)."""
    now = now or timezone.now()
    job = ExportJob.objects.select_for_update().filter(pk=job_id).first()
    if job is None:
        return None
    stale = (
        job.status == ExportStatus.RUNNING and job.heartbeat_at is not None and job.heartbeat_at < now - _stale_after()
    )
    if job.status != ExportStatus.QUEUED and not stale:
        return None
    if job.origin == ExportOrigin.COMMAND:
        return None  # a shell export is run by its command only
    if job.attempts >= _max_attempts():
        _fail(job, error=f"{job.error}\ngave up after {job.attempts} attempts".strip(), now=now)
        return None
    job.status = ExportStatus.RUNNING
    job.attempts += 1
    job.started_at = now
    job.heartbeat_at = now
    job.progress = 0.0
    job.save(update_fields=["status", "attempts", "started_at", "heartbeat_at", "progress"])
    return job


def _bundle_path(job: ExportJob) -> Path:
    return Path(settings.EXPORT_ROOT) / f"{job.uuid}.zip"


def _part_path(job: ExportJob, attempt: int) -> Path:
    return Path(settings.EXPORT_ROOT) / f".{job.uuid}.attempt-{attempt}.part"


def _remove_leftovers(job: ExportJob) -> None:
    """Part files and temporary directories of this job's earlier (killed) attempts."""
    import shutil

    root = Path(settings.EXPORT_ROOT)
    if not root.is_dir():
        return
    for path in root.glob(f".{job.uuid}.attempt-*"):
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                path.unlink()


@transaction.atomic
def _finish(*, job_id: int, attempt: int, part: Path, result, now: datetime) -> ExportJob:
    job = ExportJob.objects.select_for_update().get(pk=job_id)
    if job.status != ExportStatus.RUNNING or job.attempts != attempt:
        with contextlib.suppress(OSError):
            part.unlink()
        return job
    final = _bundle_path(job)
    part.replace(final)  # atomic on one file system; a later attempt would write the same name
    job.status = ExportStatus.DONE
    job.progress = 1.0
    job.finished_at = now
    job.file_path = str(final)
    job.size_bytes = result.size_bytes
    job.sha256 = result.sha256
    job.manifest = result.manifest  # `error` keeps the notes of lost attempts, if any
    job.save(update_fields=["status", "progress", "finished_at", "file_path", "size_bytes", "sha256", "manifest"])
    return job


@transaction.atomic
def export_job_attempt_failed(
    *, job_id: int, attempt: int, error: str, transient: bool, now: datetime | None = None
) -> ExportJob:
    """Record a run that raised. A transient failure (the database went away) is queued again while attempts
    remain; anything else fails the job at once (the same input would fail the same way)."""
    now = now or timezone.now()
    job = ExportJob.objects.select_for_update().get(pk=job_id)
    if job.status != ExportStatus.RUNNING or job.attempts != attempt:
        return job
    if transient and job.attempts < _max_attempts():
        job.status = ExportStatus.QUEUED
        job.queued_at = now
        job.error = f"attempt {attempt}: {error}"[:2000]
        job.save(update_fields=["status", "queued_at", "error"])
        _publish_on_commit(job.pk)
    else:
        _fail(job, error=error, now=now)
    return job


def export_job_run(*, job_id: int, now: datetime | None = None) -> ExportJob | None:
    """Run the job once if it is due (see `export_job_claim`); a duplicate or redelivered task whose job is
    done, failed or running with a live heartbeat does nothing and returns the job as it is."""
    job = export_job_claim(job_id=job_id, now=now)
    if job is None:
        return ExportJob.objects.filter(pk=job_id).first()
    attempt = job.attempts
    _remove_leftovers(job)
    part = _part_path(job, attempt)
    beat = _Heartbeat(job=job, attempt=attempt)
    try:
        result = write_bundle(
            trial=job.trial,
            out=part,
            blinded=job.blinded,
            formats=job.formats,
            user=job.requested_by,
            reason=job.reason,
            export_id=str(job.uuid),
            progress=beat,
        )
    except ExportLeaseLost:
        logger.warning("export %s: attempt %s was reclaimed; abandoning it", job.uuid, attempt)
        with contextlib.suppress(OSError):
            part.unlink(missing_ok=True)
        return ExportJob.objects.filter(pk=job_id).first()
    except Exception as exc:  # noqa: BLE001 - the job records the failure; nothing is half-delivered
        logger.exception("export %s attempt %s failed", job.uuid, attempt)
        with contextlib.suppress(OSError):
            part.unlink(missing_ok=True)
        transient = isinstance(exc, OperationalError | InterfaceError)
        if transient:
            connection.close_if_unusable_or_obsolete()
        try:
            return export_job_attempt_failed(job_id=job_id, attempt=attempt, error=str(exc), transient=transient)
        except DatabaseError:
            logger.exception("export %s: recording the failure failed; the sweep will reclaim it", job.uuid)
            return None
    finally:
        beat.close()
    return _finish(job_id=job_id, attempt=attempt, part=part, result=result, now=timezone.now())


def export_jobs_sweep(*, now: datetime | None = None) -> dict:
    """Beat: re-queue running jobs whose heartbeat went stale (fail them after the last attempt) and re-publish
    queued jobs whose message was lost. Each batch is one short transaction; SKIP LOCKED lets two beats run."""
    now = now or timezone.now()
    reclaimed = failed = republished = 0
    with transaction.atomic():
        stale = list(
            ExportJob.objects.select_for_update(skip_locked=True)
            .filter(status=ExportStatus.RUNNING, heartbeat_at__lt=now - _stale_after())
            .order_by("heartbeat_at")[:SWEEP_BATCH]
        )
        for job in stale:
            lost = f"attempt {job.attempts}: no heartbeat since {job.heartbeat_at.isoformat()} (worker lost)"
            if job.origin == ExportOrigin.COMMAND or job.attempts >= _max_attempts():
                _fail(job, error=f"{lost}; gave up after {job.attempts} attempt(s)", now=now)
                failed += 1
                continue
            job.status = ExportStatus.QUEUED
            job.queued_at = now
            job.error = lost
            job.save(update_fields=["status", "queued_at", "error"])
            _publish_on_commit(job.pk)
            reclaimed += 1
    with transaction.atomic():
        lost_messages = list(
            ExportJob.objects.select_for_update(skip_locked=True)
            .filter(status=ExportStatus.QUEUED, queued_at__lt=now - _requeue_after())
            .order_by("queued_at")[:SWEEP_BATCH]
        )
        for job in lost_messages:
            job.queued_at = now  # next re-publish no sooner than EXPORT_REQUEUE_AFTER from now
            job.save(update_fields=["queued_at"])
            _publish_on_commit(job.pk)
            republished += 1
    return {"reclaimed": reclaimed, "failed": failed, "republished": republished}


@transaction.atomic
def export_job_start_local(*, trial: Trial, blinded: bool, formats: list[str], reason: str) -> ExportJob:
    """A shell export (`export_trial`): recorded like every other, running in the calling process."""
    now = timezone.now()
    job = ExportJob(
        trial=trial,
        blinded=blinded,
        formats=_clean_formats(formats),
        reason=reason,
        origin=ExportOrigin.COMMAND,
        status=ExportStatus.RUNNING,
        attempts=1,
        created_at=now,
        queued_at=now,
        started_at=now,
        heartbeat_at=now,
    )
    job.full_clean()
    job.save()
    return job


def export_job_run_local(*, job: ExportJob, out: str | Path):
    """Write a shell export's bundle to `out`, beating like a worker; on failure the job is marked failed."""
    beat = _Heartbeat(job=job, attempt=job.attempts)
    try:
        result = write_bundle(
            trial=job.trial,
            out=out,
            blinded=job.blinded,
            formats=job.formats,
            reason=job.reason,
            export_id=str(job.uuid),
            progress=beat,
        )
    except BaseException as exc:
        with transaction.atomic():
            locked = ExportJob.objects.select_for_update().get(pk=job.pk)
            if locked.status == ExportStatus.RUNNING:
                _fail(locked, error=str(exc) or type(exc).__name__, now=timezone.now())
        raise
    finally:
        beat.close()
    ExportJob.objects.filter(pk=job.pk, status=ExportStatus.RUNNING).update(
        status=ExportStatus.DONE,
        progress=1.0,
        finished_at=timezone.now(),
        file_path=str(result.path),
        size_bytes=result.size_bytes,
        sha256=result.sha256,
        manifest=result.manifest,
    )
    return result
