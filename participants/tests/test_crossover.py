"""Crossover designs: the protocol loads, sequences are randomised in balanced blocks, and a participant's
period and treatment per study day are right across the washout."""

from collections import Counter
from datetime import UTC, datetime
from itertools import groupby
from pathlib import Path

import pytest
import yaml

from participants.models import AllocationSlot
from participants.services.allocation import allocation_list_generate
from trialsite.protocol.crossover import Crossover
from trialsite.protocol.services import ProtocolError, protocol_current, protocol_load, protocol_load_file
from trialsite.services import site_create

CROSSOVER = Path(__file__).resolve().parents[2] / "protocols" / "crossover.yaml"


@pytest.fixture
def crossover_trial(db):
    trial = protocol_load_file(path=CROSSOVER).trial
    site_create(code="AMS", name="Amsterdam", timezone="Europe/Amsterdam", trials=[trial])
    site_create(code="LDN", name="London", timezone="Europe/London", trials=[trial])
    return trial


def test_the_crossover_protocol_loads_with_periods_washout_and_dose_days(crossover_trial):
    cx = protocol_current(crossover_trial).crossover
    assert (cx.periods, cx.period_days, cx.washout_days) == (2, 21, 14)
    assert [s.code for s in cx.sequences] == ["AB", "BA"]
    # A dose every third day in each three-week block, none in the washout: 7 + 7 doses.
    assert cx.dose_days() == [0, 3, 6, 9, 12, 15, 18, 35, 38, 41, 44, 47, 50, 53]
    # Sessions after the 2nd and the 7th dose of each block, as in Marschall 2022 / van Elk 2021.
    session = next(e for e in protocol_current(crossover_trial).schedule if e.key == "session_guess")
    assert [(cx.period_of(d), cx.dose_number(d)) for d in session.day_list()] == [(1, 2), (1, 7), (2, 2), (2, 7)]


def test_period_and_treatment_per_day_across_the_washout():
    cx = Crossover.model_validate(
        {
            "period_days": 21,
            "washout_days": 14,
            "sequences": [{"code": "AB", "arms": ["A", "B"]}, {"code": "BA", "arms": ["B", "A"]}],
        }
    )
    days = {-1: None, 0: 1, 20: 1, 21: None, 34: None, 35: 2, 55: 2, 56: None}
    assert {d: cx.period_of(d) for d in days} == days
    assert [cx.treatment("AB", d) for d in (0, 20, 21, 34, 35, 55, 56)] == ["A", "A", None, None, "B", "B", None]
    assert [cx.treatment("BA", d) for d in (0, 20, 21, 35)] == ["B", "B", None, "A"]
    # A guess in the washout is about the period just finished.
    assert [cx.period_ending_by(d) for d in (-1, 0, 20, 28, 35, 70)] == [None, 1, 1, 1, 2, 2]


def test_sequences_balance_within_blocks(crossover_trial):
    allocation_list_generate(trial=crossover_trial, seed=42, per_stratum=24)
    slots = list(
        AllocationSlot.objects.filter(allocation_list__trial=crossover_trial)
        .select_related("arm")
        .order_by("stratum", "block_number", "sequence")
    )
    assert {s.stratum for s in slots} == {"AMS", "LDN"}
    blocks = 0
    for _, members in groupby(slots, key=lambda s: (s.stratum, s.block_number)):
        members = list(members)
        counts = Counter(s.arm_sequence for s in members)
        assert counts["AB"] == counts["BA"] == len(members) // 2, counts
        blocks += 1
    assert blocks >= 12
    # The slot's arm is the first period's arm of its sequence.
    assert {(s.arm_sequence, s.arm.code) for s in slots} == {("AB", "A"), ("BA", "B")}


def test_a_sequence_naming_an_unknown_arm_is_refused(db):
    data = yaml.safe_load(CROSSOVER.read_text())
    data["crossover"]["sequences"][1]["arms"] = ["C", "A"]
    with pytest.raises(ProtocolError) as err:
        protocol_load(source=yaml.safe_dump(data))
    assert "crossover.sequences[1].arms: unknown arms: C" in str(err.value)
    data["crossover"]["sequences"][1]["arms"] = ["A", "B"]
    with pytest.raises(ProtocolError, match="same order of arms"):
        protocol_load(source=yaml.safe_dump(data))


def test_the_simulator_runs_a_crossover_trial(crossover_trial):
    from analytics.simulation import simulate_trial

    simulate_trial(trial=crossover_trial, participants=12, days=60, seed=3, now=datetime(2026, 6, 1, tzinfo=UTC))
    assert (
        AllocationSlot.objects.filter(allocation_list__trial=crossover_trial, taken=True)
        .exclude(arm_sequence="")
        .exists()
    )
