"""Design tables of the export bundle: covariates (expectancy, substance), blinding guesses with the treatment
at each time point, and crossover treatment days (period, sequence, treatment per day)."""

import csv
import io
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from django.core.exceptions import ValidationError

from analytics.export import write_bundle
from participants.models import Allocation, Participant
from participants.services.substance import participant_substance_record
from trialsite.protocol.services import protocol_load, protocol_load_file
from trialsite.services import site_create

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
CROSSOVER = Path(__file__).resolve().parents[2] / "protocols" / "crossover.yaml"


def read(path, name):
    with zipfile.ZipFile(path) as zf:
        if name not in zf.namelist():
            return None
        return list(csv.DictReader(io.StringIO(zf.read(name).decode("utf-8"))))


@pytest.fixture(autouse=True)
def export_root(settings, tmp_path):
    settings.EXPORT_ROOT = tmp_path / "exports"


@pytest.fixture
def crossover_trial(db):
    from analytics.simulation import simulate_trial

    trial = protocol_load_file(path=CROSSOVER).trial
    site_create(code="AMS", name="Amsterdam", timezone="Europe/Amsterdam", trials=[trial])
    simulate_trial(trial=trial, participants=16, days=60, seed=4, now=NOW)
    return trial


def test_unblinded_bundle_carries_period_sequence_and_treatment(crossover_trial, tmp_path):
    result = write_bundle(trial=crossover_trial, out=tmp_path / "u.zip", blinded=False, reason="analysis")
    days = read(result.path, "treatment_days.csv")
    sequence = {
        a.participant.study_id: a.slot.arm_sequence
        for a in Allocation.objects.filter(participant__trial=crossover_trial).select_related("slot", "participant")
    }
    assert days and {r["study_id"] for r in days} == set(sequence)
    for r in days:
        day, seq = int(r["study_day"]), sequence[r["study_id"]]
        assert r["sequence"] == seq
        if day <= 20:
            assert (r["period"], r["treatment"]) == ("1", seq[0])
        elif day <= 34:
            assert (r["period"], r["treatment"]) == ("", "")  # washout
        else:
            assert (r["period"], r["treatment"]) == ("2", seq[1])
        assert r["dose_day"] == ("true" if day in (0, 3, 6, 9, 12, 15, 18, 35, 38, 41, 44, 47, 50, 53) else "false")
    assert max(int(r["study_day"]) for r in days) == 55
    guesses = read(result.path, "guess_treatment.csv")
    assert guesses
    for g in guesses:
        seq, day = sequence[g["study_id"]], int(g["planned_day"])
        assert g["treatment"] == seq[0 if day <= 34 else 1] and g["period"] == ("1" if day <= 34 else "2")
        if g["guess"] != "dont_know":
            truth = "placebo" if g["treatment"] == "B" else "active"
            assert g["correct"] == ("true" if g["guess"] == truth else "false")
    with zipfile.ZipFile(result.path) as zf:
        codebook = zf.read("codebook.csv").decode()
    assert "treatment_days,period," in codebook and "covariates,amount_per_unit," in codebook


def test_blinded_bundle_has_covariates_but_no_treatment(crossover_trial, tmp_path):
    result = write_bundle(trial=crossover_trial, out=tmp_path / "b.zip")
    assert read(result.path, "treatment_days.csv") is None and read(result.path, "guess_treatment.csv") is None
    rows = read(result.path, "covariates.csv")
    assert len(rows) == Participant.objects.filter(trial=crossover_trial).count()
    assert {(r["substance"], r["amount_per_unit"], r["amount_unit"], r["substance_source"]) for r in rows} == {
        ("psilocybin (dried truffles)", "0.7", "g", "protocol")
    }
    answered = [float(r["expectancy"]) for r in rows if r["expectancy"]]
    assert answered and all(0 <= v <= 100 for v in answered)


@pytest.fixture
def self_blinding_trial(db, demo_protocol_source):
    data = yaml.safe_load(demo_protocol_source)
    data["substance"] = {"name": "as brought by the participant", "unit": "ug", "provided_by": "participant"}
    trial = protocol_load(source=yaml.safe_dump(data, sort_keys=False)).trial
    site_create(code="LDN", name="London", timezone="Europe/London", trials=[trial])
    from analytics.simulation import simulate_trial

    simulate_trial(trial=trial, participants=6, days=10, seed=2, now=NOW)
    return trial


def test_participants_own_substance_is_recorded_and_exported(self_blinding_trial, tmp_path, make_staff):
    p1, p2 = Participant.objects.filter(trial=self_blinding_trial).order_by("study_id")[:2]
    participant_substance_record(
        participant=p1, name="1P-LSD", amount_per_unit="12.5", unit="ug", user=make_staff("coordinator")
    )
    participant_substance_record(participant=p1, name="1P-LSD", amount_per_unit="10", unit="ug")  # a correction
    for bad in ({"name": "", "amount_per_unit": 1, "unit": "ug"}, {"name": "LSD", "amount_per_unit": 0, "unit": "ug"},
                {"name": "LSD", "amount_per_unit": 1, "unit": "drops"}):  # fmt: skip
        with pytest.raises(ValidationError):
            participant_substance_record(participant=p2, **bad)
    rows = {
        r["study_id"]: r
        for r in read(write_bundle(trial=self_blinding_trial, out=tmp_path / "b.zip").path, "covariates.csv")
    }
    assert (rows[p1.study_id]["substance"], rows[p1.study_id]["amount_per_unit"], rows[p1.study_id]["amount_unit"]) == (
        "1P-LSD",
        "10",
        "ug",
    )
    assert rows[p1.study_id]["substance_source"] == "participant"
    assert (rows[p2.study_id]["substance"], rows[p2.study_id]["amount_per_unit"]) == (
        "as brought by the participant",
        "",
    )
    assert rows[p2.study_id]["substance_source"] == "protocol"


def test_site_dispensed_trials_refuse_a_participant_substance(trial, site_ldn):
    from analytics.simulation import simulate_trial

    simulate_trial(trial=trial, participants=2, days=3, seed=1, now=NOW)
    p = Participant.objects.filter(trial=trial).first()
    with pytest.raises(ValidationError, match="dispenses"):
        participant_substance_record(participant=p, name="LSD", amount_per_unit=10, unit="ug")
