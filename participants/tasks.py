"""Celery tasks of the participants app: thin, idempotent, taking ids."""

from celery import shared_task
from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone

from trialsite import roles
from trialsite.models import RoleGrant

from .models import SafetyAlert


def _recipients(alert: SafetyAlert, role_names) -> list[str]:
    grants = RoleGrant.objects.filter(role__in=role_names).select_related("user")
    emails = set()
    for grant in grants:
        if grant.role in roles.SITE_SCOPED_ROLES and grant.site_id not in (None, alert.participant.site_id):
            continue
        if grant.user.email and grant.user.is_active:
            emails.add(grant.user.email)
    return sorted(emails)


@shared_task(name="participants.tasks.safety_alert_notify", acks_late=True)
def safety_alert_notify(alert_id: int) -> str:
    """E-mail the site's safety physician(s) and coordinators at once. State guard: sent once."""
    with transaction.atomic():
        alert = SafetyAlert.objects.select_for_update().select_related("participant").get(pk=alert_id)
        if alert.notified_at is not None:
            return "already notified"
        to = _recipients(alert, [roles.SAFETY_PHYSICIAN, roles.COORDINATOR])
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
