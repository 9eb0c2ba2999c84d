"""The minute sweep and the send state machine, in-process against real PostgreSQL and Redis (injected clock)."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime, time, timedelta

import pytest
from django.core import mail
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from participants.models import AlertStatus, SafetyAlert
from participants.services import participant_withdraw
from participants.tasks import safety_alert_escalate_task, safety_alerts_escalate_due
from surveys.models import (
    CoordinatorTask,
    InstanceStatus,
    PromptEvent,
    Reminder,
    ReminderDelivery,
    ReminderStatus,
    Response,
)
from surveys.reminders import services
from surveys.reminders.selectors import prompt_timeline, prompt_timelines
from surveys.tasks import reminders_sweep
from trialsite.outbox import outbox_deliver_pending

from .reminder_helpers import make_instance, make_participant, purge, queue_length

# 12:00 UTC on a winter day: 12:00 in London, 07:00 in New York — outside the 22:00–07:30 default quiet hours in
# London only (07:00 New York is still quiet).
NOON = datetime(2026, 2, 10, 12, 0, tzinfo=UTC)
NO_QUIET = (time(3, 0), time(3, 1))


@pytest.fixture
def queue():
    name = f"test-rd-{uuid.uuid4().hex[:10]}"
    yield name
    purge(name)


@pytest.fixture
def sweep(queue, django_capture_on_commit_callbacks):
    """A sweep whose after-commit publishing runs (the test itself runs inside a transaction)."""

    def run(now):
        with django_capture_on_commit_callbacks(execute=True):
            return reminders_sweep(now=now, queue=queue)

    return run


def answer(instance, at):
    return Response.objects.create(
        instance=instance,
        participant=instance.participant,
        instrument=instance.instrument,
        idempotency_key=uuid.uuid4(),
        request_hash="x" * 64,
        answers={},
        authored_at=at,
        received_at=at,
    )


@pytest.mark.django_db
def test_stages_come_due_one_row_each_and_are_claimed_once(trial, site_ldn, queue, sweep):
    p = make_participant(trial, site_ldn, email="a@example.org")
    inst = make_instance(p, opens_at=NOON, window=timedelta(hours=4))

    assert sweep(NOON - timedelta(minutes=1))["planned"] == 0
    first = sweep(NOON + timedelta(seconds=30))
    assert first["planned"] == 1 and first["claimed"] == 1
    assert queue_length(queue) == 1
    second = sweep(NOON + timedelta(minutes=1))
    assert second["planned"] == 0 and second["claimed"] == 0
    assert queue_length(queue) == 1

    sweep(NOON + timedelta(hours=2, minutes=1))
    sweep(NOON + timedelta(hours=3, minutes=31))
    stages = dict(Reminder.objects.filter(instance=inst).values_list("stage", "due_at"))
    assert stages == {
        "at_open": NOON,
        "plus_2h": NOON + timedelta(hours=2),
        "before_close": NOON + timedelta(hours=3, minutes=30),
    }
    # Nobody consumed the at_open message: after REMINDER_REQUEUE_AFTER (10 min) it was published again, so a
    # message lost by the broker is recovered from the database (the worker's state machine drops duplicates).
    assert Reminder.objects.get(instance=inst, stage="at_open").queued_at == NOON + timedelta(hours=3, minutes=31)


@pytest.mark.django_db(transaction=True)
def test_a_rolled_back_transaction_enqueues_nothing(trial, site_ldn, queue):
    p = make_participant(trial, site_ldn, email="a@example.org")
    make_instance(p, opens_at=NOON)
    with pytest.raises(RuntimeError), transaction.atomic():
        assert reminders_sweep(now=NOON + timedelta(minutes=1), queue=queue)["claimed"] == 1
        raise RuntimeError("the caller failed after the sweep")
    assert queue_length(queue) == 0
    assert not Reminder.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_sweeps_never_claim_the_same_reminder(trial, site_ldn, queue):
    participants = [make_participant(trial, site_ldn, email=f"p{i}@example.org") for i in range(30)]
    for p in participants:
        make_instance(p, opens_at=NOON)
    barrier = threading.Barrier(2)
    results, errors = [], []

    def run():
        try:
            barrier.wait()
            results.append(reminders_sweep(now=NOON + timedelta(minutes=1), queue=queue))
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sum(r["claimed"] for r in results) == 30
    assert queue_length(queue) == 30
    assert Reminder.objects.filter(status=ReminderStatus.QUEUED).count() == 30


@pytest.mark.django_db
def test_answered_and_withdrawn_get_no_more_reminders(trial, site_ldn, queue, sweep):
    answered = make_participant(trial, site_ldn, email="a@example.org")
    withdrawn = make_participant(trial, site_ldn, email="b@example.org")
    a = make_instance(answered, opens_at=NOON)
    w = make_instance(withdrawn, opens_at=NOON)
    sweep(NOON + timedelta(minutes=1))
    answer(a, NOON + timedelta(minutes=30))
    participant_withdraw(
        participant=withdrawn, scope="all", reason="moving away", by_participant=True, actor=withdrawn.user
    )
    sweep(NOON + timedelta(hours=2, minutes=1))
    assert list(Reminder.objects.filter(instance=a).values_list("stage", flat=True)) == ["at_open"]
    assert list(Reminder.objects.filter(instance=w).values_list("stage", flat=True)) == ["at_open"]
    # The queued at_open messages are re-checked at send time.
    for inst, status, reason in ((a, "skipped", "answered"), (w, "cancelled", None)):
        r = Reminder.objects.get(instance=inst)
        plan = services.reminder_send_prepare(reminder_id=r.pk, now=NOON + timedelta(hours=2, minutes=2))
        r.refresh_from_db()
        assert plan.action != "send"
        assert r.status == status
        if reason:
            assert r.skip_reason == reason
    assert not ReminderDelivery.objects.exists()


@pytest.mark.django_db
def test_send_claims_then_records_and_a_second_task_sends_nothing(trial, site_ldn, queue, sweep):
    p = make_participant(trial, site_ldn, email="ann@example.org", quiet=NO_QUIET)
    inst = make_instance(p, opens_at=NOON, window=timedelta(hours=4))
    sweep(NOON)
    r = Reminder.objects.get(instance=inst)
    plan = services.reminder_send_prepare(reminder_id=r.pk, now=NOON + timedelta(minutes=1))
    assert plan.action == "send" and plan.channel == "email" and plan.to == "ann@example.org"
    assert plan.key == str(r.uuid)
    # The claim is committed before the provider is called.
    claim = ReminderDelivery.objects.get(reminder=r)
    assert claim.state == "sending" and claim.idempotency_key == r.uuid
    # Protocol text, closing time in the participant's zone; nothing about arms.
    assert "16:00 on Tue 10 Feb (GMT)" in plan.body
    for arm in ("psilocybin", "placebo", "micro-dose", "arm"):
        assert arm not in (plan.subject + plan.body).lower()
    # A duplicate message while the first worker is still sending does nothing.
    dup = services.reminder_send_prepare(reminder_id=r.pk, now=NOON + timedelta(minutes=1, seconds=5))
    assert dup.action == "in progress elsewhere"
    services.reminder_send_record(reminder_id=r.pk, provider_id="<x@y>", now=NOON + timedelta(minutes=1))
    r.refresh_from_db()
    assert (r.status, r.channel, r.provider_id) == ("sent", "email", "<x@y>")
    assert services.reminder_send_prepare(reminder_id=r.pk, now=NOON + timedelta(minutes=3)).action == "already sent"


@pytest.mark.django_db
def test_stale_claim_resends_only_through_an_idempotent_channel(trial, site_ldn, queue, sweep):
    by_mail = make_participant(trial, site_ldn, email="m@example.org", quiet=NO_QUIET)
    by_push = make_participant(trial, site_ldn, channels=["push"], push="tok-1", quiet=NO_QUIET)
    plans = {}
    for p in (by_mail, by_push):
        make_instance(p, opens_at=NOON)
    sweep(NOON)
    for p in (by_mail, by_push):
        r = Reminder.objects.get(instance__participant=p)
        assert services.reminder_send_prepare(reminder_id=r.pk, now=NOON).action == "send"
        # The worker died; after the claim went stale a redelivered message arrives.
        plans[p.pk] = services.reminder_send_prepare(reminder_id=r.pk, now=NOON + timedelta(minutes=6))
    assert plans[by_push.pk].action == "send" and plans[by_push.pk].channel == "push"
    assert ReminderDelivery.objects.get(reminder__instance__participant=by_push).attempts == 2
    assert plans[by_mail.pk].action == "failed:interrupted"
    failed = Reminder.objects.get(instance__participant=by_mail)
    assert failed.status == "failed" and "outcome unknown" in failed.last_error


@pytest.mark.django_db
def test_errors_are_retried_then_the_reminder_fails_visibly(trial, site_ldn, queue, settings, tmp_path, sweep):
    settings.REMINDER_PUSH_BACKEND = "surveys.tests.reminder_channels.FailingBackend"
    settings.REMINDER_OUTBOX_DIR = str(tmp_path)
    p = make_participant(trial, site_ldn, channels=["push"], push="tok-2", quiet=NO_QUIET)
    now = timezone.now()  # the task reads the real clock
    inst = make_instance(p, opens_at=now - timedelta(minutes=1))
    sweep(now)
    r = Reminder.objects.get(instance=inst)
    from surveys.tasks import reminder_send

    # Eager apply runs the autoretries in-process; the last one gives up and records the failure.
    result = reminder_send.apply(kwargs={"reminder_id": r.pk})
    assert result.get() == "failed"
    r.refresh_from_db()
    claim = ReminderDelivery.objects.get(reminder=r)
    assert r.status == "failed" and "provider is down" in r.last_error
    assert claim.state == "failed" and claim.attempts == reminder_send.max_retries + 1


@pytest.mark.django_db
def test_window_closed_superseded_and_no_contact_are_recorded(trial, site_ldn, queue, sweep):
    p = make_participant(trial, site_ldn, email="a@example.org", quiet=NO_QUIET)
    nobody = make_participant(trial, site_ldn, channels=["sms"], quiet=NO_QUIET)
    inst = make_instance(p, opens_at=NOON, window=timedelta(hours=4))
    other = make_instance(nobody, opens_at=NOON)
    # The beat was down for 2 h: at_open and plus_2h are both due; only the latest goes out.
    sweep(NOON + timedelta(hours=2, minutes=5))
    at_open = Reminder.objects.get(instance=inst, stage="at_open")
    plus_2h = Reminder.objects.get(instance=inst, stage="plus_2h")
    later = NOON + timedelta(hours=2, minutes=6)
    assert services.reminder_send_prepare(reminder_id=at_open.pk, now=later).action == "skipped:superseded"
    assert services.reminder_send_prepare(reminder_id=plus_2h.pk, now=later).action == "send"
    r = Reminder.objects.get(instance=other, stage="plus_2h")
    assert services.reminder_send_prepare(reminder_id=r.pk, now=later).action == "skipped:no_contact"
    # The window closes before a queued message is handled.
    late = Reminder.objects.get(instance=other, stage="at_open")
    assert services.reminder_send_prepare(reminder_id=late.pk, now=NOON + timedelta(hours=4)).action in (
        "skipped:window_closed",
    )


@pytest.mark.django_db
def test_missed_instances_and_a_coordinator_task_raised_once(trial, site_ldn, sweep):
    p = make_participant(trial, site_ldn, email="a@example.org")
    days = [make_instance(p, opens_at=NOON + timedelta(days=d), grace=timedelta(hours=1), day=d) for d in range(5)]
    answer(days[0], NOON + timedelta(hours=1))
    days[0].status = InstanceStatus.COMPLETED
    days[0].save()

    for d in range(1, 5):
        # Just before the grace period ends: not missed yet.
        sweep(days[d].grace_until - timedelta(seconds=1))
        days[d].refresh_from_db()
        assert days[d].status == InstanceStatus.SCHEDULED
        sweep(days[d].grace_until)
        days[d].refresh_from_db()
        assert days[d].status == InstanceStatus.MISSED
        services.coordinator_task_raise_for_missed(instance_id=days[d].pk)
        services.coordinator_task_raise_for_missed(instance_id=days[d].pk)  # a redelivered check
    # Three in a row (days 1–3) raise one task; the fourth miss continues the same streak.
    task = CoordinatorTask.objects.get()
    assert task.trigger_instance == days[3] and task.kind == "missed_in_a_row" and task.participant == p
    assert "3" in task.title and "daily-mood" in task.title


@pytest.mark.django_db
def test_coordinator_task_constraint_both_ways(trial, site_ldn):
    p = make_participant(trial, site_ldn)
    inst = make_instance(p, opens_at=NOON)
    CoordinatorTask.objects.create(participant=p, kind="missed_in_a_row", trigger_instance=inst, title="t")
    dup = CoordinatorTask(participant=p, kind="missed_in_a_row", trigger_instance=inst, title="t")
    with pytest.raises(ValidationError):
        dup.full_clean()
    with pytest.raises(IntegrityError), transaction.atomic():
        dup.save()
    with pytest.raises(IntegrityError), transaction.atomic():
        CoordinatorTask.objects.create(participant=p, kind="bogus", trigger_instance=inst, title="t")


@pytest.mark.django_db
def test_reminder_delivery_one_claim_per_reminder(trial, site_ldn, queue):
    p = make_participant(trial, site_ldn)
    inst = make_instance(p, opens_at=NOON)
    r = Reminder.objects.create(instance=inst, stage="at_open", due_at=NOON)
    ReminderDelivery.objects.create(reminder=r, channel="email", idempotency_key=r.uuid)
    dup = ReminderDelivery(reminder=r, channel="email", idempotency_key=r.uuid)
    with pytest.raises(ValidationError):
        dup.full_clean()
    with pytest.raises(IntegrityError), transaction.atomic():
        dup.save()
    with pytest.raises(IntegrityError), transaction.atomic():
        ReminderDelivery.objects.filter(reminder=r).update(state="sent")  # sent needs finished_at


@pytest.mark.django_db
def test_overdue_safety_alert_escalates_once_to_trial_managers(
    trial, site_ldn, make_staff, queue, django_capture_on_commit_callbacks
):
    manager = make_staff("trial_manager")
    make_staff("coordinator", site=site_ldn)
    p = make_participant(trial, site_ldn)
    alert = SafetyAlert.objects.create(
        participant=p,
        rule="phq9_item9",
        title="PHQ-9 item 9 above 0",
        severity="urgent",
        source_kind="response",
        source_id=str(uuid.uuid4()),
        raised_at=NOON,
        due_at=NOON + timedelta(hours=24),
    )
    acked = SafetyAlert.objects.create(
        participant=p,
        rule="phq9_item9",
        title="PHQ-9 item 9 above 0",
        severity="urgent",
        source_kind="response",
        source_id=str(uuid.uuid4()),
        raised_at=NOON,
        due_at=NOON + timedelta(hours=24),
        status=AlertStatus.ACKNOWLEDGED,
        acknowledged_at=NOON + timedelta(hours=1),
    )
    assert safety_alerts_escalate_due(now=NOON + timedelta(hours=23)) == 0
    with django_capture_on_commit_callbacks(execute=True):
        escalated = safety_alerts_escalate_due(now=NOON + timedelta(hours=24), queue=queue)
    assert escalated == 1
    assert queue_length(queue) == 1
    assert safety_alert_escalate_task(alert.pk).startswith("escalated to 1")
    assert safety_alert_escalate_task(alert.pk).startswith("not open")  # redelivery
    alert.refresh_from_db()
    acked.refresh_from_db()
    assert alert.status == AlertStatus.ESCALATED and alert.escalated_at is not None
    assert acked.status == AlertStatus.ACKNOWLEDGED
    assert mail.outbox == []  # no mail under the alert's row lock: the outbox sends it afterwards
    assert outbox_deliver_pending() == {"sent": 1}
    assert len(mail.outbox) == 1 and mail.outbox[0].to == [manager.email]
    assert p.study_id in mail.outbox[0].subject
    assert safety_alerts_escalate_due(now=NOON + timedelta(hours=25)) == 0


@pytest.mark.django_db
def test_timeline_planned_sent_delivered_opened_answered(trial, site_nyc, queue, django_assert_num_queries, sweep):
    instances = []
    for _ in range(3):
        p = make_participant(trial, site_nyc, email="n@example.org", quiet=NO_QUIET)
        inst = make_instance(p, opens_at=NOON)
        instances.append(inst)
    sweep(NOON)
    first = instances[0]
    r = Reminder.objects.get(instance=first)
    services.reminder_send_prepare(reminder_id=r.pk, now=NOON)
    services.reminder_send_record(reminder_id=r.pk, provider_id="pid-1", now=NOON + timedelta(seconds=2))
    PromptEvent.objects.create(instance=first, kind="delivered", at=NOON + timedelta(seconds=5))
    PromptEvent.objects.create(instance=first, kind="opened", at=NOON + timedelta(minutes=10))
    answer(first, NOON + timedelta(minutes=12))
    events = prompt_timeline(instance=first)
    assert [e.kind for e in events] == ["planned", "window_opens", "sent", "delivered", "opened", "answered"]
    sent = events[2]
    assert (sent.stage, sent.channel, sent.provider_id) == ("at_open", "email", "pid-1")
    assert sent.at_local.utcoffset() == timedelta(hours=-5)  # New York in February
    with django_assert_num_queries(5):
        timelines = prompt_timelines(instance_ids=[i.pk for i in instances])
    assert len(timelines) == 3
    assert [e.kind for e in timelines[instances[1].pk]] == ["planned", "window_opens", "queued"]


@pytest.mark.django_db
def test_sweep_query_count_does_not_grow_with_due_reminders(trial, site_ldn, sweep):
    from django.test.utils import CaptureQueriesContext

    def count(n, at):
        for _ in range(n):
            make_instance(make_participant(trial, site_ldn), opens_at=at)
        with CaptureQueriesContext(connection) as ctx:
            assert sweep(at + timedelta(seconds=1))["claimed"] == n
        return len(ctx.captured_queries)

    count(1, NOON)  # warms the per-process protocol cache
    few = count(3, NOON + timedelta(minutes=3))
    many = count(40, NOON + timedelta(minutes=6))
    # One query per reminder would add ~37 here; warm-up effects (caches filled by earlier tests in the same
    # process) may make the first measured sweep a few queries heavier, never the larger one.
    assert many <= few, (few, many)
