"""Coordinators' blinding guesses: at the protocol's blinding-guess time points, the site's coordinator (or a
trial manager) records which arm they believe a randomised participant is on. A guess, never the arm."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from trialsite import policy
from trialsite.protocol.schema import Protocol
from trialsite.protocol.services import protocol_current

from ..models import BlindingGuess, Participant, StaffBlindingGuess
from .errors import WorkflowError

GUESS_ITEM = "guess"  # the item key a blinding-guess instrument answers (as the analytics read it)


def blinding_time_points(protocol: Protocol) -> list[str]:
    """`day_<n>` for each study day of the randomisation-anchored schedule events whose instrument asks the
    `guess` item (the participants' blinding-guess question), in day order."""
    days: set[int] = set()
    for event in protocol.schedule:
        if event.anchor != "randomisation":
            continue
        instrument = protocol.instrument(event.instrument)
        if any(item.key == GUESS_ITEM for item in instrument.items):
            days.update(event.day_list())
    return [f"day_{d}" for d in sorted(days)]


def may_record_staff_guess(*, actor, participant: Participant) -> bool:
    """A coordinator of the participant's site, or a trial manager of its trial (trialsite.policy)."""
    return policy.can(actor, policy.BLINDING_GUESS_RECORD, participant)


@transaction.atomic
def staff_blinding_guess_record(
    *,
    participant: Participant,
    actor,
    time_point: str,
    guess: str,
    confidence: int,
    now=None,
) -> StaffBlindingGuess:
    """Record the rater's guess for the participant at a time point. Retrying the same values returns the
    recorded guess; a different guess for the same rater and time point is refused (WorkflowError, 409)."""
    now = now or timezone.now()
    if not may_record_staff_guess(actor=actor, participant=participant):
        raise PermissionDenied("Only the site's coordinators and trial managers record blinding guesses.")
    participant = Participant.objects.select_for_update().select_related("trial").get(pk=participant.pk)
    if participant.randomised_at is None or participant.day0 is None:
        raise WorkflowError("Only randomised participants have blinding-guess time points.")
    points = blinding_time_points(protocol_current(participant.trial))
    if time_point not in points:
        allowed = ", ".join(points) or "none"
        raise ValidationError({"time_point": [f"Not a blinding-guess time point of the protocol ({allowed})."]})
    if guess not in BlindingGuess.values:
        raise ValidationError({"guess": [f"One of {', '.join(BlindingGuess.values)}."]})
    if isinstance(confidence, bool) or not isinstance(confidence, int) or not 0 <= confidence <= 100:
        raise ValidationError({"confidence": ["A whole number from 0 to 100."]})
    day = int(time_point.removeprefix("day_"))
    today = participant.study_day(now)
    if today is None or today < day:
        raise WorkflowError(f"The participant has not reached {time_point} yet (study day {today}).")
    existing = StaffBlindingGuess.objects.filter(participant=participant, rater=actor, time_point=time_point).first()
    if existing is not None:
        if existing.guess == guess and existing.confidence == confidence:
            return existing  # a retry of the same guess
        raise WorkflowError(f"You already recorded a different guess for {participant} at {time_point}.")
    record = StaffBlindingGuess(
        participant=participant,
        rater=actor,
        time_point=time_point,
        guess=guess,
        confidence=confidence,
        recorded_at=now,
    )
    record.full_clean()
    record.save()
    return record
