"""Celery tasks of the surveys app: the minute sweep (beat) and the small tasks it fans out.

Tasks take ids, are idempotent (state machine on Reminder + ReminderDelivery, unique constraints) and are safe
under acks_late redelivery. Routing: everything goes to `queue` when given (tests pass their private queue),
else to settings/env `REMINDER_QUEUE`, else Celery's default queue.
"""

from __future__ import annotations

import logging
import os

from celery import current_app, shared_task
from django.conf import settings
from django.utils import timezone

from .reminders import services
from .reminders.channels import ChannelError, PermanentChannelError, channel_get

log = logging.getLogger(__name__)

SEND_TASK = "surveys.reminders.send"
MISSED_TASK = "surveys.reminders.missed_streak_check"

# Exponential backoff with full jitter: ~BACKOFF·2^n seconds (capped at 10 min), then the reminder fails.
MAX_RETRIES = int(os.environ.get("REMINDER_MAX_RETRIES", "5"))
RETRY_BACKOFF = int(os.environ.get("REMINDER_RETRY_BACKOFF", "30"))


def default_queue() -> str | None:
    return getattr(settings, "REMINDER_QUEUE", None) or os.environ.get("REMINDER_QUEUE") or None


def publish(task_name: str, ids: list[int], *, arg: str, queue: str | None = None) -> None:
    """Publish one small message per id over one producer connection (fan-out)."""
    app = current_app
    options = {"queue": queue} if queue else {}
    with app.producer_or_acquire() as producer:
        for pk in ids:
            app.send_task(task_name, kwargs={arg: pk}, producer=producer, **options)


def reminders_sweep(*, now=None, queue: str | None = None) -> dict:
    """One sweep: cancel withdrawn, plan due stages, claim+publish reminders, mark missed, fan out streak checks.

    Each step is its own short transaction; tasks are published only after their transaction commits.
    """
    now = now or timezone.now()
    queue = queue or default_queue()
    cancelled = services.reminders_cancel_withdrawn(now=now)
    planned = services.reminders_plan_due(now=now)
    claimed = services.reminders_claim_and_publish(
        now=now, publish=lambda ids: publish(SEND_TASK, ids, arg="reminder_id", queue=queue)
    )
    missed = 0
    for _ in range(100):
        # Marking missed also records each streak check in the outbox (same transaction); workers run them.
        rows = services.instances_mark_missed(now=now)
        missed += len(rows)
        if len(rows) < services.BATCH:
            break
    return {"cancelled": cancelled, "planned": planned, "claimed": claimed, "missed": missed}


@shared_task(name="surveys.reminders.sweep", acks_late=True, ignore_result=True)
def reminders_sweep_task() -> dict:
    return reminders_sweep()


@shared_task(
    bind=True,
    name=SEND_TASK,
    acks_late=True,
    ignore_result=True,
    autoretry_for=(ChannelError,),
    dont_autoretry_for=(PermanentChannelError,),
    retry_backoff=RETRY_BACKOFF,
    retry_backoff_max=600,
    retry_jitter=True,
    max_retries=MAX_RETRIES,
    soft_time_limit=50,
    time_limit=60,
)
def reminder_send(self, reminder_id: int) -> str:
    """Send one reminder: re-check and claim under lock, call the channel, record the result."""
    plan = services.reminder_send_prepare(reminder_id=reminder_id, now=timezone.now())
    if plan.action != "send":
        return plan.action
    try:
        provider_id = channel_get(plan.channel).send(key=plan.key, to=plan.to, subject=plan.subject, body=plan.body)
    except PermanentChannelError as exc:
        services.reminder_send_error(reminder_id=reminder_id, error=str(exc) or repr(exc), final=True)
        return "failed"
    except Exception as exc:  # noqa: BLE001 - any provider error is retried, then recorded as the failure
        final = self.request.retries >= self.max_retries
        services.reminder_send_error(reminder_id=reminder_id, error=f"{exc.__class__.__name__}: {exc}", final=final)
        if final:
            return "failed"
        if isinstance(exc, ChannelError):
            raise
        raise ChannelError(f"{exc.__class__.__name__}: {exc}") from exc
    services.reminder_send_record(reminder_id=reminder_id, provider_id=provider_id or "")
    return "sent"


@shared_task(name=MISSED_TASK, acks_late=True, ignore_result=True)
def missed_streak_check(instance_id: int) -> str:
    """Messages published before the outbox took over the streak checks (surveys.missed_streak_check)."""
    task = services.coordinator_task_raise_for_missed(instance_id=instance_id)
    return "raised" if task else "no task"


@shared_task(name="surveys.participants_complete_finished", acks_late=True, ignore_result=True)
def participants_complete_finished_task() -> int:
    """Beat: end of study (a participant whose schedule is complete becomes `completed` on their local date)."""
    from .services.schedule import participants_complete_finished

    return participants_complete_finished()
