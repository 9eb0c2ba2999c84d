"""Two-site data for the admin tests: participants at LDN and NYC with consent, survey instances, answers,
scores, reminders, doses, side effects, safety alerts, a data query and (for one participant) an allocation.

Built with the factories of each app (participants/tests/factories.py, surveys/tests/factories.py), which write
through the services.
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
    """A participant registered by `coordinator`, consented ten days ago with the baseline surveys answered
    then, `n_instances` past daily prompts (every third answered, the others marked missed by the sweep), one
    upcoming prompt, a dose, a side effect and an open safety alert: all through the services (the factories)."""
    from participants.models import AlertStatus
    from participants.services import safety_alert_raise
    from participants.tests.factories import ConsentFactory, ParticipantFactory
    from surveys.models import InstanceStatus, Reminder, SurveyInstance
    from surveys.reminders.services import instances_mark_missed
    from surveys.services import dose_log_create, side_effect_report
    from surveys.tests.factories import ResponseFactory, SurveyInstanceFactory

    now = now or timezone.now()
    participant = ParticipantFactory(trial=trial, site=site, contact={"name": "A Person"}, registered_by=coordinator)
    consented = now - timedelta(days=10)
    ConsentFactory(participant=participant, at=consented)
    for baseline in SurveyInstance.objects.filter(participant=participant, schedule_key__startswith="baseline"):
        ResponseFactory(instance=baseline, at=consented + timedelta(hours=1))
    for day in range(n_instances):
        opens = now - timedelta(days=n_instances - day, hours=2)
        instance = SurveyInstanceFactory(
            participant=participant, opens_at=opens, schedule_key="daily", study_day=day, grace=timedelta(hours=1)
        )
        Reminder.objects.create(
            instance=instance, stage="open", due_at=opens, status="sent", channel="email", sent_at=opens
        )
        if day % 3 == 0:
            answers = {"mood": 40, "anxiety": 50, "energy": 60, "focus": 55, "dose_taken": True}
            ResponseFactory(instance=instance, answers=answers, at=opens + timedelta(hours=1))
    instances_mark_missed(now=now)
    assert not SurveyInstance.objects.filter(
        participant=participant, schedule_key="daily", status=InstanceStatus.SCHEDULED
    ).exists()
    SurveyInstanceFactory(
        participant=participant,
        opens_at=now + timedelta(hours=3),
        schedule_key="daily",
        study_day=n_instances,
        grace=timedelta(hours=1),
    )
    dose_log_create(participant=participant, idempotency_key=uuid.uuid4(), taken_at=now - timedelta(days=1), now=now)
    side_effect_report(
        participant=participant,
        idempotency_key=uuid.uuid4(),
        started_on=now.date(),
        description="headache",
        severity="mild",
        serious=False,
        ongoing=True,
        now=now,
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


def allocate(participant, *, trial, coordinator=None):
    """Randomise five days ago (participants.services.participant_randomise, the baseline being answered), from
    the trial's generated list; returns the slot."""
    from participants.models import AllocationList
    from participants.services import allocation_list_generate, participant_randomise

    if not AllocationList.objects.filter(trial=trial).exists():
        allocation_list_generate(trial=trial, seed=7, per_stratum=4)
    allocation = participant_randomise(
        participant=participant, user=coordinator or participant.registered_by, now=timezone.now() - timedelta(days=5)
    )
    participant.refresh_from_db()
    return allocation.slot


def _flat(text: str) -> str:
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", text))).strip()


def arm_leaks(html: str, *, benign: list[str]) -> list[str]:
    """Arm names on a page once texts that legitimately mention them (trial title, consent text) are removed."""
    text = _flat(html)
    for known in benign:
        text = text.replace(_flat(known), "")
    text = re.sub(r"placebo-controlled", "", text, flags=re.IGNORECASE)
    return [name for name in ARM_NAMES if re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", text, re.IGNORECASE)]
