"""Celery tasks of the participants app: thin, idempotent, taking ids.

E-mails (alert notifications, escalations, unblinding and exhaustion notices) are not tasks of their own: the
services record them in the outbox and `trialsite.outbox.deliver` sends them (participants.apps registers the
handlers)."""

from __future__ import annotations

import logging
import os

from celery import current_app, shared_task
from django.conf import settings
from django.db import transaction

from trialsite import policy

from .services.escalation import safety_alert_escalate, safety_alerts_claim_overdue

log = logging.getLogger(__name__)

ESCALATE_TASK = "participants.tasks.safety_alert_escalate"


@shared_task(name=ESCALATE_TASK, acks_late=True, ignore_result=True)
def safety_alert_escalate_task(alert_id: int) -> str:
    return safety_alert_escalate(alert_id=alert_id, actor=policy.SYSTEM)


def safety_alerts_escalate_due(*, now=None, queue: str | None = None) -> int:
    """Sweep: claim overdue unacknowledged alerts and publish one escalation task each after commit.

    The alert's state changes only in the task (under its lock), so an alert whose message is lost is simply
    claimed again by the next sweep; a duplicate message finds it escalated and does nothing.
    """
    queue = queue or getattr(settings, "REMINDER_QUEUE", None) or os.environ.get("REMINDER_QUEUE") or None
    options = {"queue": queue} if queue else {}
    with transaction.atomic():
        ids = safety_alerts_claim_overdue(now=now)

        def publish(ids=ids):
            try:
                with current_app.producer_or_acquire() as producer:
                    for pk in ids:
                        current_app.send_task(ESCALATE_TASK, kwargs={"alert_id": pk}, producer=producer, **options)
            except Exception:  # noqa: BLE001 - broker down: the alerts are still open and due, the next sweep retries
                log.warning("publishing %d escalations failed; the next sweep retries", len(ids), exc_info=True)

        if ids:
            transaction.on_commit(publish)
    return len(ids)


@shared_task(name="participants.tasks.safety_alerts_escalate_due", acks_late=True, ignore_result=True)
def safety_alerts_escalate_due_task() -> int:
    return safety_alerts_escalate_due()
