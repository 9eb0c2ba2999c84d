"""Safety alerts: raised by rules on answers and reports, acknowledged by a clinician before a deadline."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from trialsite import policy
from trialsite.outbox import outbox_enqueue
from trialsite.protocol.schema import parse_duration
from trialsite.protocol.services import protocol_current

from ..models import AlertStatus, Participant, SafetyAlert

SAFETY_ALERT_NOTIFY = "participants.safety_alert_notify"


@transaction.atomic
def safety_alert_raise(
    *,
    participant: Participant,
    rule: str,
    title: str,
    severity: str,
    source_kind: str,
    source_id: str,
    details: dict | None = None,
    now=None,
) -> SafetyAlert:
    """Create the alert (once per rule and source record) and record its notification in the same transaction
    (the outbox: published after commit, re-published by the sweep until a worker has e-mailed the clinicians).

    Call inside the transaction that stores the triggering record, so all three commit or none does.
    """
    now = now or timezone.now()
    existing = SafetyAlert.objects.filter(rule=rule, source_kind=source_kind, source_id=str(source_id)).first()
    if existing is not None:
        return existing
    within = parse_duration(protocol_current(participant.trial).safety.acknowledge_within)
    alert = SafetyAlert(
        participant=participant,
        rule=rule,
        title=title,
        severity=severity,
        source_kind=source_kind,
        source_id=str(source_id),
        details=details or {},
        raised_at=now,
        study_day=participant.study_day(now),
        due_at=now + within,
    )
    alert.full_clean()
    try:
        with transaction.atomic():
            alert.save()
    except IntegrityError:
        # A concurrent request raised the same alert first.
        return SafetyAlert.objects.get(rule=rule, source_kind=source_kind, source_id=str(source_id))
    outbox_enqueue(
        kind=SAFETY_ALERT_NOTIFY,
        dedupe_key=f"safety_alert_notify:{alert.pk}",
        payload={"alert_id": alert.pk},
        trial=participant.trial_id,
        now=now,
    )
    return alert


@transaction.atomic
def safety_alert_acknowledge(*, alert: SafetyAlert, actor, note: str, now=None) -> SafetyAlert:
    alert = SafetyAlert.objects.select_for_update().select_related("participant").get(pk=alert.pk)
    policy.require(actor, policy.SAFETY_ALERT_ACKNOWLEDGE, alert)
    if alert.status == AlertStatus.ACKNOWLEDGED:
        return alert
    if not (note or "").strip():
        raise ValidationError({"note": ["Say what was done (e.g. participant called, plan agreed)."]})
    alert.status = AlertStatus.ACKNOWLEDGED
    alert.acknowledged_at = now or timezone.now()
    alert.acknowledged_by = actor
    alert.acknowledgement_note = note.strip()
    alert.save(update_fields=["status", "acknowledged_at", "acknowledged_by", "acknowledgement_note"])
    return alert
