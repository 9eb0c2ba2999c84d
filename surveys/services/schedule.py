"""Materialising and re-planning survey instances per participant.

One function, `survey_instances_plan`, brings a participant's *future* instances in line with the current
protocol, their zone and the anchors they have reached (consent, randomisation). It is what runs on
consent, randomisation, a zone change and an amendment:
- an instance that has opened (or was answered, missed or cancelled) is history and is never touched;
- a not-yet-open instance that differs from the new plan is cancelled and a new one inserted
  (the partial unique constraint allows one live instance per occurrence);
- an occurrence with no live instance is created while its window is still ahead (closes_at > now).

Re-consent: while `consent_status(...).needs_consent` (an amendment requiring re-consent that the
participant has not signed) NO new occurrences are created; existing ones are kept. Signing the new version
emits `consented`, which plans again: occurrences whose window is still ahead are then created, those
that closed meanwhile are not (they never existed, so they are not counted as missed).

Withdrawal with scope `all` cancels every instance not yet answered whose answer period has not ended;
scope `intervention` stops dosing only and keeps data collection.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from participants.models import Participant, ParticipantStatus, WithdrawalScope
from participants.selectors import consent_status, consent_statuses
from trialsite.protocol.services import protocol_of_version, protocol_version_current

from ..models import InstanceStatus, Instrument, Reminder, ReminderStatus, SurveyInstance
from ..scheduling import Occurrence, plan_event


@dataclass(frozen=True)
class PlanResult:
    created: int
    cancelled: int


def _anchors(participant: Participant) -> dict[str, tuple[datetime, object]]:
    anchors = {}
    first = participant.consents.order_by("signed_at", "id").first()
    if first is not None:
        anchors["consent"] = (first.signed_at, first.signed_at.astimezone(participant.zone).date())
    if participant.randomised_at is not None and participant.day0 is not None:
        anchors["randomisation"] = (participant.randomised_at, participant.day0)
    return anchors


def _cancel(instance_ids: list[int], *, reason: str, now: datetime) -> int:
    if not instance_ids:
        return 0
    n = SurveyInstance.objects.filter(pk__in=instance_ids, status=InstanceStatus.SCHEDULED).update(
        status=InstanceStatus.CANCELLED, cancelled_at=now, cancel_reason=reason[:64]
    )
    Reminder.objects.filter(
        instance_id__in=instance_ids, status__in=[ReminderStatus.PENDING, ReminderStatus.QUEUED]
    ).update(status=ReminderStatus.CANCELLED, skip_reason=reason[:64])
    return n


def _differs(instance: SurveyInstance, occ: Occurrence, instrument_id: int) -> bool:
    return (
        instance.instrument_id != instrument_id
        or instance.timezone != occ.timezone
        or instance.opens_at != occ.opens_at
        or instance.closes_at != occ.closes_at
        or instance.grace_until != occ.grace_until
    )


@transaction.atomic
def survey_instances_plan(*, participant: Participant, reason: str = "planned", now=None) -> PlanResult:
    now = now or timezone.now()
    # Serialise planning per participant (consent, randomisation and a zone change may race).
    participant = Participant.objects.select_for_update().select_related("trial").get(pk=participant.pk)
    if participant.status == ParticipantStatus.WITHDRAWN and participant.withdrawal_scope == WithdrawalScope.ALL:
        return PlanResult(created=0, cancelled=0)
    if participant.status in (ParticipantStatus.SCREEN_FAILED, ParticipantStatus.COMPLETED):
        return PlanResult(created=0, cancelled=0)  # nothing to plan: never started, or finished the study
    version = protocol_version_current(participant.trial_id)
    protocol = protocol_of_version(version)
    anchors = _anchors(participant)
    desired: dict[tuple[str, int], Occurrence] = {}
    for event in protocol.schedule:
        if event.anchor not in anchors:
            continue
        anchor_at, anchor_date = anchors[event.anchor]
        for occ in plan_event(
            event=event, anchor_at=anchor_at, anchor_date=anchor_date, zone_name=participant.timezone
        ):
            desired[(occ.schedule_key, occ.study_day)] = occ
    versions = {i.slug: i.version for i in protocol.instruments}
    q = Q()
    for slug, v in versions.items():
        q |= Q(slug=slug, version=v)
    instruments = {i.slug: i.pk for i in Instrument.objects.filter(q, trial_id=participant.trial_id)}

    live = {
        (i.schedule_key, i.study_day): i
        for i in SurveyInstance.objects.filter(participant=participant).exclude(status=InstanceStatus.CANCELLED)
    }
    replace: set[tuple[str, int]] = set()
    for key, inst in live.items():
        if inst.status != InstanceStatus.SCHEDULED or inst.opens_at <= now:
            continue  # opened, answered or missed: history
        occ = desired.get(key)
        if occ is None or _differs(inst, occ, instruments[occ.instrument]):
            replace.add(key)
    cancelled = _cancel([live[k].pk for k in replace], reason=reason, now=now)

    block_new = consent_status(participant=participant).needs_consent
    new = []
    for key, occ in desired.items():
        if key in live and key not in replace:
            continue
        if occ.closes_at <= now:
            continue
        if key not in live and block_new:
            continue
        inst = instance_from_occurrence(
            participant=participant, occurrence=occ, instrument_id=instruments[occ.instrument], version=version, now=now
        )
        # Field validation here; the named DB constraints (one live instance per occurrence, window order)
        # are the last line of defence for the bulk insert.
        inst.full_clean(
            exclude=["participant", "instrument", "protocol_version"], validate_unique=False, validate_constraints=False
        )
        new.append(inst)
    SurveyInstance.objects.bulk_create(new)
    return PlanResult(created=len(new), cancelled=cancelled)


def instance_from_occurrence(
    *, participant: Participant, occurrence: Occurrence, instrument_id: int, version, now: datetime, dose=None
) -> SurveyInstance:
    """The (unsaved) survey instance of a planned occurrence, created at `now` under protocol `version`; `dose`:
    the logged dose that opened an `after_dose` occurrence. The one construction for the schedule's instances
    (`survey_instances_plan`) and the dose-anchored ones (`kits.dose_instances_open`)."""
    return SurveyInstance(
        participant=participant,
        instrument_id=instrument_id,
        schedule_key=occurrence.schedule_key,
        study_day=occurrence.study_day,
        timezone=occurrence.timezone,
        local_date=occurrence.local_date,
        local_time=occurrence.local_time,
        opens_at=occurrence.opens_at,
        closes_at=occurrence.closes_at,
        grace_until=occurrence.grace_until,
        protocol_version=version,
        created_at=now,
        dose=dose,
    )


@transaction.atomic
def survey_instances_cancel_future(*, participant: Participant, reason: str, now=None) -> int:
    """Cancel every instance not yet answered whose answer period has not ended (withdrawal, scope all)."""
    now = now or timezone.now()
    ids = list(
        SurveyInstance.objects.select_for_update()
        .filter(participant=participant, status=InstanceStatus.SCHEDULED, grace_until__gt=now)
        .values_list("pk", flat=True)
    )
    return _cancel(ids, reason=reason, now=now)


def survey_instances_replan_trial(*, trial, reason: str, now=None) -> int:
    """After an amendment: re-plan the future of every participant still being followed."""
    changed = 0
    active = Participant.objects.filter(trial=trial).exclude(
        status__in=[ParticipantStatus.SCREEN_FAILED, ParticipantStatus.COMPLETED]
    )
    for participant in active.order_by("pk"):
        result = survey_instances_plan(participant=participant, reason=reason, now=now)
        changed += result.created + result.cancelled
    return changed


END_OF_STUDY_BATCH = 200


def participants_complete_finished(*, now=None) -> int:
    """Beat: end of study. A randomised participant whose schedule is complete becomes COMPLETED, with
    `completed_on` = their local date (not the UTC one). Complete means: they have survey instances, none is
    still scheduled with its answer period ahead (grace_until > now), and their consent is in force (a
    participant held back by a re-consent has occurrences not yet created). Idempotent: only `randomised`
    rows are claimed, under SKIP LOCKED, so a second sweep or a concurrent one changes nothing.
    Returns how many participants were completed."""
    from django.db.models import Exists, OuterRef

    now = now or timezone.now()
    instances = SurveyInstance.objects.filter(participant=OuterRef("pk"))
    pending = instances.filter(status=InstanceStatus.SCHEDULED, grace_until__gt=now)
    done = 0
    skipped: set[int] = set()  # waiting for a re-consent: not complete, not claimed again in this sweep
    while True:
        with transaction.atomic():
            batch = list(
                Participant.objects.select_for_update(skip_locked=True, of=("self",))
                .filter(status=ParticipantStatus.RANDOMISED, day0__isnull=False)
                .filter(Exists(instances.exclude(status=InstanceStatus.CANCELLED)), ~Exists(pending))
                .exclude(pk__in=skipped)
                .select_related("trial")
                .order_by("pk")[:END_OF_STUDY_BATCH]
            )
            consent = consent_statuses(participants=batch, on_of=lambda p: p.local_date(now))
            by_date: dict = {}  # completed_on (the participant's local date now) → participants
            for participant in batch:
                if consent[participant.pk].needs_consent:
                    skipped.add(participant.pk)
                    continue
                by_date.setdefault(participant.local_date(now), []).append(participant.pk)
            # One UPDATE per local date (a day or two around the world; the audit trigger records each row).
            for completed_on, pks in by_date.items():
                done += Participant.objects.filter(pk__in=pks).update(
                    status=ParticipantStatus.COMPLETED, completed_on=completed_on
                )
        if len(batch) < END_OF_STUDY_BATCH:
            return done


# Participants' workflow steps (called through participants.providers: surveys.provider). They run inside the
# caller's transaction.


def on_consented(*, participant: Participant, **details) -> None:
    survey_instances_plan(participant=participant, reason="consented", now=details.get("now"))


def on_randomised(*, participant: Participant, **details) -> None:
    survey_instances_plan(participant=participant, reason="randomised", now=details.get("now"))


def on_timezone_changed(*, participant: Participant, **details) -> None:
    survey_instances_plan(participant=participant, reason="timezone_changed", now=details.get("now"))


def on_withdrawn(*, participant: Participant, **details) -> None:
    scope = details.get("scope") or participant.withdrawal_scope
    if scope == WithdrawalScope.ALL:
        survey_instances_cancel_future(participant=participant, reason="withdrawn", now=details.get("now"))
