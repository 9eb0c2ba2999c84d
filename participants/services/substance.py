"""Per-participant substance and amount per active unit (participants who bring their own)."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from trialsite.protocol.services import protocol_current

from ..models import Participant, SubstanceRecord


@transaction.atomic
def participant_substance_record(
    *, participant: Participant, name: str, amount_per_unit, unit: str, user=None, now=None
) -> SubstanceRecord:
    """Record (or correct: the audit trail keeps the old values) what the participant's active units contain.

    Refused when the protocol dispenses the substance at the site (`substance.provided_by: site`, or no
    `substance`): the protocol's values apply to everyone then."""
    participant = Participant.objects.select_for_update().get(pk=participant.pk)
    substance = protocol_current(participant.trial).substance
    if substance is None or substance.provided_by != "participant":
        raise ValidationError({"substance": ["This trial dispenses its substance at the site: see the protocol."]})
    name = (name or "").strip()
    errors = {}
    if not name or len(name) > 128:
        errors["name"] = ["Give the substance's name (at most 128 characters)."]
    try:
        amount = Decimal(str(amount_per_unit))
        if not amount.is_finite() or amount <= 0:
            raise InvalidOperation
    except (InvalidOperation, ValueError):
        errors["amount_per_unit"] = ["Give a positive amount per unit."]
        amount = None
    if unit not in SubstanceRecord.Unit.values:
        errors["unit"] = [f"Unit must be one of {', '.join(SubstanceRecord.Unit.values)}."]
    if errors:
        raise ValidationError(errors)
    record = SubstanceRecord.objects.filter(participant=participant).first() or SubstanceRecord(participant=participant)
    record.name, record.amount_per_unit, record.unit = name, amount, unit
    record.recorded_at, record.recorded_by = now or timezone.now(), user
    record.full_clean()
    record.save()
    return record
