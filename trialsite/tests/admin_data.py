"""Two-site data for the admin tests: participants at LDN and NYC with consent, survey instances, answers,
scores, reminders, doses, side effects, safety alerts, a data query and (for one participant) an allocation.

Survey rows are built directly (their services belong to the surveys app); participant rows go through
participants.services.
"""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from html import unescape

from django.utils import timezone

ROLES_AT_LDN = ("coordinator", "safety_physician")
TRIAL_WIDE = ("trial_manager", "data_manager", "monitor", "statistician", "unblinded_statistician")
ARM_NAMES = ("psilocybin micro-dose", "placebo")  # protocols/microdose-mood.yaml


def add_participant(*, trial, site, coordinator, n_instances: int = 3, now=None):
    from participants.models import AlertStatus, ConsentDocument, ConsentSignature
    from participants.services import participant_register, safety_alert_raise
    from surveys.models import (
        DoseLog,
        InstanceStatus,
        Instrument,
        ItemAnswer,
        Reminder,
        Response,
        Score,
        SideEffect,
        SurveyInstance,
    )

    now = now or timezone.now()
    eligibility = {
        c: True
        for c in ["adult", "no_psychosis_history", "no_lithium_or_tramadol", "not_pregnant", "no_cardiac_condition"]
    }
    participant, _code = participant_register(
        trial=trial,
        site=site,
        tz=site.timezone,
        eligibility=eligibility,
        contact={"name": "A Person"},
        user=coordinator,
    )
    document = ConsentDocument.objects.filter(trial=trial).order_by("valid_from").first()
    ConsentSignature.objects.create(
        participant=participant,
        document=document,
        method="electronic",
        sha256=document.sha256,
        typed_name="A Person",
        signed_at=now - timedelta(days=10),
    )
    instrument = Instrument.objects.filter(trial=trial, slug="daily-mood").order_by("-version").first()
    version = trial.current_protocol
    for day in range(n_instances):
        opens = now - timedelta(days=n_instances - day, hours=2)
        status = InstanceStatus.COMPLETED if day % 3 == 0 else InstanceStatus.MISSED
        instance = SurveyInstance.objects.create(
            participant=participant,
            instrument=instrument,
            schedule_key="daily",
            study_day=day,
            timezone=participant.timezone,
            local_date=opens.date(),
            opens_at=opens,
            closes_at=opens + timedelta(hours=4),
            grace_until=opens + timedelta(hours=5),
            status=status,
            protocol_version=version,
        )
        Reminder.objects.create(
            instance=instance, stage="open", due_at=opens, status="sent", channel="email", sent_at=opens
        )
        if status == InstanceStatus.COMPLETED:
            answers = {"mood": 40, "anxiety": 50, "energy": 60, "focus": 55, "dose_taken": True}
            response = Response.objects.create(
                instance=instance,
                participant=participant,
                instrument=instrument,
                idempotency_key=uuid.uuid4(),
                request_hash="0" * 64,
                answers=answers,
                authored_at=opens + timedelta(hours=1),
                received_at=opens + timedelta(hours=1),
                study_day=day,
            )
            for key, value in answers.items():
                ItemAnswer.objects.create(response=response, item_key=key, value=value)
            Score.objects.create(response=response, key="mood", value=40)
    SurveyInstance.objects.create(
        participant=participant,
        instrument=instrument,
        schedule_key="daily",
        study_day=n_instances,
        timezone=participant.timezone,
        local_date=now.date(),
        opens_at=now + timedelta(hours=3),
        closes_at=now + timedelta(hours=7),
        grace_until=now + timedelta(hours=8),
        protocol_version=version,
    )
    DoseLog.objects.create(
        participant=participant, taken_at=now - timedelta(days=1), idempotency_key=uuid.uuid4(), unit_code=""
    )
    SideEffect.objects.create(
        participant=participant,
        started_on=now.date(),
        description="headache",
        severity="mild",
        idempotency_key=uuid.uuid4(),
    )
    alert = safety_alert_raise(
        participant=participant,
        rule="phq9_item9",
        title="PHQ-9 item 9 above 0",
        severity="high",
        source_kind="response",
        source_id=str(uuid.uuid4()),
        details={"phq9_9": 1},
        now=now,
    )
    assert alert.status == AlertStatus.OPEN
    return participant


def allocate(participant, *, trial):
    """Give the participant a slot of a generated list (what randomisation does), directly."""
    from participants.models import Allocation, AllocationList, AllocationSlot, ParticipantStatus
    from participants.services import allocation_list_generate

    if not AllocationList.objects.filter(trial=trial).exists():
        allocation_list_generate(trial=trial, seed=7, per_stratum=4)
    slot = AllocationSlot.objects.filter(taken=False).order_by("id").first()
    slot.taken = True
    slot.save(update_fields=["taken"])
    Allocation.objects.create(participant=participant, slot=slot)
    now = timezone.now()
    participant.status = ParticipantStatus.RANDOMISED
    participant.randomised_at = now - timedelta(days=5)
    participant.day0 = (now - timedelta(days=5)).date()
    participant.save(update_fields=["status", "randomised_at", "day0"])
    return slot


def _flat(text: str) -> str:
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", text))).strip()


def arm_leaks(html: str, *, benign: list[str]) -> list[str]:
    """Arm names on a page once texts that legitimately mention them (trial title, consent text) are removed."""
    text = _flat(html)
    for known in benign:
        text = text.replace(_flat(known), "")
    text = re.sub(r"placebo-controlled", "", text, flags=re.IGNORECASE)
    return [name for name in ARM_NAMES if re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", text, re.IGNORECASE)]
