"""One definition each of the figures every interface shows: survey completion, dose days, dose adherence and
"missed in a row". The admin changelist, the staff API list, the analytics summary and dashboard, the exports and
the simulator all call these (pure functions, plus the ORM conditions that say the same thing in SQL).

Completion
    An instance is *due* once its grace period has passed, or as soon as it is answered; a cancelled instance
    never is (a withdrawal cancels what opens after it). *Answered* = completed; an answer within the grace
    period (late) counts. completion = answered ÷ due, None when nothing is due. The analytics summary also
    shows the on-time share (answered before the window closed) beside it, never instead of it.

Dose days
    The protocol's `dosing` plans study days start_day, start_day + every_n_days, … ≤ end_day, each on the local
    date day0 + n. A dose day counts as planned once its local date has come (≤ the participant's local today).
    A withdrawal (either scope) stops the intervention: the local date of the withdrawal is no longer a dose day,
    nor is any later one (whether the participant took that day's dose before withdrawing is not known; a dose
    logged that day stays in the data and exports but is not counted). Nothing is planned before randomisation.

Dose adherence
    planned dose days on which at least one dose was logged (by the dose's study day) ÷ planned dose days.

Missed in a row
    Among a participant's instances of one instrument (all instruments when none is named) that have closed —
    answered, or missed (marked missed, or still scheduled with its grace passed) — in opening order, the number
    of missed ones after the last answered one. Cancelled instances and those still open are ignored. The
    coordinator task fires when an instance's miss makes this exactly the protocol's `missed_in_a_row.count`;
    the admin column shows it for the protocol's rule instrument.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, timedelta

from django.db.models import Q

from .models import InstanceStatus

# -- completion ---------------------------------------------------------------------------------------


def instance_is_due(*, status: str, grace_until: datetime, now: datetime) -> bool:
    if status == InstanceStatus.CANCELLED:
        return False
    return status == InstanceStatus.COMPLETED or grace_until <= now


def instance_is_missed(*, status: str, grace_until: datetime, now: datetime) -> bool:
    return status == InstanceStatus.MISSED or (status == InstanceStatus.SCHEDULED and grace_until <= now)


def due_q(now: datetime, prefix: str = "") -> Q:
    """The ORM condition of `instance_is_due` (prefix: the path to the instance, e.g. "instance__")."""
    return Q(**{f"{prefix}status": InstanceStatus.COMPLETED}) | Q(
        **{f"{prefix}status__in": [InstanceStatus.SCHEDULED, InstanceStatus.MISSED], f"{prefix}grace_until__lte": now}
    )


def answered_q(prefix: str = "") -> Q:
    return Q(**{f"{prefix}status": InstanceStatus.COMPLETED})


def missed_q(now: datetime, prefix: str = "") -> Q:
    """The ORM condition of `instance_is_missed`."""
    return Q(**{f"{prefix}status": InstanceStatus.MISSED}) | Q(
        **{f"{prefix}status": InstanceStatus.SCHEDULED, f"{prefix}grace_until__lte": now}
    )


def rate(num: int, den: int, digits: int = 3) -> float | None:
    """num ÷ den rounded, None when nothing is due."""
    return round(num / den, digits) if den else None


def completion(*, answered: int, due: int) -> float | None:
    return rate(answered, due)


# -- dose days and adherence ------------------------------------------------------------------------------


def dose_days(*, dosing, day0: date | None, today: date | None = None, withdrawn_on: date | None = None) -> list[int]:
    """Study days of the planned doses (see the module doc). `dosing` is the protocol's `dosing` block (or None);
    `today` = the participant's local date now (None: the whole plan); `withdrawn_on` = the local date of a
    withdrawal (that day and later are not dose days)."""
    if dosing is None or day0 is None:
        return []
    last = dosing.end_day
    if today is not None:
        last = min(last, (today - day0).days)
    if withdrawn_on is not None:
        last = min(last, (withdrawn_on - day0).days - 1)
    if last < dosing.start_day:
        return []
    return list(range(dosing.start_day, last + 1, dosing.every_n_days))


def is_dose_day(*, dosing, day: int) -> bool:
    """Whether a study day is in the protocol's dosing plan (ignoring withdrawal and today)."""
    if dosing is None:
        return False
    return dosing.start_day <= day <= dosing.end_day and (day - dosing.start_day) % dosing.every_n_days == 0


def participant_dose_days(*, participant, dosing, now: datetime | None = None) -> list[int]:
    """dose_days for a participant row (its zone, day0 and withdrawal)."""
    zone = participant.zone
    return dose_days(
        dosing=dosing,
        day0=participant.day0,
        today=now.astimezone(zone).date() if now is not None else None,
        withdrawn_on=participant.withdrawn_at.astimezone(zone).date() if participant.withdrawn_at else None,
    )


def dose_day_dates(*, participant, dosing, now: datetime | None = None) -> list[date]:
    return [
        participant.day0 + timedelta(days=n)
        for n in participant_dose_days(participant=participant, dosing=dosing, now=now)
    ]


def dose_adherence(*, planned: Iterable[int], logged_days: Iterable[int]) -> tuple[int, int, float | None]:
    """(planned, logged on planned days, rate) from planned study days and the study days of logged doses."""
    planned = set(planned)
    logged = len(planned & set(logged_days))
    return len(planned), logged, rate(logged, len(planned))


# -- missed in a row ----------------------------------------------------------------------------------------


def missed_in_a_row(instances: Iterable[tuple[datetime, str, datetime]], *, now: datetime) -> int:
    """Missed in a row from (opens_at, status, grace_until) of one instrument's instances, in any order."""
    closed = sorted(
        (opens, status == InstanceStatus.COMPLETED)
        for opens, status, grace in instances
        if status == InstanceStatus.COMPLETED or instance_is_missed(status=status, grace_until=grace, now=now)
    )
    streak = 0
    for _, answered in closed:
        streak = 0 if answered else streak + 1
    return streak


def dose_study_day():
    """ORM expression of a dose's study day: the local date of `taken_at` (participant's zone) − day0."""
    from django.db.models import F, Func, IntegerField

    class LocalDayIndex(Func):
        output_field = IntegerField()

        def as_sql(self, compiler, connection, **extra):
            (tz, tp), (at, ap), (day0, dp) = (compiler.compile(e) for e in self.get_source_expressions())
            return f"((timezone({tz}, {at}))::date - {day0})", [*tp, *ap, *dp]

    return LocalDayIndex(F("participant__timezone"), F("taken_at"), F("participant__day0"))
