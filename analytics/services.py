"""Writes of the analytics app: export jobs (requested, run in the background, recorded)."""

from __future__ import annotations

import contextlib
import logging

from celery import current_app
from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from trialsite import roles
from trialsite.models import Trial

from .export import FORMATS, write_bundle
from .models import ExportJob, ExportStatus

logger = logging.getLogger(__name__)


def export_check_allowed(*, user, blinded: bool, reason: str) -> str:
    """Statistician roles may export; unblinded needs the unblinded role and a reason. Returns the reason."""
    reason = (reason or "").strip()
    if not roles.has_role(user, *roles.STATISTICIAN_ROLES):
        raise PermissionDenied("Exports are for the statistician roles.")
    if not blinded:
        if not roles.is_unblinded(user):
            raise PermissionDenied("An unblinded export needs the unblinded_statistician role.")
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


@transaction.atomic
def export_job_create(*, trial: Trial, user, blinded: bool = True, formats=None, reason: str = "") -> ExportJob:
    """Record the request and enqueue the job after commit."""
    reason = export_check_allowed(user=user, blinded=blinded, reason=reason)
    job = ExportJob(trial=trial, requested_by=user, blinded=blinded, formats=_clean_formats(formats), reason=reason)
    job.full_clean()
    job.save()
    job_id = job.pk
    transaction.on_commit(lambda: current_app.send_task("analytics.tasks.export_job_run", kwargs={"job_id": job_id}))
    return job


def _set_progress(job_id: int, value: float) -> None:
    ExportJob.objects.filter(pk=job_id, status=ExportStatus.RUNNING).update(progress=round(min(max(value, 0), 1), 4))


def export_job_run(*, job_id: int) -> ExportJob | None:
    """Run a queued job once. A redelivered or duplicate task finds it running/done and does nothing."""
    with transaction.atomic():
        job = ExportJob.objects.select_for_update(skip_locked=True).filter(pk=job_id).first()
        if job is None or job.status != ExportStatus.QUEUED:
            return job
        job.status = ExportStatus.RUNNING
        job.started_at = timezone.now()
        job.save(update_fields=["status", "started_at"])
    path = settings.EXPORT_ROOT / f"{job.uuid}.zip"
    try:
        result = write_bundle(
            trial=job.trial,
            out=path,
            blinded=job.blinded,
            formats=job.formats,
            user=job.requested_by,
            reason=job.reason,
            export_id=str(job.uuid),
            progress=lambda v: _set_progress(job.pk, v),
        )
    except Exception as exc:  # noqa: BLE001 - the job records the failure; nothing is half-delivered
        logger.exception("export %s failed", job.uuid)
        with contextlib.suppress(OSError):
            path.unlink(missing_ok=True)
        ExportJob.objects.filter(pk=job.pk).update(
            status=ExportStatus.FAILED, finished_at=timezone.now(), error=str(exc)[:2000]
        )
        job.refresh_from_db()
        return job
    ExportJob.objects.filter(pk=job.pk).update(
        status=ExportStatus.DONE,
        progress=1.0,
        finished_at=timezone.now(),
        file_path=str(result.path),
        size_bytes=result.size_bytes,
        sha256=result.sha256,
        manifest=result.manifest,
    )
    job.refresh_from_db()
    return job
