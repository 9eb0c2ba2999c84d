"""Celery tasks of the participants app: thin, idempotent, taking ids."""

from __future__ import annotations

import logging
import os

from celery import current_app, shared_task
from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone

from trialsite import roles

from .models import SafetyAlert
from .services.escalation import safety_alert_escalate, safety_alert_recipients, safety_alerts_claim_overdue

log = logging.getLogger(__name__)

ESCALATE_TASK = "participants.tasks.safety_alert_escalate"


@shared_task(name="participants.tasks.safety_alert_notify", acks_late=True)
def safety_alert_notify(alert_id: int) -> str:
    """E-mail the site's safety physician(s) and coordinators at once. State guard: sent once.

    The mail is sent under the row lock before `notified_at` commits, so a crash in between re-sends it on
    redelivery (at least once: for a safety signal a duplicate is better than silence).
    """
    with transaction.atomic():
        alert = SafetyAlert.objects.select_for_update().select_related("participant").get(pk=alert_id)
        if alert.notified_at is not None:
            return "already notified"
        to = safety_alert_recipients(alert=alert, role_names=[roles.SAFETY_PHYSICIAN, roles.COORDINATOR])
        if to:
            send_mail(
                subject=f"[trialsite] Safety alert for {alert.participant.study_id}: {alert.title}",
                message=(
                    f"Participant {alert.participant.study_id} raised a safety alert ({alert.severity}).\n"
                    f"Rule: {alert.title}\nRaised: {alert.raised_at:%Y-%m-%d %H:%M} UTC\n"
                    f"Acknowledge before {alert.due_at:%Y-%m-%d %H:%M} UTC in the trialsite admin.\n"
                ),
                from_email=settings.DEFAULT_FROM_EMAIL,
                recipient_list=to,
            )
        alert.notified_at = timezone.now()
        alert.save(update_fields=["notified_at"])
    return f"notified {len(to)}"


@shared_task(name=ESCALATE_TASK, acks_late=True, ignore_result=True)
def safety_alert_escalate_task(alert_id: int) -> str:
    return safety_alert_escalate(alert_id=alert_id)


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
            with current_app.producer_or_acquire() as producer:
                for pk in ids:
                    current_app.send_task(ESCALATE_TASK, kwargs={"alert_id": pk}, producer=producer, **options)

        if ids:
            transaction.on_commit(publish)
    return len(ids)


@shared_task(name="participants.tasks.safety_alerts_escalate_due", acks_late=True, ignore_result=True)
def safety_alerts_escalate_due_task() -> int:
    return safety_alerts_escalate_due()
