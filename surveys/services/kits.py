"""Self-blinding envelopes and dose-anchored surveys, on the surveys side.

- A `kit_code` item in any instrument records the period's envelope when the response is stored (in the same
  transaction: a refused code refuses the response, field `answers.<item>`). In the instrument of the protocol's
  self-blinding schedule the period is that instance's occurrence (1st, 2nd, …); elsewhere the current period.
- `POST /api/v1/kit` records a code on its own (scanned from the envelope's QR code): `kit_code_submit`. When the
  period's kit survey is open and asks nothing else, it is answered with the code too, so its reminders stop.
- A kit survey missed (its window and grace closed) without an envelope for its period raises a coordinator
  task `kit_code_missing` (through the outbox, with the missed mark; once per instance).
- `after_dose` schedule entries: `dose_instances_open` opens one instance per logged dose and entry (DB unique
  on (dose, schedule key)); it runs inside the dose write, so a replay or a second sync never opens another.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from participants.models import Participant
from participants.services.errors import WorkflowError
from participants.services.kits import (
    KitCodeRefused,
    kit_code_format,
    kit_envelope_correct,
    kit_envelope_correction_problem,
    kit_envelope_record,
    kit_period_of,
)
from trialsite.protocol.schema import Protocol
from trialsite.protocol.services import protocol_current

from ..errors import InvalidInput, SurveyError
from ..models import (
    CoordinatorTask,
    CoordinatorTaskKind,
    DoseLog,
    InstanceStatus,
    Response,
    SurveyInstance,
)
from ..protocol import protocol_version_current
from ..scheduling import plan_after_dose
from .idempotency import WriteResult, idempotent_write
from .schedule import instance_from_occurrence

KIT_CODE_MISSING_CHECK = "surveys.kit_code_missing_check"


def kit_items(definition: dict) -> list[str]:
    return [i["key"] for i in definition.get("items", []) if i.get("type") == "kit_code"]


def _instance_period(protocol: Protocol, instance: SurveyInstance) -> int | None:
    """The period a kit survey of the self-blinding schedule stands for; None for any other instance."""
    sb = protocol.self_blinding
    if sb is None or instance.schedule_key != sb.schedule:
        return None
    starts = protocol.period_start_days()
    return starts.index(instance.study_day) + 1 if instance.study_day in starts else None


def _as_survey_error(exc: WorkflowError, field: str) -> SurveyError:
    if isinstance(exc, KitCodeRefused):
        return InvalidInput(exc.message, fields={field: [exc.message]})
    return SurveyError(exc.message, code=exc.code, status=exc.status)


def kit_answers_record(
    *, participant: Participant, instance: SurveyInstance, protocol: Protocol, answers: dict, source: str, now
) -> None:
    """Inside the response's transaction: record the envelope of each kit_code answer."""
    for key in kit_items(instance.instrument.definition):
        code = answers.get(key)
        if code is None:
            continue
        try:
            kit_envelope_record(
                participant=participant,
                code=code,
                period=_instance_period(protocol, instance),
                source="response" if source == "api" else source,
                now=now,
            )
        except WorkflowError as exc:
            raise _as_survey_error(exc, f"answers.{key}") from exc


def _kit_answer_correction(response: Response, item_key: str, old, new) -> dict | None:
    """The envelope correction a corrected answer implies (None when the item is no kit_code item)."""
    if item_key not in kit_items(response.instrument.definition):
        return None
    participant = response.participant
    protocol = protocol_current(participant.trial_id)
    period = _instance_period(protocol, response.instance)
    if period is None and protocol.self_blinding is not None:
        period = kit_period_of(participant=participant, at=response.received_at) or None
    return {"participant": participant, "old_code": old, "new_code": new, "period": period}


def kit_answer_correction_problem(*, response: Response, item_key: str, old, new) -> str | None:
    """Why a corrected kit_code answer cannot be recorded as the period's envelope, or None."""
    change = _kit_answer_correction(response, item_key, old, new)
    return kit_envelope_correction_problem(**change) if change else None


def kit_answer_correct(*, response: Response, item_key: str, old, new, actor, now) -> None:
    """Inside a correction's transaction: a corrected `kit_code` answer moves the period's envelope record with it
    (refused as on the phone: wrong, foreign, reused; raised as ValidationError on `value`)."""
    from django.core.exceptions import ValidationError

    change = _kit_answer_correction(response, item_key, old, new)
    if change is None:
        return
    try:
        kit_envelope_correct(**change, actor=actor, now=now)
    except KitCodeRefused as exc:
        raise ValidationError({"value": [exc.message]}) from exc


def kit_body(envelope, *, instance: SurveyInstance | None) -> dict:
    return {
        "id": str(envelope.uuid),
        "code": kit_code_format(envelope.code),
        "period": envelope.period,
        "recorded_at": envelope.recorded_at.isoformat().replace("+00:00", "Z"),
        "survey": str(instance.uuid) if instance is not None else None,
    }


def kit_code_submit(
    *, participant: Participant, idempotency_key: uuid.UUID, code: Any, period: int | None = None, now=None
) -> WriteResult:
    """Record the envelope of a period from the phone (once per key: a replay returns the first answer, 200)."""
    from .responses import survey_response_submit

    now = now or timezone.now()

    def perform() -> dict:
        from .responses import _require_active

        _require_active(participant)
        try:
            recorded = kit_envelope_record(participant=participant, code=code, period=period, source="api", now=now)
        except WorkflowError as exc:
            raise _as_survey_error(exc, "code") from exc
        envelope = recorded.envelope
        _, protocol = protocol_version_current(participant.trial_id)
        starts = protocol.period_start_days()
        survey = (
            SurveyInstance.objects.select_related("instrument")
            .filter(
                participant=participant,
                schedule_key=protocol.self_blinding.schedule,
                study_day=starts[envelope.period - 1],
                status=InstanceStatus.SCHEDULED,
                opens_at__lte=now,
                grace_until__gte=now,
            )
            .first()
        )
        items = survey.instrument.definition["items"] if survey is not None else []
        asks_only_code = survey is not None and all(
            i["type"] == "kit_code" or not i.get("required", True) for i in items
        )
        if asks_only_code and not Response.objects.filter(instance=survey).exists():
            (key,) = kit_items(survey.instrument.definition)
            survey_response_submit(
                participant=participant,
                instance_id=survey.uuid,
                idempotency_key=uuid.uuid5(idempotency_key, "kit-survey"),
                answers={key: envelope.code},
                authored=now,
                source="kit",
                now=now,
            )
        else:
            survey = None
        return kit_body(envelope, instance=survey)

    payload = {"code": code if isinstance(code, str) else repr(code), "period": period}
    return idempotent_write(participant=participant, key=idempotency_key, kind="kit", payload=payload, perform=perform)


def kit_missing_checks(rows: list[tuple[int, int]], protocol_of_version) -> list[tuple[str, dict]]:
    """Outbox items for missed instances of a self-blinding schedule ((instance id, protocol version id) rows)."""
    from ..models import SurveyInstance as SI

    keys = {}
    for _, version_id in rows:
        if version_id not in keys:
            sb = protocol_of_version(version_id).self_blinding
            keys[version_id] = sb.schedule if sb else None
    wanted = [pk for pk, v in rows if keys.get(v)]
    if not wanted:
        return []
    hits = SI.objects.filter(pk__in=wanted).values_list("pk", "schedule_key", "protocol_version_id")
    return [(f"kit_code_missing:{pk}", {"instance_id": pk}) for pk, key, version in hits if key == keys.get(version)]


@transaction.atomic
def coordinator_task_raise_for_kit(*, instance_id: int, now: datetime | None = None) -> CoordinatorTask | None:
    """Outbox handler: a missed kit survey whose period has no envelope recorded → a coordinator task (once)."""
    from participants.kit_models import KitEnvelope

    from ..reminders.services import protocol_of

    now = now or timezone.now()
    instance = SurveyInstance.objects.select_related("participant").get(pk=instance_id)
    protocol = protocol_of(instance)
    period = _instance_period(protocol, instance)
    if period is None or instance.status != InstanceStatus.MISSED:
        return None
    if KitEnvelope.objects.filter(participant_id=instance.participant_id, period=period).exists():
        return None
    task, _ = CoordinatorTask.objects.get_or_create(
        participant_id=instance.participant_id,
        kind=CoordinatorTaskKind.KIT_CODE_MISSING,
        trigger_instance=instance,
        defaults={
            "title": f"{instance.participant.study_id}: envelope code of period {period} not recorded",
            "details": {"period": period, "closed_at": instance.closes_at.isoformat()},
            "created_at": now,
        },
    )
    return task


def kit_code_missing_check_run(payload: dict) -> None:
    coordinator_task_raise_for_kit(instance_id=payload["instance_id"])


# --- dose-anchored surveys -------------------------------------------------------------------------------------


def dose_instances_open(*, participant: Participant, dose: DoseLog, now: datetime) -> list[SurveyInstance]:
    """Open the `after_dose` instances of a dose just logged (inside its transaction). An instance whose window
    has already closed (a dose logged late) is not opened; nothing opens before day 0 or after a withdrawal. The
    rule is the pure `surveys.scheduling.plan_after_dose` (the simulator plans with it too)."""
    if participant.is_withdrawn or dose.study_day is None:
        return []  # (plan_after_dose's own rule; checked first to spare the protocol look-up)
    version, protocol = protocol_version_current(participant.trial_id)
    from ..models import Instrument

    new = []
    for event, occ in plan_after_dose(
        schedule=protocol.schedule,
        taken_at=dose.taken_at,
        study_day=dose.study_day,
        zone_name=participant.timezone,
        withdrawn=participant.is_withdrawn,
        now=now,
    ):
        instrument = Instrument.objects.get(
            trial_id=participant.trial_id, slug=event.instrument, version=protocol.instrument(event.instrument).version
        )
        new.append(
            instance_from_occurrence(
                participant=participant,
                occurrence=occ,
                instrument_id=instrument.pk,
                version=version,
                now=now,
                dose=dose,
            )
        )
    # The unique (dose, schedule key) constraint is the guarantee; a conflicting row is simply not inserted.
    return SurveyInstance.objects.bulk_create(new, ignore_conflicts=True)
