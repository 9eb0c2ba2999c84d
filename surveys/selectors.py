"""Reads of survey data. Other apps (analytics, admin, reminders) read surveys through these functions."""

from __future__ import annotations

from datetime import datetime

from django.db.models import Q, QuerySet
from django.utils import timezone

from participants.models import Participant
from trialsite.protocol.services import protocol_current

from .models import DoseLog, InstanceStatus, Instrument, Score, SurveyInstance

# What the phone sees: `open` includes the grace period after closing (answers are then `late`).
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
    now = now or timezone.now()
    qs = SurveyInstance.objects.filter(participant=participant).exclude(status=InstanceStatus.CANCELLED)
    scheduled = Q(status=InstanceStatus.SCHEDULED)
    if status == "open":
        qs = qs.filter(scheduled, opens_at__lte=now, grace_until__gt=now)
    elif status == "upcoming":
        qs = qs.filter(scheduled, opens_at__gt=now)
    elif status == "completed":
        qs = qs.filter(status=InstanceStatus.COMPLETED)
    elif status == "missed":
        qs = qs.filter(Q(status=InstanceStatus.MISSED) | (scheduled & Q(grace_until__lte=now)))
    return qs.select_related("instrument").order_by("opens_at", "id")


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


def participants_adherence(*, participants, now: datetime) -> dict[int, dict]:
    """Survey completion and dose adherence for a page of participants, in a constant number of queries
    (two aggregates plus one protocol look-up per trial).

    completion = answered ÷ due (instances whose window has closed, or answered early; cancelled ones
    excluded); dose adherence = doses logged ÷ dose days planned up to the participant's local today.
    """
    from django.db.models import Count, Q

    participants = list(participants)
    ids = [p.pk for p in participants]
    if not ids:
        return {}
    due = Q(status=InstanceStatus.COMPLETED) | Q(
        status__in=[InstanceStatus.SCHEDULED, InstanceStatus.MISSED], grace_until__lte=now
    )
    counts = {
        row["participant_id"]: row
        for row in SurveyInstance.objects.filter(participant_id__in=ids)
        .exclude(status=InstanceStatus.CANCELLED)
        .values("participant_id")
        .annotate(
            due=Count("id", filter=due),
            answered=Count("id", filter=Q(status=InstanceStatus.COMPLETED)),
        )
    }
    doses = dict(
        DoseLog.objects.filter(participant_id__in=ids)
        .values("participant_id")
        .annotate(n=Count("id"))
        .values_list("participant_id", "n")
    )
    protocols = {trial_id: protocol_current(trial_id) for trial_id in {p.trial_id for p in participants}}
    out: dict[int, dict] = {}
    for p in participants:
        row = counts.get(p.pk, {"due": 0, "answered": 0})
        dosing = protocols[p.trial_id].dosing
        planned = 0
        if dosing is not None and p.day0 is not None:
            today = now.astimezone(p.zone).date()
            if p.withdrawn_at is not None:
                today = min(today, p.withdrawn_at.astimezone(p.zone).date())
            last = min((today - p.day0).days, dosing.end_day)
            if last >= dosing.start_day:
                planned = (last - dosing.start_day) // dosing.every_n_days + 1
        logged = doses.get(p.pk, 0)
        out[p.pk] = {
            "surveys_due": row["due"],
            "surveys_answered": row["answered"],
            "completion": round(row["answered"] / row["due"], 3) if row["due"] else None,
            "doses_planned": planned,
            "doses_logged": logged,
            "dose_adherence": round(min(logged, planned) / planned, 3) if planned else None,
        }
    return out
