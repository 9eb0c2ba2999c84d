"""Celery beat's scheduler with a heartbeat file, so a health check can tell a working beat from a stuck one.

The apps contribute their sweeps through `register_periodic` (see trialsite.celery).

`celery -A trialsite beat --scheduler trialsite.beat:HeartbeatScheduler --schedule /data/celerybeat-schedule`
touches `/data/celerybeat-schedule.heartbeat` once at start (after reaching the broker) and after every due
task it hands to the broker. The sweeps run every minute, so a healthy beat's heartbeat is never more than
about a minute old; the compose health check fails when it is older than three. A beat that cannot reach the
broker, or whose loop has stopped, stops touching it.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from celery.beat import PersistentScheduler
from django.core.exceptions import ImproperlyConfigured

logger = logging.getLogger(__name__)

# The apps' periodic sweeps, registered in their AppConfig.ready() (register_periodic); trialsite.celery merges
# them into beat's schedule once Django is set up. The spine's own entries (heartbeat, outbox) live there.
_periodic: dict[str, dict] = {}


def register_periodic(name: str, *, task: str, schedule, options: dict | None = None) -> None:
    """A periodic task of an app: a short sweep (claims rows with SKIP LOCKED, fans out small tasks)."""
    entry = {"task": task, "schedule": schedule}
    if options:
        entry["options"] = dict(options)
    _periodic[name] = entry


def app_schedule() -> dict[str, dict]:
    """The apps' entries of beat's schedule. Fails closed: none registered (apps not ready) raises, rather
    than a beat that runs without the reminder and safety sweeps."""
    if not _periodic:
        raise ImproperlyConfigured(
            "No app registered a periodic task (trialsite.beat.register_periodic in AppConfig.ready()): "
            "is Django set up?"
        )
    return {name: dict(entry) for name, entry in _periodic.items()}


HEARTBEAT_SUFFIX = ".heartbeat"


def heartbeat_path(schedule_filename: str) -> Path:
    return Path(str(schedule_filename) + HEARTBEAT_SUFFIX)


def touch(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a"):
        pass
    os.utime(path)


class HeartbeatScheduler(PersistentScheduler):
    """PersistentScheduler (the default) plus the heartbeat file next to the schedule file."""

    @property
    def heartbeat_path(self) -> Path:
        return heartbeat_path(self.schedule_filename)

    def setup_schedule(self):
        super().setup_schedule()
        try:
            with self.app.connection_for_write() as connection:
                connection.ensure_connection(max_retries=1, timeout=5)
        except Exception as exc:  # noqa: BLE001 - no heartbeat until a publish succeeds
            logger.warning("beat: broker not reachable at start (%s); no heartbeat yet", exc)
        else:
            touch(self.heartbeat_path)

    def apply_async(self, entry, producer=None, advance=True, **kwargs):
        # Raises SchedulingError when the broker refused the message: then no heartbeat.
        result = super().apply_async(entry, producer=producer, advance=advance, **kwargs)
        touch(self.heartbeat_path)
        return result
