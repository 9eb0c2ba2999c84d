"""Reads of survey data. Other apps (analytics, admin, reminders) read surveys through these functions."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import partial

from django.db.models import (
    Case,
    CharField,
    Count,
    DateTimeField,
    F,
    Max,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
    When,
)
from django.db.models.functions import Coalesce
from django.utils import timezone

from participants.models import Participant
from trialsite.compiled_query import CompiledQuery
from trialsite.protocol.services import ProtocolError, protocol_current

from . import definitions
from .models import DoseLog, InstanceStatus, Instrument, Score, SurveyInstance

# What the phone sees: `open` includes the grace period after closing (answers are then `late`).
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
PHONE_STATUSES = ("open", "upcoming", "completed", "missed")


def instance_phone_status(instance: SurveyInstance, now: datetime) -> str:
    if instance.status == InstanceStatus.COMPLETED:
        return "completed"
    if instance.status == InstanceStatus.CANCELLED:
        return "cancelled"
    if instance.status == InstanceStatus.MISSED or instance.grace_until <= now:
        return "missed"
    return "open" if instance.opens_at <= now else "upcoming"


def survey_instance_list(*, participant: Participant, status: str | None = None, now=None) -> QuerySet[SurveyInstance]:
    """The participant's instances (never cancelled ones), optionally by phone status, in opening order."""
    return _instance_list(participant_id=participant.pk, status=status, now=now or timezone.now())


def _instance_list(*, participant_id: int, status: str | None, now=None) -> QuerySet[SurveyInstance]:
    qs = SurveyInstance.objects.filter(participant_id=participant_id).exclude(status=InstanceStatus.CANCELLED)
    scheduled = Q(status=InstanceStatus.SCHEDULED)
    if status == "open":
        qs = qs.filter(scheduled, opens_at__lte=now, grace_until__gt=now)
    elif status == "upcoming":
        qs = qs.filter(scheduled, opens_at__gt=now)
    elif status == "completed":
        qs = qs.filter(status=InstanceStatus.COMPLETED)
    elif status == "missed":
        qs = qs.filter(Q(status=InstanceStatus.MISSED) | (scheduled & Q(grace_until__lte=now)))
    # The list shows the instrument's slug, version and title: not its definition (a JSON document per row).
    return qs.select_related("instrument").defer("instrument__definition").order_by("opens_at", "id")


class InstancePages:
    """The phone's list of a participant's instances, by pages (`pages[offset:stop]`, as ResultsPagination
    slices it): survey_instance_list's query compiled to SQL once per status and process, run per page."""

    def __init__(self, *, participant: Participant, status: str | None = None, now=None):
        self.query = _compiled_instance_lists[status]
        self.values = {"participant_id": participant.pk} | ({} if status in (None, "completed") else {"now": now})

    def __getitem__(self, page: slice) -> list[SurveyInstance]:
        return self.query(offset=page.start or 0, limit=page.stop - (page.start or 0), **self.values)


_compiled_instance_lists = {
    status: CompiledQuery(
        partial(_instance_list, status=status),
        placeholders={"participant_id": -7_340_031}
        | ({} if status in (None, "completed") else {"now": datetime(1970, 1, 3, 4, 5, 6, 789012, tzinfo=UTC)}),
    )
    for status in (None, *PHONE_STATUSES)
}


def survey_instance_get(*, participant: Participant, uuid) -> SurveyInstance | None:
    return SurveyInstance.objects.select_related("instrument").filter(participant=participant, uuid=uuid).first()


def instrument_current(*, trial_id: int, slug: str) -> Instrument | None:
    """The instrument version named by the trial's current protocol."""
    protocol = protocol_current(trial_id)
    version = next((i.version for i in protocol.instruments if i.slug == slug), None)
    if version is None:
        return None
    return Instrument.objects.filter(trial_id=trial_id, slug=slug, version=version).first()


def dose_list(*, participant: Participant) -> QuerySet[DoseLog]:
    return DoseLog.objects.filter(participant=participant).order_by("taken_at", "id")


def baseline_status(*, participant: Participant) -> tuple[bool, list[str]]:
    """Baseline = every `baseline: true` schedule event of the protocol answered."""
    protocol = protocol_current(participant.trial_id)
    keys = [e.key for e in protocol.schedule if e.baseline]
    done = set(
        SurveyInstance.objects.filter(
            participant=participant, schedule_key__in=keys, status=InstanceStatus.COMPLETED
        ).values_list("schedule_key", flat=True)
    )
    missing = [f"baseline survey {k} not answered" for k in keys if k not in done]
    return not missing, missing


def baseline_score(*, participant: Participant, instrument: str, schedule: str, score: str) -> float | None:
    """The score of the response to that baseline event (None when unanswered or not scored)."""
    row = (
        Score.objects.filter(
            response__participant=participant,
            response__instance__schedule_key=schedule,
            response__instrument__slug=instrument,
            key=score,
            scored=True,
        )
        .order_by("response__received_at")
        .values_list("value", flat=True)
        .first()
    )
    return row


def dose_days_logged(*, participant_ids) -> dict[int, set[int]]:
    """participant id → the study days (local date of `taken_at` − day0) on which a dose was logged. One query."""
    rows = (
        DoseLog.objects.filter(participant_id__in=list(participant_ids), participant__day0__isnull=False)
        .annotate(day=definitions.dose_study_day())
        .values_list("participant_id", "day")
        .order_by()  # DoseLog's default ordering (taken_at) would make DISTINCT keep one row per dose, not per day
        .distinct()
    )
    out: dict[int, set[int]] = {}
    for pid, day in rows:
        out.setdefault(pid, set()).add(day)
    return out


def participants_adherence(*, participants, now: datetime) -> dict[int, dict]:
    """Survey completion and dose adherence (surveys.definitions) for a page of participants, in a constant
    number of queries (two aggregates plus one protocol look-up per trial)."""
    participants = list(participants)
    ids = [p.pk for p in participants]
    if not ids:
        return {}
    counts = {
        row["participant_id"]: row
        for row in SurveyInstance.objects.filter(participant_id__in=ids)
        .values("participant_id")
        .annotate(
            due=Count("id", filter=definitions.due_q(now)),
            answered=Count("id", filter=definitions.answered_q()),
        )
    }
    logged_days = dose_days_logged(participant_ids=ids)
    protocols = {trial_id: protocol_current(trial_id) for trial_id in {p.trial_id for p in participants}}
    out: dict[int, dict] = {}
    for p in participants:
        row = counts.get(p.pk, {"due": 0, "answered": 0})
        planned_days = definitions.participant_dose_days(participant=p, dosing=protocols[p.trial_id].dosing, now=now)
        planned, logged, dose_rate = definitions.dose_adherence(
            planned=planned_days, logged_days=logged_days.get(p.pk, ())
        )
        out[p.pk] = {
            "surveys_due": row["due"],
            "surveys_answered": row["answered"],
            "completion": definitions.completion(answered=row["answered"], due=row["due"]),
            "doses_planned": planned,
            "doses_logged": logged,
            "dose_adherence": dose_rate,
        }
    return out


def missed_in_a_row_at(*, participant_id: int, instrument: str | None, upto: datetime, now: datetime) -> int:
    """definitions' missed in a row of one participant counting the instances opened by `upto` (two queries)."""
    base = SurveyInstance.objects.filter(participant_id=participant_id, opens_at__lte=upto)
    if instrument is not None:
        base = base.filter(instrument__slug=instrument)
    last = base.filter(definitions.answered_q()).aggregate(m=Max("opens_at"))["m"]
    missed = base.filter(definitions.missed_q(now))
    if last is not None:
        missed = missed.filter(opens_at__gt=last)
    return missed.count()


def missed_in_a_row_annotation(*, now: datetime):
    """The same figure as an annotation of a Participant queryset (the admin column; no GROUP BY, one subquery).

    It counts the instrument of the trial's `reminders.missed_in_a_row` rule (every instrument when none)."""
    from trialsite.models import Trial

    rules = {}
    for trial_id in Trial.objects.values_list("pk", flat=True):
        try:
            rule = protocol_current(trial_id).reminders.missed_in_a_row
        except ProtocolError:  # a trial without a loaded protocol has no rule
            rule = None
        if rule is not None:
            rules[trial_id] = rule.instrument
    slug = Case(
        *[When(trial_id=t, then=Value(s)) for t, s in rules.items()],
        default=Value(None),
        output_field=CharField(),
    )

    def same_instrument(outer):
        return Q(instrument__slug=Coalesce(outer, F("instrument__slug")))

    last_answered = (
        SurveyInstance.objects.filter(definitions.answered_q(), participant=OuterRef(OuterRef("pk")))
        .filter(same_instrument(OuterRef(OuterRef("missed_row_instrument"))))
        .order_by("-opens_at")
        .values("opens_at")[:1]
    )
    missed = (
        SurveyInstance.objects.filter(definitions.missed_q(now), participant=OuterRef("pk"))
        .filter(same_instrument(OuterRef("missed_row_instrument")))
        .filter(opens_at__gt=Coalesce(Subquery(last_answered), Value(EPOCH, output_field=DateTimeField())))
        .order_by()
        .values("participant")
        .annotate(n=Count("pk"))
        .values("n")[:1]
    )
    return slug, Coalesce(Subquery(missed), Value(0))
