"""E-mails of the participants app, delivered by workers through the outbox (trialsite.outbox).

The services record each notice in the transaction of the change that needs it; these handlers run later in a
worker, outside any transaction and lock, and may run twice after a crash (at least once).
"""

from __future__ import annotations

from django.conf import settings
from django.core.mail import EmailMessage
from django.utils import timezone

from trialsite import roles

from ..models import SafetyAlert
from .escalation import safety_alert_recipients


def safety_alert_notify_send(payload: dict) -> int:
    """E-mail the safety physician(s) and coordinators of the alert's trial and site; then mark it notified."""
    alert = SafetyAlert.objects.select_related("participant").get(pk=payload["alert_id"])
    to = safety_alert_recipients(alert=alert, role_names=[roles.SAFETY_PHYSICIAN, roles.COORDINATOR])
    if to:
        EmailMessage(
            subject=f"[trialsite] Safety alert for {alert.participant.study_id}: {alert.title}",
            body=(
                f"Participant {alert.participant.study_id} raised a safety alert ({alert.severity}).\n"
                f"Rule: {alert.title}\nRaised: {alert.raised_at:%Y-%m-%d %H:%M} UTC\n"
                f"Acknowledge before {alert.due_at:%Y-%m-%d %H:%M} UTC in the trialsite admin.\n"
            ),
            from_email=settings.DEFAULT_FROM_EMAIL,
            to=to,
        ).send(fail_silently=False)
    SafetyAlert.objects.filter(pk=alert.pk, notified_at__isnull=True).update(notified_at=timezone.now())
    return len(to)
