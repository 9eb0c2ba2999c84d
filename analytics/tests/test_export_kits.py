"""The export of dose-anchored surveys and dose days: every schedule row says whether its day (the instance's
local date, in the participant's zone) was a dose day from the dose log, and which dose opened a dose-anchored
instance; the codebook describes both."""

from __future__ import annotations

import csv
import io
import uuid
import zipfile
from datetime import timedelta

import pytest
from django.utils import timezone

from analytics.export import write_bundle
from surveys.services import dose_log_create
from surveys.tests.kit_helpers import load_self_blinding_trial, randomised_participant

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _at_midday(midday):
    """Events hours or days before "now" through the API: the clock at 12:00 UTC (conftest.midday)."""


def test_schedule_rows_carry_dose_day_and_the_opening_dose(tmp_path):
    trial, site = load_self_blinding_trial()
    now = timezone.now()
    participant, _ = randomised_participant(trial=trial, site=site, randomised_at=now - timedelta(days=3))
    today = now.astimezone(participant.zone).date()
    taken = now - timedelta(minutes=30)
    dose = dose_log_create(participant=participant, idempotency_key=uuid.uuid4(), taken_at=taken, now=now).body

    result = write_bundle(trial=trial, out=tmp_path / "b.zip")
    with zipfile.ZipFile(result.path) as zf:
        rows = list(csv.DictReader(io.StringIO(zf.read("schedule.csv").decode())))
        codebook = zf.read("codebook.csv").decode()
    mine = [r for r in rows if r["study_id"] == participant.study_id]
    day = taken.astimezone(participant.zone).date().isoformat()
    assert any(r["local_date"] == day and r["schedule_key"] == "dose_week" for r in mine) or day != today.isoformat()
    assert any(r["local_date"] == day for r in mine)  # the positive case is present
    for r in mine:
        assert r["dose_day"] == ("true" if r["local_date"] == day else "false"), r
    acute = [r for r in mine if r["schedule_key"] == "acute"]
    assert [r["dose_id"] for r in acute] == [dose["id"]]
    assert all(r["dose_id"] == "" for r in mine if r["schedule_key"] != "acute")
    assert "dose_day" in codebook and "dose_id" in codebook
