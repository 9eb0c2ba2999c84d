"""The Celery app. Configuration lives in settings (CELERY_*); beat's schedule lives here, in code."""

import os

from celery import Celery
from celery.schedules import crontab

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "trialsite.settings.development")

app = Celery("trialsite")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# Short periodic sweeps that claim rows with select_for_update(skip_locked=True) and fan out small tasks.
# Apps add their sweeps here (never long countdown/ETA tasks).
app.conf.beat_schedule = {
    "heartbeat": {"task": "trialsite.tasks.heartbeat", "schedule": crontab(minute="*")},
    # Reminders due, instances whose window closed (missed), missed-in-a-row coordinator tasks.
    "reminders-sweep": {
        "task": "surveys.reminders.sweep",
        "schedule": crontab(minute="*"),
        "options": {"expires": 55},  # a sweep that waited a whole minute is superseded by the next one
    },
    # Safety alerts nobody acknowledged in time → trial managers.
    "safety-escalation-sweep": {
        "task": "participants.tasks.safety_alerts_escalate_due",
        "schedule": crontab(minute="*"),
        "options": {"expires": 55},
    },
    # End of study: participants whose schedule is complete become `completed` (on their local date).
    "end-of-study-sweep": {
        "task": "surveys.participants_complete_finished",
        "schedule": crontab(minute="*/10"),
        "options": {"expires": 500},
    },
    # Export jobs: reclaim a running job whose heartbeat went stale, re-publish a queued one whose message was lost.
    "export-jobs-sweep": {
        "task": "analytics.tasks.export_jobs_sweep",
        "schedule": crontab(minute="*"),
        "options": {"expires": 55},
    },
}
