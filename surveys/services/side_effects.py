"""Corrections of participant-reported side effects by data management: a reason is required and lands in
the audit trail; the protocol's side-effect safety rules run again on the corrected record (correcting a side
effect to serious raises the alert, once per rule and record, exactly as reporting it serious from the phone)."""

from __future__ import annotations

from datetime import date, datetime

from django.db import transaction
from django.utils import timezone

from trialsite import policy
from trialsite.audit import audit_context, require_reason
from trialsite.protocol.services import protocol_current

from ..models import SideEffect
from ..safety import raise_alerts, rules_fired_for_record

CORRECTABLE_FIELDS = ("started_on", "description", "severity", "serious", "ongoing")


def side_effect_safety_rules_run(*, side_effect: SideEffect, now: datetime) -> list:
    """The protocol's side-effect rules on one record, inside the caller's transaction."""
    participant = side_effect.participant
    fired = rules_fired_for_record(
        protocol=protocol_current(participant.trial_id), source="side_effect", record=side_effect
    )
    if not fired:
        return []
    return raise_alerts(
        participant=participant, fired=fired, source_kind="side_effect", source_id=str(side_effect.uuid), now=now
    )


@transaction.atomic
def side_effect_correct(
    *,
    side_effect: SideEffect,
    actor,
    reason: str,
    started_on: date | None = None,
    description: str | None = None,
    severity: str | None = None,
    serious: bool | None = None,
    ongoing: bool | None = None,
    now: datetime | None = None,
) -> SideEffect:
    reason = require_reason(reason)
    now = now or timezone.now()
    row = SideEffect.objects.select_for_update(of=("self",)).select_related("participant").get(pk=side_effect.pk)
    participant = row.participant
    policy.require(actor, policy.ANSWER_CORRECT, row)
    policy.require_unlocked(participant)
    changes = {
        "started_on": started_on,
        "description": description.strip() if isinstance(description, str) else None,
        "severity": severity,
        "serious": serious,
        "ongoing": ongoing,
    }
    for name, value in changes.items():
        if value is not None:
            setattr(row, name, value)
    row.study_day = (row.started_on - participant.day0).days if participant.day0 else None
    row.full_clean(exclude=["participant"], validate_unique=False)
    with audit_context(user=actor, reason=reason):
        row.save(update_fields=[*CORRECTABLE_FIELDS, "study_day"])
        side_effect_safety_rules_run(side_effect=row, now=now)
    return row
