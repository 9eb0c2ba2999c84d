"""Escalation of safety alerts nobody acknowledged before their deadline (to the trial managers)."""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.utils import timezone

from trialsite import policy, roles
from trialsite.outbox import mail_enqueue

from ..models import AlertStatus, SafetyAlert


def safety_alert_recipients(*, alert: SafetyAlert, role_names) -> list[str]:
    """E-mail addresses of active staff holding one of the roles in the alert's trial, at its site (site roles)."""
    return roles.holders_emails(role_names, trial=alert.participant.trial_id, site=alert.participant.site_id)


def safety_alerts_claim_overdue(*, now: datetime | None = None, limit: int = 500) -> list[int]:
    """Ids of open, unacknowledged alerts past their deadline (SKIP LOCKED: an alert being escalated or
    acknowledged right now is left to that transaction). Call inside a transaction; publish after commit."""
    now = now or timezone.now()
    return list(
        SafetyAlert.objects.select_for_update(skip_locked=True)
        .filter(status=AlertStatus.OPEN, acknowledged_at__isnull=True, due_at__lte=now)
        .order_by("due_at", "pk")
        .values_list("pk", flat=True)[:limit]
    )


@transaction.atomic
def safety_alert_escalate(*, alert_id: int, actor, now: datetime | None = None) -> str:
    """Mark the alert escalated, once (state guard under the row lock), and record the e-mail to the trial
    managers in the same transaction (the outbox delivers it from a worker, after the lock is released)."""
    now = now or timezone.now()
    alert = SafetyAlert.objects.select_for_update().select_related("participant").get(pk=alert_id)
    policy.require(actor, policy.SAFETY_ALERT_ESCALATE, alert)
    if alert.status != AlertStatus.OPEN or alert.acknowledged_at is not None:
        return f"not open ({alert.status})"
    if alert.due_at > now:
        return "not due"
    to = safety_alert_recipients(alert=alert, role_names=[roles.TRIAL_MANAGER])
    mail_enqueue(
        dedupe_key=f"safety_alert_escalated:{alert.pk}",
        subject=f"[trialsite] ESCALATED safety alert for {alert.participant.study_id}: {alert.title}",
        body=(
            f"The safety alert for participant {alert.participant.study_id} ({alert.severity}) was not "
            f"acknowledged by its deadline, {alert.due_at:%Y-%m-%d %H:%M} UTC.\n"
            f"Rule: {alert.title}\nRaised: {alert.raised_at:%Y-%m-%d %H:%M} UTC\n"
            "Please make sure a clinician reviews it now and acknowledge it in the trialsite admin.\n"
        ),
        to=to,
        trial=alert.participant.trial_id,
        now=now,
    )
    alert.status = AlertStatus.ESCALATED
    alert.escalated_at = now
    alert.save(update_fields=["status", "escalated_at"])
    return f"escalated to {len(to)}"
