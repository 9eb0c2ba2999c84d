"""Beat's heartbeat (read by the compose health check) moves only when a message reached the broker."""

import os
import uuid
from datetime import timedelta

import pytest
import redis
from celery import Celery
from celery.beat import ScheduleEntry, SchedulingError
from django.conf import settings

from trialsite.beat import HeartbeatScheduler
from trialsite.localstack import free_port


def probe_entry(app, queue: str) -> ScheduleEntry:
    return ScheduleEntry(
        name="probe", task="trialsite.tasks.heartbeat", schedule=timedelta(minutes=1), options={"queue": queue}, app=app
    )


def test_a_published_message_refreshes_the_heartbeat(tmp_path):
    from trialsite.celery import app

    queue = f"test-beat-{uuid.uuid4().hex[:12]}"  # nobody consumes it; deleted below
    scheduler = HeartbeatScheduler(app=app, schedule_filename=str(tmp_path / "schedule"), lazy=True)
    heartbeat = tmp_path / "schedule.heartbeat"
    heartbeat.touch()
    # File times are the file system's clock (what the compose health check compares with), not the test clock
    # (TRIALSITE_TEST_CLOCK moves time.time() in this process only): ages are measured against a file's own time.
    now = heartbeat.stat().st_mtime
    os.utime(heartbeat, (now - 600, now - 600))
    try:
        scheduler.apply_async(probe_entry(app, queue), advance=False)
        assert heartbeat.stat().st_mtime >= now  # 600 s old before the publish, fresh after it
        assert redis.Redis.from_url(settings.CELERY_BROKER_URL).llen(queue) == 1
    finally:
        redis.Redis.from_url(settings.CELERY_BROKER_URL).delete(queue)


@pytest.mark.timeout(60)
def test_an_unreachable_broker_leaves_the_heartbeat_alone(tmp_path):
    app = Celery("probe", broker=f"redis://127.0.0.1:{free_port()}/0", set_as_current=False)
    app.conf.broker_connection_timeout = 1
    scheduler = HeartbeatScheduler(app=app, schedule_filename=str(tmp_path / "schedule"), lazy=True)
    with pytest.raises(SchedulingError):
        scheduler.apply_async(probe_entry(app, "celery"), advance=False)
    assert not (tmp_path / "schedule.heartbeat").exists()
    # Nor does a start without a broker count as a heartbeat.
    scheduler.setup_schedule()
    assert not (tmp_path / "schedule.heartbeat").exists()
