"""Reminders never wait behind exports: two real worker pools on two queues, the export pool flooded with long jobs.

The export queue and the default queue are private to the test (the production names are pinned in
trialsite/tests/test_compose.py); the routing is the production one: export runs go to settings.EXPORT_QUEUE.
"""

from __future__ import annotations

import time
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def wait_for(predicate, *, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.1)


@pytest.mark.timeout(300)
def test_a_due_reminder_leaves_while_the_export_pool_is_flooded_with_long_jobs(
    trial, site_ldn, make_staff, celery_worker_process, worker_env, settings, tmp_path
):
    from analytics.models import ExportJob
    from analytics.services import export_job_create
    from surveys.models import Reminder
    from surveys.tasks import reminders_sweep
    from surveys.tests.reminder_helpers import make_instance, make_participant

    default_queue, start, _stop = celery_worker_process
    export_queue = f"{default_queue}-exports"
    pause, maildir = tmp_path / "pause", tmp_path / "mail"
    pause.mkdir()
    maildir.mkdir()
    settings.EXPORT_QUEUE = export_queue
    settings.EXPORT_ROOT = tmp_path / "exports"
    worker_env.update(
        {
            "DJANGO_SETTINGS_MODULE": "trialsite.settings.development",  # file-based e-mail
            "EMAIL_FILE_PATH": str(maildir),
            "EXPORT_ROOT": str(tmp_path / "exports"),
            "EXPORT_TEST_PAUSE_DIR": str(pause),
        }
    )
    # The flood: more long export jobs than the export pool has processes; each holds until released.
    statistician = make_staff("statistician")
    jobs = [export_job_create(trial=trial, actor=statistician, formats=["csv"]) for _ in range(3)]
    for job in jobs:
        (pause / f"{job.uuid}.hold").touch()
    start(concurrency=1, queues=export_queue)
    wait_for(lambda: (pause / f"{jobs[0].uuid}.attempt-1.running").exists(), timeout=60, what="the first export")
    start(concurrency=1, queues=default_queue)

    # A reminder comes due now, for someone awake (quiet hours six hours away).
    local = timezone.now().astimezone(ZoneInfo("Europe/London"))
    quiet = ((local + timedelta(hours=6)).time().replace(microsecond=0), (local + timedelta(hours=6, minutes=1)).time())
    participant = make_participant(trial, site_ldn, email="ann@example.org", quiet=quiet)
    instance = make_instance(participant, opens_at=timezone.now() - timedelta(minutes=1), window=timedelta(hours=4))
    reminders_sweep(now=timezone.now(), queue=default_queue)
    reminder = Reminder.objects.get(instance=instance, stage="at_open")
    wait_for(lambda: Reminder.objects.get(pk=reminder.pk).status == "sent", timeout=30, what="the reminder e-mail")
    assert [p.read_text().count("To: ann@example.org") for p in maildir.iterdir()] == [1]

    # ...while every export is still held: the first running, the others queued behind it.
    states = dict(ExportJob.objects.filter(pk__in=[j.pk for j in jobs]).values_list("pk", "status"))
    assert states[jobs[0].pk] == "running"
    assert [states[j.pk] for j in jobs[1:]] == ["queued", "queued"]

    # Released, the exports complete in turn on their own pool.
    for job in jobs:
        (pause / f"{job.uuid}.hold").unlink()
    wait_for(
        lambda: set(ExportJob.objects.filter(pk__in=[j.pk for j in jobs]).values_list("status", flat=True)) == {"done"},
        timeout=90,
        what="the exports",
    )


@pytest.mark.timeout(300)
def test_two_export_workers_given_one_job_twice_run_it_once(
    trial, make_staff, celery_worker_process, worker_env, settings, tmp_path
):
    """Two workers against one database, the job's message delivered twice (a re-publish, a redelivery): the
    second delivery finds the job leased by a live run (or already done) and does nothing; one run, one bundle."""
    from analytics.models import ExportJob
    from analytics.services import export_job_create, export_job_publish
    from surveys.tests.reminder_helpers import queue_length

    queue, start, _stop = celery_worker_process
    pause, root = tmp_path / "pause", tmp_path / "exports"
    pause.mkdir()
    settings.EXPORT_QUEUE = queue
    settings.EXPORT_ROOT = root
    worker_env.update({"EXPORT_ROOT": str(root), "EXPORT_TEST_PAUSE_DIR": str(pause)})
    job = export_job_create(trial=trial, actor=make_staff("statistician"), formats=["csv"])
    hold = pause / f"{job.uuid}.hold"
    hold.touch()
    start(concurrency=1)
    wait_for(lambda: (pause / f"{job.uuid}.attempt-1.running").exists(), timeout=60, what="the first run")
    start(concurrency=1)
    assert export_job_publish(job_id=job.pk)  # the duplicate message, while the first run holds the lease
    wait_for(lambda: queue_length(queue) == 0, timeout=60, what="the second worker to take the duplicate")
    hold.unlink()
    wait_for(
        lambda: ExportJob.objects.filter(pk=job.pk, status__in=["done", "failed"]).exists(),
        timeout=90,
        what="the export",
    )
    job.refresh_from_db()
    assert (job.status, job.attempts) == ("done", 1), job.error
    assert sorted(p.name for p in root.iterdir()) == [f"{job.uuid}.zip"]
    assert not (pause / f"{job.uuid}.attempt-2.running").exists()
