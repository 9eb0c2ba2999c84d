"""Phone writes: survey responses, dose logs, side effects and prompt telemetry."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

from django.db import IntegrityError, transaction
from django.utils import timezone

from participants.models import Participant
from participants.selectors import consent_status, consent_status_of
from trialsite import policy
from trialsite.protocol.services import protocol_current, protocol_of_version

from ..errors import IdempotencyMismatch, InvalidInput, NotFound, SurveyError
from ..models import DoseLog, InstanceStatus, ItemAnswer, PromptEvent, Response, Score, SideEffect, SurveyInstance
from ..safety import raise_alerts, rules_fired_for_response
from ..scoring import score_answers
from ..validation import validate_answers
from .idempotency import (
    WriteResult,
    idempotency_lookup,
    idempotent_write,
    request_hash,
)
from .kits import dose_instances_open, kit_answer_correct, kit_answer_correction_problem, kit_answers_record
from .side_effects import side_effect_safety_rules_run
from .submission import instrument_plan, submission_lock, submission_write

# Authored times are kept as sent; one further in the future than this, or earlier than the instance's
# opening by more than this, is flagged as clock skew (not refused: the answer is still the answer).
CLOCK_SKEW_TOLERANCE = timedelta(minutes=10)
# Dose and side-effect reports dated this far in the past are flagged too.
FAR_PAST = timedelta(days=120)


def _require_active(participant: Participant, *, consent=None) -> None:
    """Writes need unlocked data, consent in force and no withdrawal from data collection. The lock is read from
    the participant the request authenticated as (loaded per request): a lock is a 409 `conflict` saying why."""
    locked = policy.locked_reason(participant)
    if locked:
        raise SurveyError(locked, code="conflict")
    if participant.is_withdrawn:
        raise SurveyError("The participant has withdrawn from the study.", code="withdrawn")
    status = consent if consent is not None else consent_status(participant=participant)
    if not status.has_consented or status.needs_consent:
        raise SurveyError("Consent to the current information sheet is needed first.", code="not_consented")


def _study_day(participant: Participant, at: datetime) -> int | None:
    return participant.study_day(at)


def answer_columns(value: Any) -> dict:
    return {
        "value": value,
        "value_numeric": float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None,
        "value_text": value if isinstance(value, str) else "",
    }


def _score_columns(score) -> dict:
    return {"value": score.value, "band": score.band, "scored": score.scored, "items_missing": score.items_missing}


def response_body(response: Response, instance: SurveyInstance) -> dict:
    return {
        "id": str(response.uuid),
        "instance": str(instance.uuid),
        "received_at": response.received_at.isoformat().replace("+00:00", "Z"),
        "late": response.late,
    }


def survey_response_submit(
    *,
    participant: Participant,
    instance_id: UUID,
    idempotency_key: UUID,
    answers: Any,
    authored: datetime,
    source: str = "api",
    now: datetime | None = None,
) -> WriteResult:
    """Store the answer to one survey instance, score it and raise safety alerts, once per key.

    Refusals (SurveyError codes): not_found, idempotency_mismatch, conflict (answered with another key,
    or cancelled), window_not_open, window_closed (after the grace period), withdrawn, not_consented,
    validation_error (per-item fields `answers.<key>`).
    """
    if authored.tzinfo is None:
        raise InvalidInput("authored needs an offset.", fields={"authored": ["A timestamp with an offset is needed."]})
    digest = request_hash({"instance": str(instance_id), "answers": answers, "authored": authored.isoformat()})
    # A replay is answered under the instance's lock (one lookup, no separate fast path: most writes are new).
    try:
        return _submit(
            participant=participant,
            instance_id=instance_id,
            key=idempotency_key,
            digest=digest,
            answers=answers,
            authored=authored,
            source=source,
            now=now,
        )
    except IntegrityError:
        # Only reachable when the same key was used concurrently for two different instances.
        replay = idempotency_lookup(participant=participant, key=idempotency_key, kind="response", digest=digest)
        if replay is not None:
            return replay
        raise SurveyError("This survey has already been answered.", code="conflict")


@transaction.atomic
def _submit(*, participant, instance_id, key, digest, answers, authored, source, now) -> WriteResult:
    # One statement: the instance FOR UPDATE, the trial's current protocol version, the key's record, the consent.
    locked = submission_lock(participant=participant, instance_id=instance_id, key=key)
    if locked is None:
        raise NotFound("No such survey instance.")
    replay = locked.replay
    if replay is None and locked.status == InstanceStatus.COMPLETED:
        # A concurrent request may have committed while this one waited for the lock: its record is not in the
        # locking statement's snapshot, so ask again (a new statement sees it) before calling this a conflict.
        found = idempotency_lookup(participant=participant, key=key, kind="response", digest=digest)
        if found is not None:
            return found
    if replay is not None:
        kind, recorded_digest, body = replay
        if kind != "response" or recorded_digest != digest:
            raise IdempotencyMismatch()
        return WriteResult(body=body, created=False)
    now = now or timezone.now()
    consent = consent_status_of(
        documents=locked.consent_documents, signatures=locked.consent_signatures, on=participant.local_date()
    )
    _require_active(participant, consent=consent)
    # An answered instance is `completed`; a response stored any other way still makes the insert below fail on
    # the one-response-per-instance constraint, which the caller answers as the same conflict.
    if locked.status == InstanceStatus.COMPLETED:
        raise SurveyError("This survey has already been answered.", code="conflict")
    if locked.status == InstanceStatus.CANCELLED:
        raise SurveyError("This survey was cancelled.", code="conflict")
    if now < locked.opens_at:
        raise SurveyError("This survey is not open yet.", code="window_not_open")
    if now > locked.grace_until:
        raise SurveyError("This survey has closed.", code="window_closed")
    instrument = instrument_plan(locked.instrument_id)  # parsed once per instrument version
    definition = instrument.definition
    result = validate_answers(definition, answers)
    if not result.ok:
        raise InvalidInput("Some answers are not valid.", fields=result.errors)
    if locked.current_version_id is None:  # no pointer yet: ask the protocol versions
        protocol = protocol_current(participant.trial_id)
    else:
        protocol = protocol_of_version(locked.current_version_id)  # parsed once per version
    if instrument.kit_items:
        # Envelope codes (kit_code items) are recorded with the response, or refuse it (answers.<item>).
        instance = SurveyInstance(
            pk=locked.pk,
            uuid=locked.uuid,
            instrument=instrument.row,
            schedule_key=locked.schedule_key,
            study_day=locked.study_day,
        )
        kit_answers_record(
            participant=participant,
            instance=instance,
            protocol=protocol,
            answers=result.answers,
            source=source,
            now=now,
        )
    skew = authored > now + CLOCK_SKEW_TOLERANCE or authored < locked.opens_at - CLOCK_SKEW_TOLERANCE
    offset = authored.utcoffset()
    response_uuid = uuid4()
    late = now > locked.closes_at
    scores = score_answers(definition, result.answers)
    body = {
        "id": str(response_uuid),
        "instance": str(locked.uuid),
        "received_at": now.isoformat().replace("+00:00", "Z"),
        "late": late,
    }
    submission_write(
        response={
            "uuid": response_uuid,
            "instance": locked.pk,
            "participant": participant.pk,
            "instrument": locked.instrument_id,
            "idempotency_key": key,
            "request_hash": digest,
            "answers": result.answers,
            "authored_at": authored,
            "authored_offset_minutes": int(offset.total_seconds() // 60) if offset else 0,
            "received_at": now,
            "late": late,
            "clock_skew": skew,
            "study_day": _study_day(participant, now if skew else authored),
            "source": source,
            "locked": False,
        },
        items=[{"key": k, **_item_columns(v)} for k, v in result.answers.items()],
        scores=[_score_row(s) for s in scores],
        status=InstanceStatus.COMPLETED,
        body=body,
        kind="response",
    )
    fired = rules_fired_for_response(
        protocol=protocol,
        instrument=instrument.row.slug,
        answers=result.answers,
        scores={s.key: s.value for s in scores},
    )
    if fired:
        raise_alerts(participant=participant, fired=fired, source_kind="response", source_id=body["id"], now=now)
    return WriteResult(body=body, created=True)


def _item_columns(value: Any) -> dict:
    columns = answer_columns(value)
    return {"value": columns["value"], "num": columns["value_numeric"], "txt": columns["value_text"]}


def _score_row(score) -> dict:
    return {
        "key": score.key,
        "value": score.value,
        "band": score.band,
        "scored": score.scored,
        "missing": score.items_missing,
    }


def dose_body(dose: DoseLog) -> dict:
    return {
        "id": str(dose.uuid),
        "taken_at": dose.taken_at.isoformat(),
        "unit_code": dose.unit_code,
        "note": dose.note,
        "study_day": dose.study_day,
        "received_at": dose.received_at.isoformat(),
    }


def dose_log_create(
    *,
    participant: Participant,
    idempotency_key: UUID,
    taken_at: datetime,
    unit_code: str = "",
    note: str = "",
    now: datetime | None = None,
) -> WriteResult:
    if taken_at.tzinfo is None:
        raise InvalidInput("taken_at needs an offset.", fields={"taken_at": ["A timestamp with an offset is needed."]})
    now = now or timezone.now()
    if taken_at > now + CLOCK_SKEW_TOLERANCE:
        raise InvalidInput("A dose cannot be logged in the future.", fields={"taken_at": ["In the future."]})

    def perform() -> dict:
        _require_active(participant)
        dose = DoseLog(
            participant=participant,
            taken_at=taken_at,
            unit_code=unit_code or "",
            note=note or "",
            study_day=_study_day(participant, taken_at),
            received_at=now,
            idempotency_key=idempotency_key,
        )
        dose.full_clean(exclude=["participant"], validate_unique=False)
        dose.save()
        dose_instances_open(participant=participant, dose=dose, now=now)  # after_dose entries, once per dose
        return dose_body(dose)

    payload = {"taken_at": taken_at.isoformat(), "unit_code": unit_code or "", "note": note or ""}
    return idempotent_write(participant=participant, key=idempotency_key, kind="dose", payload=payload, perform=perform)


def side_effect_body(se: SideEffect) -> dict:
    return {
        "id": str(se.uuid),
        "started_on": se.started_on.isoformat(),
        "description": se.description,
        "severity": se.severity,
        "serious": se.serious,
        "ongoing": se.ongoing,
        "reported_at": se.reported_at.isoformat(),
    }


def side_effect_report(
    *,
    participant: Participant,
    idempotency_key: UUID,
    started_on: date,
    description: str,
    severity: str,
    serious: bool,
    ongoing: bool,
    now: datetime | None = None,
) -> WriteResult:
    """A participant-reported adverse event; the protocol's side-effect safety rules (serious → alert) fire
    in the same transaction."""
    now = now or timezone.now()
    local_today = now.astimezone(participant.zone).date()
    if started_on > local_today + timedelta(days=1):
        raise InvalidInput("The start date is in the future.", fields={"started_on": ["In the future."]})

    def perform() -> dict:
        _require_active(participant)
        se = SideEffect(
            participant=participant,
            started_on=started_on,
            description=description,
            severity=severity,
            serious=serious,
            ongoing=ongoing,
            reported_at=now,
            study_day=_study_day(participant, now),  # the day it was reported (the export's `study_day`)
            idempotency_key=idempotency_key,
        )
        se.full_clean(exclude=["participant"], validate_unique=False)
        se.save()
        side_effect_safety_rules_run(side_effect=se, now=now)
        return side_effect_body(se)

    payload = {
        "started_on": started_on.isoformat(),
        "description": description,
        "severity": severity,
        "serious": serious,
        "ongoing": ongoing,
    }
    return idempotent_write(
        participant=participant, key=idempotency_key, kind="side_effect", payload=payload, perform=perform
    )


@transaction.atomic
def prompt_event_record(
    *, participant: Participant, instance_id: UUID, kind: str, at: datetime, now: datetime | None = None
) -> None:
    """Record phone telemetry (delivered / opened). The first report of each kind counts; repeats (and
    retries) are accepted and ignored (INSERT ... ON CONFLICT DO NOTHING on the unique constraint)."""
    if at.tzinfo is None:
        raise InvalidInput("at needs an offset.", fields={"at": ["A timestamp with an offset is needed."]})
    instance = SurveyInstance.objects.filter(participant=participant, uuid=instance_id).only("pk").first()
    if instance is None:
        raise NotFound("No such survey instance.", fields={"instance": ["Not found."]})
    event = PromptEvent(instance=instance, kind=kind, at=at, received_at=now or timezone.now())
    event.full_clean(exclude=["instance"], validate_unique=False, validate_constraints=False)
    PromptEvent.objects.bulk_create([event], ignore_conflicts=True)


def item_answer_correction_check(*, response: Response, item_key: str, value: Any):
    """The response's answers with one value corrected, validated against the response's instrument version."""
    answers = dict(response.answers)
    if value is None:
        answers.pop(item_key, None)
    else:
        answers[item_key] = value
    result = validate_answers(response.instrument.definition, answers)
    if result.ok:  # a kit_code answer must also be recordable as the period's envelope
        problem = kit_answer_correction_problem(
            response=response, item_key=item_key, old=response.answers.get(item_key), new=value
        )
        if problem:
            result.errors.setdefault(item_key, []).append(problem)
    return result


@transaction.atomic
def item_answer_correct(*, item_answer: ItemAnswer, value: Any, actor, reason: str, now=None) -> ItemAnswer:
    """Data management corrects one submitted answer: validated against the response's own instrument
    version, the response's answers and scores recomputed, safety rules re-run on the corrected answers
    (an alert is raised at most once per rule and response), all with the reason in the audit trail."""
    from django.core.exceptions import ValidationError

    from trialsite.audit import audit_context, require_reason

    reason = require_reason(reason)
    response = (
        Response.objects.select_for_update(of=("self",))
        .select_related("instrument", "participant", "instance__instrument")
        .get(pk=item_answer.response_id)
    )
    policy.require(actor, policy.ANSWER_CORRECT, response)
    locked = policy.locked_reason(response) or policy.locked_reason(response.participant)
    if locked:
        raise ValidationError({"value": [locked]})
    definition = response.instrument.definition
    result = item_answer_correction_check(response=response, item_key=item_answer.item_key, value=value)
    if not result.ok:
        raise ValidationError({"value": [m for messages in result.errors.values() for m in messages]})
    with audit_context(user=actor, reason=reason):
        row = ItemAnswer.objects.select_for_update().get(pk=item_answer.pk)
        kit_answer_correct(
            response=response,
            item_key=row.item_key,
            old=response.answers.get(row.item_key),
            new=result.answers.get(row.item_key),
            actor=actor,
            now=now or timezone.now(),
        )
        for field_name, field_value in answer_columns(result.answers.get(row.item_key)).items():
            setattr(row, field_name, field_value)
        row.save(update_fields=["value", "value_numeric", "value_text"])
        response.answers = result.answers
        response.save(update_fields=["answers"])
        scores = score_answers(definition, result.answers)
        for s in scores:
            Score.objects.update_or_create(response=response, key=s.key, defaults=_score_columns(s))
        fired = rules_fired_for_response(
            protocol=protocol_current(response.participant.trial_id),
            instrument=response.instance.instrument.slug,
            answers=result.answers,
            scores={s.key: s.value for s in scores},
        )
        if fired:
            raise_alerts(
                participant=response.participant,
                fired=fired,
                source_kind="response",
                source_id=str(response.uuid),
                now=now or timezone.now(),
            )
    return row
