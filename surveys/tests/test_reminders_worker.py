"""Reminders through real Celery worker processes and a real Redis: end to end, and the fault cases.

The sweep runs in the test process (it is what beat's task calls) with the test's private queue; the sends run
in separate worker processes that read the real clock, so instances here are placed around the real now.
"""

from __future__ import annotations

import json
import os
import signal
import time
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from participants.services import participant_withdraw
from surveys.models import Reminder, ReminderDelivery, Response
from surveys.tasks import reminders_sweep
from trialsite.celery import app
from trialsite.localstack import RedisProcess, free_port

from .reminder_helpers import make_instance, make_participant

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def wait_for(predicate, timeout: float = 60.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def awake(zone_name: str):
    """Quiet hours (a one-minute period six hours away) that cannot cover the real now of the test."""
    from zoneinfo import ZoneInfo

    local = timezone.now().astimezone(ZoneInfo(zone_name))
    return ((local + timedelta(hours=6)).time().replace(microsecond=0), (local + timedelta(hours=6, minutes=1)).time())


def all_mails(maildir: Path) -> list[str]:
    """Every e-mail the worker's file backend wrote. Django's file backend appends each message and a line of 79
    dashes to a file named by the second and the backend's id(), so two sends in one second may share a file."""
    texts = [f.read_text() for f in sorted(maildir.iterdir())] if maildir.exists() else []
    return [m for t in texts for m in t.split("\n" + "-" * 79 + "\n") if m.strip()]


def mails_to(maildir: Path, address: str) -> list[str]:
    """The e-mails the worker's file backend wrote for `address`."""
    return [m for m in all_mails(maildir) if f"To: {address}" in m]


def send_marker(trial, site, queue: str, maildir: Path, address: str) -> None:
    """A positive signal for the absence checks: a later reminder, published after everything under test and
    sent by the same single-process worker in queue order; once its e-mail is there, the worker has handled
    every earlier message, so what did not arrive by then was not sent."""
    marker = make_participant(trial, site, email=address, quiet=awake(site.timezone))
    make_instance(marker, opens_at=timezone.now() - timedelta(minutes=1))
    reminders_sweep(now=timezone.now(), queue=queue)
    wait_for(lambda: mails_to(maildir, address), what=f"the marker e-mail to {address}")
    participant_withdraw(  # no later stages
        participant=marker, scope="all", reason="marker", by_participant=True, actor=marker.user
    )


def unacked_older_than(queue: str, *, seconds: float) -> bool:
    """The broker (kombu's Redis transport) holds an unacknowledged message of `queue` delivered more than
    `seconds` ago: its `unacked` hash maps a delivery tag to [message, exchange, routing key], and its
    `unacked_index` sorted set scores each tag with the delivery time."""
    import redis

    broker = redis.Redis.from_url(app.conf.broker_url)
    for tag, payload in broker.hgetall("unacked").items():
        _message, _exchange, routing_key = json.loads(payload)
        delivered = broker.zscore("unacked_index", tag)
        if routing_key == queue and delivered is not None and time.time() - delivered > seconds:
            return True
    return False


def outbox_lines(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture
def rworker(celery_worker_process, worker_env, tmp_path):
    """(queue, start, stop, env, outbox dir, mail dir): a worker with file e-mail and a private outbox."""
    queue, start, stop = celery_worker_process
    outbox = tmp_path / "outbox"
    maildir = tmp_path / "mail"
    outbox.mkdir()
    maildir.mkdir()
    worker_env.update(
        {
            "DJANGO_SETTINGS_MODULE": "trialsite.settings.development",  # file-based e-mail
            "EMAIL_FILE_PATH": str(maildir),
            "REMINDER_OUTBOX_DIR": str(outbox),
            "REMINDER_RETRY_BACKOFF": "1",
        }
    )
    return queue, start, stop, worker_env, outbox, maildir


def test_end_to_end_one_email_per_stage_answer_stops_withdrawal_cancels(trial, site_ldn, rworker):
    queue, start, _stop, _env, _outbox, maildir = rworker
    start()
    now = timezone.now()
    p = make_participant(trial, site_ldn, email="ann@example.org", quiet=awake("Europe/London"))
    inst = make_instance(p, opens_at=now - timedelta(minutes=1), window=timedelta(hours=4))

    reminders_sweep(now=timezone.now(), queue=queue)
    reminder = Reminder.objects.get(instance=inst, stage="at_open")
    wait_for(lambda: Reminder.objects.get(pk=reminder.pk).status == "sent", what="the at_open e-mail")
    reminders_sweep(now=timezone.now(), queue=queue)  # the second sweep finds nothing new to send
    send_marker(trial, site_ldn, queue, maildir, "marker-1@example.org")
    assert len(all_mails(maildir)) == 2  # Ann's and the marker's: Ann was e-mailed once
    (text,) = mails_to(maildir, "ann@example.org")
    assert "To: ann@example.org" in text and f"<{reminder.uuid}@trialsite.reminders>" in text
    assert "Your study questionnaire is open" in text
    reminder.refresh_from_db()
    assert reminder.channel == "email" and reminder.provider_id == f"<{reminder.uuid}@trialsite.reminders>"

    # Answering stops the later stages.
    Response.objects.create(
        instance=inst,
        participant=p,
        instrument=inst.instrument,
        idempotency_key=uuid.uuid4(),
        request_hash="x",
        answers={},
        authored_at=timezone.now(),
        received_at=timezone.now(),
    )
    assert reminders_sweep(now=timezone.now() + timedelta(hours=2, minutes=1), queue=queue)["planned"] == 0

    # Withdrawal cancels a pending reminder before it is sent.
    q = make_participant(trial, site_ldn, email="bob@example.org", quiet=awake("Europe/London"))
    other = make_instance(q, opens_at=timezone.now() - timedelta(minutes=1))
    from surveys.reminders.services import reminders_plan_due

    reminders_plan_due(now=timezone.now())
    participant_withdraw(participant=q, scope="all", reason="no longer wishes", by_participant=True, actor=q.user)
    reminders_sweep(now=timezone.now(), queue=queue)
    pending = Reminder.objects.get(instance=other)
    assert pending.status == "cancelled"
    send_marker(trial, site_ldn, queue, maildir, "marker-2@example.org")
    assert mails_to(maildir, "bob@example.org") == [] and len(all_mails(maildir)) == 3
    assert not ReminderDelivery.objects.filter(reminder=pending).exists()


def test_worker_killed_mid_send_delivers_exactly_once(trial, site_ldn, rworker, tmp_path):
    queue, start, _stop, env, outbox, _maildir = rworker
    flag = tmp_path / "slow.flag"
    flag.touch()
    env.update(
        {
            "REMINDER_PUSH_BACKEND": "surveys.tests.reminder_channels.SlowOutboxBackend",
            "REMINDER_SLOW_FLAG": str(flag),
            "CELERY_VISIBILITY_TIMEOUT": "2",
            "REMINDER_CLAIM_STALE_AFTER": "1",
        }
    )
    p = make_participant(trial, site_ldn, channels=["push"], push="device-token-1", quiet=awake("Europe/London"))
    inst = make_instance(p, opens_at=timezone.now() - timedelta(minutes=1))
    first = start(pool="solo")
    reminders_sweep(now=timezone.now(), queue=queue)
    reminder = Reminder.objects.get(instance=inst)

    # The provider has accepted the message; the worker sleeps before recording it. Kill it there.
    wait_for(lambda: Path(f"{flag}.sleeping").exists(), what="the worker to be mid-send")
    os.killpg(first.pid, signal.SIGKILL)
    first.wait(timeout=10)
    flag.unlink()
    assert len(outbox_lines(outbox / "push.jsonl")) == 1
    reminder.refresh_from_db()
    claim = ReminderDelivery.objects.get(reminder=reminder)
    assert reminder.status == "queued" and claim.state == "sending"

    # A new worker restores, when it starts, the unacknowledged messages older than the (test-short) visibility
    # timeout: wait until the broker's own record of this queue's unacknowledged message says it is that old
    # (a positive signal, no fixed sleep), then start it; the redelivered send is the signal waited for next.
    wait_for(lambda: unacked_older_than(queue, seconds=2), what="the unacknowledged message past its visibility")
    start(pool="solo")
    wait_for(lambda: Reminder.objects.get(pk=reminder.pk).status == "sent", what="the redelivered send")
    lines = outbox_lines(outbox / "push.jsonl")
    assert [line["key"] for line in lines] == [str(reminder.uuid)]
    assert lines[0]["to"] == "device-token-1"
    claim.refresh_from_db()
    assert claim.state == "sent" and claim.attempts == 2


def test_transient_failures_retry_with_backoff_then_send_once(trial, site_ldn, rworker):
    queue, start, _stop, env, outbox, _maildir = rworker
    env.update(
        {"REMINDER_PUSH_BACKEND": "surveys.tests.reminder_channels.FlakyOutboxBackend", "REMINDER_FLAKY_FAILURES": "2"}
    )
    p = make_participant(trial, site_ldn, channels=["push"], push="device-token-2", quiet=awake("Europe/London"))
    inst = make_instance(p, opens_at=timezone.now() - timedelta(minutes=1))
    start()
    reminders_sweep(now=timezone.now(), queue=queue)
    reminder = Reminder.objects.get(instance=inst)
    wait_for(lambda: Reminder.objects.get(pk=reminder.pk).status == "sent", what="the send after two retries")
    assert [line["key"] for line in outbox_lines(outbox / "push.jsonl")] == [str(reminder.uuid)]
    assert ReminderDelivery.objects.get(reminder=reminder).attempts == 3


@pytest.fixture
def own_redis(tmp_path):
    """A restartable Redis on a fixed port; the test process publishes to it while the fixture is active."""
    redis = RedisProcess(tmp_path / "redis", port=free_port())
    redis.start()
    old = app.conf.broker_url, app._pool, app.amqp._producer_pool
    app.conf.broker_url = redis.url
    app._pool = app.amqp._producer_pool = None
    yield redis
    if app._pool is not None:
        app._pool.force_close_all()
    app.conf.broker_url, app._pool, app.amqp._producer_pool = old
    redis.stop()


def test_redis_restarted_while_reminders_are_due_all_delivered_once(trial, site_ldn, rworker, own_redis):
    queue, start, _stop, env, outbox, _maildir = rworker
    env["REDIS_URL"] = own_redis.url
    people = [
        make_participant(trial, site_ldn, channels=["push"], push=f"tok-{i}", quiet=awake("Europe/London"))
        for i in range(6)
    ]
    for p in people[:3]:
        make_instance(p, opens_at=timezone.now() - timedelta(minutes=1))
    # Published while Redis is up, not yet consumed (no worker): kept across the restart.
    assert reminders_sweep(now=timezone.now(), queue=queue)["claimed"] == 3
    own_redis.stop()
    for p in people[3:]:
        make_instance(p, opens_at=timezone.now() - timedelta(minutes=1))
    # Due while Redis is down: publishing fails, the rows go back to pending.
    assert reminders_sweep(now=timezone.now(), queue=queue)["claimed"] == 0
    assert Reminder.objects.filter(status="pending").count() == 3
    own_redis.start()
    start()
    assert reminders_sweep(now=timezone.now(), queue=queue)["claimed"] == 3
    wait_for(lambda: Reminder.objects.filter(status="sent").count() == 6, what="all six reminders")
    keys = [line["key"] for line in outbox_lines(outbox / "push.jsonl")]
    assert sorted(keys) == sorted(str(u) for u in Reminder.objects.values_list("uuid", flat=True))
    assert all(d.attempts == 1 for d in ReminderDelivery.objects.all())
