"""Thin Celery tasks of the analytics app."""

from celery import shared_task

from trialsite.audit import audit_context


@shared_task(name="analytics.tasks.export_job_run", acks_late=True, reject_on_worker_lost=True)
def export_job_run(job_id: int) -> str:
    from .models import ExportJob
    from .services import export_job_run as run

    job = ExportJob.objects.filter(pk=job_id).select_related("requested_by").first()
    if job is None:
        return "missing"
    with audit_context(user=job.requested_by, reason=f"export {job.uuid}"):
        job = run(job_id=job_id)
    return job.status if job else "missing"


@shared_task(name="analytics.tasks.export_jobs_sweep", acks_late=True, ignore_result=True)
def export_jobs_sweep() -> dict:
    """Beat: reclaim export jobs whose worker died, re-publish those whose message was lost."""
    from .services import export_jobs_sweep as sweep

    with audit_context(reason="export sweep"):
        return sweep()


@shared_task(name="analytics.tasks.completion_snapshots_refresh", ignore_result=True)
def completion_snapshots_refresh() -> dict:
    """Beat: recompute the stored completion by site and study week the dashboard reads."""
    from .completion_snapshots import completion_snapshots_refresh as refresh

    return refresh()
