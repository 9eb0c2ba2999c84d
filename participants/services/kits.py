"""Self-blinding kits (`blinding: self`): envelope codes, made at randomisation, and recording the envelope of a
period. ARM-BEARING rows (KitEnvelope.condition): nothing here returns a condition to a caller.

Codes are six characters of the enrolment-code alphabet (no 0/O, 1/I/L, 5/S, 8/B, 2/Z), the last one a Luhn
mod 26 check character, so a mistyped character or two swapped neighbours are caught before any lookup. They are
shown as `ABC-DEF`; `abc def` and `ABCDEF` are read the same.

A period's envelope is refused (KitCodeRefused, 400 `validation_error`, field `code`) when the code is
- `wrong`: not a code at all (format or check character), or no envelope has it;
- `reused`: this participant already recorded it, for another period;
- `foreign`: it belongs to another participant's kit;
and (`period_taken`) when the period already has another envelope. No message names or hints at a condition.
Recording the same code for the same period again changes nothing (a retry, or the code typed again into the
weekly survey after it was scanned).
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from trialsite import policy
from trialsite.protocol.services import protocol_current

from ..kit_models import KitEnvelope
from ..models import Allocation, Arm, Participant, ParticipantStatus
from .errors import WorkflowError
from .registration import CODE_ALPHABET

KIT_CODE_LENGTH = 6  # five random characters + one check character
_N = len(CODE_ALPHABET)


class KitCodeRefused(WorkflowError):
    """A code that cannot be recorded: `reason` is wrong, reused, foreign or period_taken."""

    code = "validation_error"
    status = 400

    def __init__(self, message: str, *, reason: str):
        super().__init__(message)
        self.reason = reason


MESSAGES = {
    "wrong": "This is not one of your envelope codes. Check the letters and try again.",
    "reused": "This envelope code has already been recorded for an earlier period. Use the envelope for this period.",
    "foreign": "This envelope code belongs to another participant's kit, not yours.",
    "period_taken": "An envelope is already recorded for this period.",
}


def kit_check_character(body: str) -> str:
    """Luhn mod N over the alphabet: catches any single wrong character and most swapped neighbours."""
    factor, total = 2, 0
    for char in reversed(body):
        addend = factor * CODE_ALPHABET.index(char)
        total += addend // _N + addend % _N
        factor = 1 if factor == 2 else 2
    return CODE_ALPHABET[(_N - total % _N) % _N]


def kit_code_new() -> str:
    body = "".join(secrets.choice(CODE_ALPHABET) for _ in range(KIT_CODE_LENGTH - 1))
    return body + kit_check_character(body)


def kit_code_normalise(raw) -> str | None:
    """'abc-def' / 'ABC DEF' / 'ABCDEF' → 'ABCDEF'; None unless it is a well-formed code with a valid check."""
    if not isinstance(raw, str):
        return None
    code = re.sub(r"[\s-]", "", raw).upper()
    if len(code) != KIT_CODE_LENGTH or any(c not in CODE_ALPHABET for c in code):
        return None
    if kit_check_character(code[:-1]) != code[-1]:
        return None
    return code


def kit_code_format(code: str) -> str:
    return f"{code[:3]}-{code[3:]}"


def is_self_blinding(trial) -> bool:
    return protocol_current(trial).blinding == "self"


@transaction.atomic
def kit_envelopes_make(*, participant: Participant, allocation: Allocation, now=None) -> list[KitEnvelope]:
    """Make the participant's kit at randomisation (once; a second call returns the kit as it is): per arm
    (condition) `envelopes_per_condition` codes. The label sets are ordered from the concealed allocation: the
    allocated arm's envelopes are set 1, the other arms follow in code order."""
    existing = list(KitEnvelope.objects.filter(participant=participant))
    if existing:
        return existing
    protocol = protocol_current(participant.trial)
    if protocol.self_blinding is None:
        return []
    now = now or timezone.now()
    allocated = allocation.slot.arm_id
    arms = sorted(Arm.objects.filter(trial=participant.trial_id), key=lambda a: (a.pk != allocated, a.code))
    taken: set[str] = set()
    rows = []
    for label_set, arm in enumerate(arms, 1):
        for number in range(1, protocol.self_blinding.envelopes_per_condition + 1):
            while True:
                code = kit_code_new()
                if code not in taken and not KitEnvelope.objects.filter(code=code).exists():
                    taken.add(code)
                    break
            rows.append(
                KitEnvelope(
                    participant=participant,
                    code=code,
                    condition=arm,
                    label_set=label_set,
                    number=number,
                    created_at=now,
                )
            )
    return KitEnvelope.objects.bulk_create(rows)


def kit_period_of(*, participant: Participant, at) -> int:
    """The self-blinding period a participant is in at an instant: how many period start days (study days of the
    protocol's self-blinding schedule) their local date has reached. 0 before the first."""
    day = participant.study_day(at)
    if day is None:
        return 0
    starts = protocol_current(participant.trial).period_start_days()
    return sum(1 for start in starts if start <= day)


@dataclass(frozen=True)
class EnvelopeRecorded:
    envelope: KitEnvelope
    created: bool  # False: this code was already recorded for this period


@transaction.atomic
def kit_envelope_record(
    *, participant: Participant, code, period: int | None = None, source: str = "api", now=None
) -> EnvelopeRecorded:
    """Record the envelope opened for a period (default: the period the participant is in now)."""
    now = now or timezone.now()
    participant = Participant.objects.select_for_update().select_related("trial").get(pk=participant.pk)
    protocol = protocol_current(participant.trial)
    if protocol.self_blinding is None:
        raise WorkflowError("This trial does not use self-blinding kits.")
    if participant.status != ParticipantStatus.RANDOMISED:
        raise WorkflowError("Envelope codes are recorded only during the trial (after randomisation).")
    locked = policy.locked_reason(participant)
    if locked:  # data management locked the participant's data: no path changes them (409 conflict)
        raise WorkflowError(locked)
    current = kit_period_of(participant=participant, at=now)
    if period is None:
        period = current
    if current < 1:
        raise WorkflowError("The first period has not started yet.", code="window_not_open")
    if not 1 <= period <= current:
        raise KitCodeRefused(f"Period {period} has not started (you are in period {current}).", reason="period")
    normal = kit_code_normalise(code)
    row = KitEnvelope.objects.select_for_update().filter(code=normal).first() if normal else None
    if row is None:
        raise KitCodeRefused(MESSAGES["wrong"], reason="wrong")
    if row.participant_id != participant.pk:
        raise KitCodeRefused(MESSAGES["foreign"], reason="foreign")
    if row.period is not None:
        if row.period == period:
            return EnvelopeRecorded(envelope=row, created=False)
        raise KitCodeRefused(MESSAGES["reused"], reason="reused")
    if KitEnvelope.objects.filter(participant=participant, period=period).exists():
        raise KitCodeRefused(MESSAGES["period_taken"], reason="period_taken")
    row.period = period
    row.recorded_at = now
    row.recorded_study_day = participant.study_day(now)
    row.recorded_source = source[:16]
    row.save(update_fields=["period", "recorded_at", "recorded_study_day", "recorded_source"])
    return EnvelopeRecorded(envelope=row, created=True)


@dataclass(frozen=True)
class _CorrectionPlan:
    old: KitEnvelope | None  # the envelope recorded with the old code (its record is cleared)
    new: KitEnvelope | None  # the envelope to record for `period` (None: the period has none)
    period: int | None


def _kit_correction_plan(*, participant: Participant, old_code, new_code, period: int | None, lock: bool):
    """What correcting a kit_code answer from `old_code` to `new_code` does, or KitCodeRefused (as on the phone)."""
    envelopes = KitEnvelope.objects.select_for_update() if lock else KitEnvelope.objects
    old_normal = kit_code_normalise(old_code) if old_code else None
    old = (
        envelopes.filter(participant=participant, code=old_normal, period__isnull=False).first() if old_normal else None
    )
    if old is not None:
        period = old.period
    if not new_code:
        return _CorrectionPlan(old=old, new=None, period=period)
    new_normal = kit_code_normalise(new_code)
    new = envelopes.filter(code=new_normal).first() if new_normal else None
    if new is None:
        raise KitCodeRefused(MESSAGES["wrong"], reason="wrong")
    if new.participant_id != participant.pk:
        raise KitCodeRefused(MESSAGES["foreign"], reason="foreign")
    if period is None:
        raise KitCodeRefused("This answer belongs to no self-blinding period.", reason="wrong")
    if new.period is not None and new.period != period:
        raise KitCodeRefused(MESSAGES["reused"], reason="reused")
    taken = envelopes.filter(participant=participant, period=period).exclude(pk__in=[e.pk for e in (old, new) if e])
    if taken.exists():
        raise KitCodeRefused(MESSAGES["period_taken"], reason="period_taken")
    return _CorrectionPlan(old=old, new=new, period=period)


def kit_envelope_correction_problem(*, participant: Participant, old_code, new_code, period: int | None) -> str | None:
    """The refusal `kit_envelope_correct` would give (for a form's validation), or None."""
    try:
        _kit_correction_plan(participant=participant, old_code=old_code, new_code=new_code, period=period, lock=False)
    except KitCodeRefused as exc:
        return exc.message
    return None


@transaction.atomic
def kit_envelope_correct(
    *, participant: Participant, old_code, new_code, period: int | None, actor, now=None
) -> KitEnvelope | None:
    """Data management corrected a `kit_code` answer: the envelope recorded with `old_code` is no longer the
    period's, and `new_code`'s is (None: no envelope for it). The period is the old envelope's, else `period`.
    The same refusals as on the phone (wrong, foreign, reused, period_taken), so the envelope table never says
    something the corrected answer does not; the caller's audit context carries the reason. Returns the envelope
    now recorded, or None."""
    policy.require(actor, policy.ANSWER_CORRECT, participant)
    now = now or timezone.now()
    participant = Participant.objects.select_for_update().get(pk=participant.pk)
    policy.require_unlocked(participant)
    plan = _kit_correction_plan(participant=participant, old_code=old_code, new_code=new_code, period=period, lock=True)
    if plan.old is not None and (plan.new is None or plan.new.pk != plan.old.pk):
        plan.old.period = plan.old.recorded_at = plan.old.recorded_study_day = None
        plan.old.recorded_source = ""
        plan.old.save(update_fields=["period", "recorded_at", "recorded_study_day", "recorded_source"])
    new = plan.new
    if new is not None and new.period is None:
        new.period = plan.period
        new.recorded_at = now
        new.recorded_study_day = participant.study_day(now)
        new.recorded_source = "admin"
        new.save(update_fields=["period", "recorded_at", "recorded_study_day", "recorded_source"])
    return new
