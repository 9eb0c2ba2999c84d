"""The Celery app. Configuration lives in settings (CELERY_*); beat's schedule lives here, in code."""

import os
from datetime import timedelta

from celery import Celery
from celery.schedules import crontab
from celery.signals import celeryd_init, import_modules

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "trialsite.settings.development")

app = Celery("trialsite")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# outbox: TRIALSITE_SWEEP_SECONDS (e.g. 1 in the fault tests) runs the sweeps every N seconds instead of every minute.
_SWEEP_SECONDS = float(os.environ.get("TRIALSITE_SWEEP_SECONDS") or 0)
SWEEP_SCHEDULE = timedelta(seconds=_SWEEP_SECONDS) if _SWEEP_SECONDS > 0 else crontab(minute="*")

# Short periodic sweeps that claim rows with select_for_update(skip_locked=True) and fan out small tasks
# (never long countdown/ETA tasks). The spine's own are here; the apps register theirs in AppConfig.ready()
# (trialsite.beat.register_periodic), merged in below once Django is set up.
app.conf.beat_schedule = {
    "heartbeat": {"task": "trialsite.tasks.heartbeat", "schedule": SWEEP_SCHEDULE},
    # outbox: e-mails and other effects recorded with their change and not yet delivered (trialsite.outbox).
    "outbox-sweep": {"task": "trialsite.outbox.sweep", "schedule": SWEEP_SCHEDULE, "options": {"expires": 55}},
}


# Celery's Django fixup connected first (when the app was created), so Django is set up by the time this runs:
# in beat and workers, before the scheduler reads the schedule.
@import_modules.connect(sender=app)
def _apps_beat_schedule(**_kwargs) -> None:
    from .beat import app_schedule

    app.conf.beat_schedule = {**app.conf.beat_schedule, **app_schedule()}


# outbox: a worker waits out a hanging Redis instead of timing out mid-protocol. With the web's 2 s read timeout a
# worker whose ack timed out during a hang stopped consuming for good (seen in surveys/tests/test_faults.py), so
# worker processes read without a timeout (TCP keepalive still detects a dead peer; a restarted Redis resets the
# connection and the worker reconnects). Connecting stays bounded. CELERY_WORKER_BROKER_SOCKET_TIMEOUT overrides.
@celeryd_init.connect
def _worker_broker_timeouts(conf=None, **_kwargs) -> None:
    timeout = os.environ.get("CELERY_WORKER_BROKER_SOCKET_TIMEOUT")
    options = dict(conf.broker_transport_options or {})
    options["socket_timeout"] = float(timeout) if timeout else None
    options["socket_keepalive"] = True
    conf.broker_transport_options = options
