"""The comparator is the arm the protocol declares (`control: true`), wherever it is listed: a "sham" control
listed first gives the Bang indices of the right arms (the old guess, "placebo" in the name else the last arm,
took the active arm for placebo and swapped them)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import yaml

from analytics.blinding import bang, guess_table, james
from analytics.selectors import blinding_indices
from participants.models import Allocation
from surveys.models import Response

NOW = datetime(2026, 4, 20, 12, 0, tzinfo=UTC)


@pytest.fixture
def sham_trial(db, demo_protocol_source):
    from analytics.simulation import simulate_trial
    from trialsite.protocol.services import protocol_load
    from trialsite.services import site_create

    data = yaml.safe_load(demo_protocol_source)
    data["trial"] = {"slug": "sham-controlled", "title": "Sham-controlled micro-dosing"}
    data["arms"] = [
        {"code": "S", "name": "sham dosing session", "ratio": 1, "control": True},
        {"code": "P", "name": "psilocybin micro-dose", "ratio": 1},
    ]
    trial = protocol_load(source=yaml.safe_dump(data, sort_keys=False)).trial
    site_create(code="LDN", name="London", timezone="Europe/London", trials=[trial])
    simulate_trial(trial=trial, participants=30, days=45, seed=11, now=NOW)
    return trial


def test_sham_control_listed_first_gives_correct_bang_indices(sham_trial):
    actual = {
        a.participant_id: ("placebo" if a.slot.arm.code == "S" else "active")
        for a in Allocation.objects.select_related("slot__arm").filter(participant__trial=sham_trial)
    }
    assert set(actual.values()) == {"placebo", "active"}
    points = blinding_indices(trial=sham_trial)
    assert points
    for point in points:
        pairs = [
            (r.answers["guess"], actual[r.participant_id])
            for r in Response.objects.filter(
                participant__trial=sham_trial,
                instance__schedule_key=point["schedule_key"],
                instance__study_day=point["planned_day"],
                answers__has_key="guess",
            )
        ]
        table = guess_table(pairs)
        assert point["table"] == table
        assert point["james"]["index"] == pytest.approx(james(table).index)
        for arm in ("active", "placebo"):
            assert point["bang"][arm]["index"] == pytest.approx(bang(table)[arm].index)
    # The check can tell the arms apart: read with the arms swapped (the old guess), the tables differ.
    swapped = {pid: {"placebo": "active", "active": "placebo"}[arm] for pid, arm in actual.items()}
    assert any(
        point["table"]
        != guess_table(
            [
                (r.answers["guess"], swapped[r.participant_id])
                for r in Response.objects.filter(
                    participant__trial=sham_trial,
                    instance__schedule_key=point["schedule_key"],
                    instance__study_day=point["planned_day"],
                    answers__has_key="guess",
                )
            ]
        )
        for point in points
    )
