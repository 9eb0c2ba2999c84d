"""Adverse events entered by staff (with follow-up reports) and corrected by staff with a reason; after every
write the safety rules run again: a serious event raises a safety alert, as does any protocol rule on
adverse events (`source: adverse_event`). An alert is raised at most once per rule and event."""

from __future__ import annotations

from datetime import date

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from trialsite import policy
from trialsite.audit import audit_context, require_reason
from trialsite.protocol.rules import rules_fired_for_record
from trialsite.protocol.services import protocol_current

from ..models import SERIOUSNESS_CRITERIA, AdverseEvent, Participant
from .safety import safety_alert_raise

# The fields a correction may change (who reported it, and when, stay as recorded).
CORRECTABLE_FIELDS = (
    "onset",
    "description",
    "severity_grade",
    "serious",
    "seriousness_criteria",
    "relatedness",
    "action_taken",
    "outcome",
)


def _criteria_checked(serious: bool, seriousness_criteria: list[str] | None) -> list[str]:
    criteria = sorted(set(seriousness_criteria or []))
    unknown = [c for c in criteria if c not in SERIOUSNESS_CRITERIA]
    if unknown:
        raise ValidationError({"seriousness_criteria": [f"Unknown: {', '.join(unknown)}."]})
    if serious and not criteria:
        raise ValidationError({"seriousness_criteria": ["A serious event needs at least one criterion."]})
    if not serious and criteria:
        raise ValidationError({"serious": ["Criteria are given: mark the event serious."]})
    return criteria


def adverse_event_safety_rules_run(*, event: AdverseEvent, now) -> list:
    """The safety rules on one adverse event (inside the caller's transaction): a serious event always raises
    an urgent alert; the protocol's adverse-event rules raise theirs."""
    alerts = []
    if event.serious:
        alerts.append(
            safety_alert_raise(
                participant=event.participant,
                rule="serious_adverse_event",
                title="Serious adverse event reported",
                severity="urgent",
                source_kind="adverse_event",
                source_id=str(event.uuid),
                details={"severity_grade": event.severity_grade, "criteria": list(event.seriousness_criteria)},
                now=now,
            )
        )
    for rule, details in rules_fired_for_record(
        protocol=protocol_current(event.participant.trial), source="adverse_event", record=event
    ):
        alerts.append(
            safety_alert_raise(
                participant=event.participant,
                rule=rule.key,
                title=rule.title,
                severity=rule.severity,
                source_kind="adverse_event",
                source_id=str(event.uuid),
                details=details,
                now=now,
            )
        )
    return alerts


@transaction.atomic
def adverse_event_create(
    *,
    participant: Participant,
    onset: date,
    description: str,
    severity_grade: int,
    serious: bool,
    seriousness_criteria: list[str] | None = None,
    relatedness: str,
    action_taken: str,
    outcome: str,
    actor,
    previous: AdverseEvent | None = None,
    now=None,
) -> AdverseEvent:
    now = now or timezone.now()
    policy.require(actor, policy.ADVERSE_EVENT_REPORT, participant)
    policy.require_unlocked(participant)
    criteria = _criteria_checked(serious, seriousness_criteria)
    if previous is not None:
        previous = AdverseEvent.objects.select_for_update().get(pk=previous.pk)
        if previous.participant_id != participant.pk:
            raise ValidationError({"previous": ["A follow-up must be about the same participant."]})
        if AdverseEvent.objects.filter(previous=previous).exists():
            raise ValidationError({"previous": ["That report already has a follow-up; follow up the latest one."]})
    event = AdverseEvent(
        participant=participant,
        previous=previous,
        onset=onset,
        description=(description or "").strip(),
        severity_grade=severity_grade,
        serious=serious,
        seriousness_criteria=criteria,
        relatedness=relatedness,
        action_taken=action_taken,
        outcome=outcome,
        reported_at=now,
        study_day=participant.study_day(now),
        reported_by=actor,
    )
    event.full_clean()
    event.save()
    adverse_event_safety_rules_run(event=event, now=now)
    return event


@transaction.atomic
def adverse_event_correct(*, event: AdverseEvent, actor, reason: str, now=None, **changes) -> AdverseEvent:
    """Staff correct a recorded adverse event: the reason lands in the audit trail with the old and new
    values, and the safety rules run again on the corrected event (correcting it to serious raises the alert)."""
    reason = require_reason(reason)
    unknown = sorted(set(changes) - set(CORRECTABLE_FIELDS))
    if unknown:
        raise ValidationError({name: ["This field cannot be corrected."] for name in unknown})
    now = now or timezone.now()
    event = AdverseEvent.objects.select_for_update().select_related("participant").get(pk=event.pk)
    policy.require(actor, policy.ADVERSE_EVENT_CORRECT, event)
    policy.require_unlocked(event.participant)
    for name, value in changes.items():
        setattr(event, name, value)
    event.seriousness_criteria = _criteria_checked(event.serious, event.seriousness_criteria)
    if isinstance(event.description, str):
        event.description = event.description.strip()
    event.full_clean()
    with audit_context(user=actor, reason=reason):
        event.save(update_fields=list(CORRECTABLE_FIELDS))
        adverse_event_safety_rules_run(event=event, now=now)
    return event
