"""Adverse events entered by staff (with follow-up reports); a serious one raises a safety alert."""

from __future__ import annotations

from datetime import date

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from ..models import SERIOUSNESS_CRITERIA, AdverseEvent, Participant
from .safety import safety_alert_raise


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
    user,
    previous: AdverseEvent | None = None,
    now=None,
) -> AdverseEvent:
    now = now or timezone.now()
    criteria = sorted(set(seriousness_criteria or []))
    unknown = [c for c in criteria if c not in SERIOUSNESS_CRITERIA]
    if unknown:
        raise ValidationError({"seriousness_criteria": [f"Unknown: {', '.join(unknown)}."]})
    if serious and not criteria:
        raise ValidationError({"seriousness_criteria": ["A serious event needs at least one criterion."]})
    if not serious and criteria:
        raise ValidationError({"serious": ["Criteria are given: mark the event serious."]})
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
        reported_by=user,
    )
    event.full_clean()
    event.save()
    if serious:
        safety_alert_raise(
            participant=participant,
            rule="serious_adverse_event",
            title="Serious adverse event reported",
            severity="urgent",
            source_kind="adverse_event",
            source_id=str(event.uuid),
            details={"severity_grade": severity_grade, "criteria": criteria},
            now=now,
        )
    return event
