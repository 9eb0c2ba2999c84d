"""Dose-anchored surveys (`after_dose`): a logged dose opens exactly one instance per entry, however often the
dose is replayed or synced; reminders come due as for any instance; a late-logged dose opens nothing."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from surveys.models import DoseLog, Reminder, SurveyInstance
from surveys.reminders.services import reminders_plan_due

from .factories import auth
from .kit_helpers import load_self_blinding_trial, randomised_participant

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _at_midday(midday):
    """Events hours or days before "now" through the API: the clock at 12:00 UTC (conftest.midday)."""


@pytest.fixture
def dosed(api_client):
    trial, site = load_self_blinding_trial()
    participant, key = randomised_participant(trial=trial, site=site, randomised_at=timezone.now() - timedelta(days=3))
    auth(api_client, key)
    api_client.participant = participant
    return api_client


def test_a_dose_synced_twice_opens_one_dose_anchored_survey(dosed):
    participant = dosed.participant
    taken = timezone.now() - timedelta(minutes=10)
    key = str(uuid.uuid4())
    body = {"taken_at": taken.isoformat(), "note": "morning capsule"}
    r = dosed.post("/api/v1/doses", body, format="json", HTTP_IDEMPOTENCY_KEY=key)
    assert r.status_code == 201, r.content
    # The same dose replayed on the endpoint and twice through /sync (the offline queue flushed twice).
    assert dosed.post("/api/v1/doses", body, format="json", HTTP_IDEMPOTENCY_KEY=key).status_code == 200
    for _ in range(2):
        s = dosed.post("/api/v1/sync", {"items": [{"kind": "dose", "idempotency_key": key, **body}]}, format="json")
        assert s.status_code == 200, s.content
    assert DoseLog.objects.filter(participant=participant).count() == 1
    acute = SurveyInstance.objects.get(participant=participant, schedule_key="acute")
    dose = DoseLog.objects.get(participant=participant)
    assert acute.dose_id == dose.pk and acute.study_day == dose.study_day == 3
    assert acute.opens_at == taken + timedelta(minutes=90)
    assert acute.closes_at == acute.grace_until == taken + timedelta(minutes=210)
    assert acute.timezone == "Europe/London" and acute.local_date == acute.opens_at.astimezone(participant.zone).date()

    # It is listed to the phone once open, and reminded like any other instance.
    at_open = acute.opens_at + timedelta(minutes=1)
    reminders_plan_due(now=at_open)
    assert list(Reminder.objects.filter(instance=acute).values_list("stage", flat=True)) == ["at_open"]

    # A second dose the same day opens a second instance (one per dose, not per day).
    r = dosed.post(
        "/api/v1/doses",
        {"taken_at": (taken + timedelta(minutes=5)).isoformat()},
        format="json",
        HTTP_IDEMPOTENCY_KEY=str(uuid.uuid4()),
    )
    assert r.status_code == 201
    assert SurveyInstance.objects.filter(participant=participant, schedule_key="acute").count() == 2


def test_the_database_refuses_a_second_instance_for_the_same_dose(dosed):
    from django.db import IntegrityError, transaction

    dosed.post(
        "/api/v1/doses", {"taken_at": timezone.now().isoformat()}, format="json", HTTP_IDEMPOTENCY_KEY=str(uuid.uuid4())
    )
    acute = SurveyInstance.objects.get(participant=dosed.participant, schedule_key="acute")
    acute.pk = None
    acute.uuid = uuid.uuid4()
    with pytest.raises(IntegrityError), transaction.atomic():
        acute.save()


def test_a_dose_logged_after_its_window_opens_nothing(dosed):
    r = dosed.post(
        "/api/v1/doses",
        {"taken_at": (timezone.now() - timedelta(hours=5)).isoformat()},
        format="json",
        HTTP_IDEMPOTENCY_KEY=str(uuid.uuid4()),
    )
    assert r.status_code == 201
    assert DoseLog.objects.filter(participant=dosed.participant).exists()
    assert not SurveyInstance.objects.filter(participant=dosed.participant, schedule_key="acute").exists()
