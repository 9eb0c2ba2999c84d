"""The export bundle: round trip, checksums, codebook, labels, and the blinding leak test."""

import csv
import hashlib
import io
import json
import re
import zipfile
from datetime import UTC, datetime

import pytest
from django.core.management import CommandError

from participants.models import Allocation, ContactDetails, Participant
from surveys.models import ItemAnswer, Response, Score, SurveyInstance

NOW = datetime(2026, 4, 20, 12, 0, tzinfo=UTC)
TABLES = [
    "participants",
    "responses",
    "scores",
    "schedule",
    "doses",
    "side_effects",
    "adverse_events",
    "safety_alerts",
    "blinding_guesses",
    "withdrawals",
    "covariates",
]


@pytest.fixture
def sim_trial(trial):
    from analytics.simulation import simulate_trial

    simulate_trial(trial=trial, participants=25, days=45, seed=11, now=NOW)
    return trial


def _bundle(trial, tmp_path, **kw):
    from analytics.export import write_bundle

    result = write_bundle(trial=trial, out=tmp_path / "bundle.zip", **kw)
    return result, zipfile.ZipFile(result.path)


def _csv(zf, name):
    return list(csv.DictReader(io.StringIO(zf.read(name).decode("utf-8"))))


def test_round_trip_row_counts_and_values_match_the_database(sim_trial, tmp_path):
    import pandas as pd

    result, zf = _bundle(sim_trial, tmp_path, formats=["csv", "parquet"])
    names = set(zf.namelist())
    assert {"manifest.json", "codebook.csv"} | {f"{t}.csv" for t in TABLES} | {f"{t}.parquet" for t in TABLES} == names
    assert ItemAnswer.objects.count() > 1000
    responses = pd.read_csv(zf.open("responses.csv"), dtype={"value": str}, keep_default_na=False)
    assert len(responses) == ItemAnswer.objects.count()
    assert len(pd.read_csv(zf.open("scores.csv"))) == Score.objects.count()
    assert len(pd.read_csv(zf.open("schedule.csv"))) == SurveyInstance.objects.count()
    assert len(pd.read_csv(zf.open("participants.csv"))) == Participant.objects.filter(trial=sim_trial).count()
    # Values: every PHQ-9 item answer of one response, as stored.
    resp = Response.objects.filter(instrument__slug="phq9").order_by("id").first()
    rows = responses[responses.response_id == str(resp.uuid)]
    assert {r.item: int(r.value) for r in rows.itertuples() if r.item.startswith("phq9_") and r.item[5:].isdigit()} == {
        k: v for k, v in resp.answers.items() if k.startswith("phq9_") and k[5:].isdigit()
    }
    # Study day in the participant's zone, UTC timestamps with Z.
    assert int(rows.iloc[0].study_day) == resp.study_day
    assert rows.iloc[0].authored_at == resp.authored_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    # Parquet has the same rows and typed columns.
    pq = pd.read_parquet(io.BytesIO(zf.read("responses.parquet")))
    assert len(pq) == len(responses)
    assert str(pq["authored_at"].dtype).startswith("datetime64") and str(pq["late"].dtype) == "bool"
    schedule = pd.read_parquet(io.BytesIO(zf.read("schedule.parquet")))
    answered = schedule[schedule.status == "completed"]
    assert len(answered) == Response.objects.count()
    assert (answered.latency_seconds >= 0).all()


def test_manifest_checksums_and_counts_verify(sim_trial, tmp_path, make_staff):
    user = make_staff("statistician")
    result, zf = _bundle(sim_trial, tmp_path, user=user, reason="interim look")
    manifest = json.loads(zf.read("manifest.json"))
    assert manifest["blinded"] is True
    assert manifest["created_by"] == user.username and manifest["reason"] == "interim look"
    assert manifest["protocol_version"] == 1 and manifest["software_version"]
    for f in manifest["files"]:
        data = zf.read(f["name"])
        assert hashlib.sha256(data).hexdigest() == f["sha256"], f["name"]
        if f["name"].endswith(".csv") and f["name"] != "codebook.csv":
            assert len(list(csv.reader(io.StringIO(data.decode())))) - 1 == f["rows"]
    assert hashlib.sha256(result.path.read_bytes()).hexdigest() == result.sha256


def test_blinded_bundle_leaks_no_arm_allocation_or_contact(sim_trial, tmp_path):
    from participants.blinding import arm_names

    p = Participant.objects.filter(trial=sim_trial).first()
    ContactDetails.objects.create(participant=p, name_encrypted="x", email_encrypted="y")
    unit_codes = list(
        Allocation.objects.filter(participant__trial=sim_trial).values_list("slot__dose_units__code", flat=True)
    )
    assert unit_codes
    _, zf = _bundle(sim_trial, tmp_path, formats=["csv", "parquet", "spss", "stata"])
    assert not any(n.startswith("allocation") for n in zf.namelist())
    names = arm_names(sim_trial)
    assert "placebo" in [n.lower() for n in names]
    # "placebo" is also an answer option of the blinding-guess question: allowed only as that answer.
    guess_values = {"active", "placebo", "dont_know"}
    strict = [n for n in names if n.lower() not in guess_values]
    assert strict
    headers = set()
    for name in zf.namelist():
        text = zf.read(name).decode("utf-8", errors="ignore")
        for arm in strict:
            assert not re.search(rf"(?<!\w){re.escape(arm)}(?!\w)", text, re.IGNORECASE), (arm, name)
        assert not any(code in text for code in unit_codes[:50]), name
        if name.endswith(".csv") and name != "codebook.csv":
            rows = list(csv.DictReader(io.StringIO(text)))
            headers |= set(rows[0]) if rows else set()
            for row in rows:
                for col, value in row.items():
                    if value.strip().lower() in {"placebo", "active"} | {n.lower() for n in names}:
                        allowed = (name == "responses.csv" and col == "value" and row["item"] == "guess") or (
                            name == "blinding_guesses.csv" and col == "guess"
                        )
                        assert allowed, (name, col, value)
    forbidden = {"name", "email", "phone", "address", "ip", "ip_address", "device", "device_id", "push_token", "arm"}
    assert not headers & forbidden
    assert not {h for h in headers if "arm" in h.split("_") or "email" in h or "phone" in h}


def test_unblinded_bundle_adds_the_allocation(sim_trial, tmp_path):
    _, zf = _bundle(sim_trial, tmp_path, blinded=False, reason="DSMB")
    alloc = _csv(zf, "allocation.csv")
    assert len(alloc) == Allocation.objects.filter(participant__trial=sim_trial).count()
    first = Allocation.objects.select_related("participant", "slot__arm").order_by("participant__study_id").first()
    assert (alloc[0]["study_id"], alloc[0]["arm"]) == (first.participant.study_id, first.slot.arm.code)
    assert json.loads(zf.read("manifest.json"))["blinded"] is False
    assert "unit_code" in _csv(zf, "doses.csv")[0]


def test_codebook_describes_every_variable_and_item(sim_trial, tmp_path):
    _, zf = _bundle(sim_trial, tmp_path)
    book = _csv(zf, "codebook.csv")
    described = {(r["table"], r["variable"]) for r in book}
    for t in TABLES:
        header = next(csv.reader(io.StringIO(zf.read(f"{t}.csv").decode())))
        assert header and {(t, h) for h in header} <= described, t
    phq9_1 = next(r for r in book if r["item"] == "phq9_1")
    assert phq9_1["instrument"] == "phq9" and phq9_1["instrument_version"] == "1"
    assert phq9_1["value_labels"].startswith("0=Not at all;1=Several days")
    mood = next(r for r in book if r["item"] == "mood")
    assert mood["unit"] == "0-100"
    assert next(r for r in book if r["variable"] == "study_day")["missing"]


def test_spss_and_stata_keep_variable_and_value_labels(sim_trial, tmp_path):
    import pyreadstat

    _, zf = _bundle(sim_trial, tmp_path, formats=["spss", "stata"])
    for ext in ("sav", "dta"):
        path = tmp_path / f"participants.{ext}"
        path.write_bytes(zf.read(f"participants.{ext}"))
        reader = pyreadstat.read_sav if ext == "sav" else pyreadstat.read_dta
        df, meta = reader(str(path))
        assert len(df) == Participant.objects.filter(trial=sim_trial).count()
        labels = dict(zip(meta.column_names, meta.column_labels, strict=True))
        assert labels["study_id"] == "Study id of the participant"
        status_labels = meta.variable_value_labels["status"]
        assert "screen failed" in status_labels.values() and "randomised" in status_labels.values()
    path = tmp_path / "blinding_guesses.sav"
    path.write_bytes(zf.read("blinding_guesses.sav"))
    df, meta = pyreadstat.read_sav(str(path), apply_value_formats=True)
    assert len(df["guess"].dropna()) and set(df["guess"].dropna()) <= {"Active", "Placebo", "I don't know"}


@pytest.mark.timeout(120)
def test_the_export_command_in_a_transaction_beats_between_tables_not_during_a_copy(
    sim_trial, tmp_path, call, monkeypatch
):
    """Inside a caller's transaction (here the test's) the job's heartbeat is written through the connection the
    COPY streams on. A beat due in the middle of a table (one that took over TICK_SECONDS, as under heavy load) would
    wait for the COPY's connection, while the COPY's reader waits for the beating thread to take its chunks: a
    deadlock, until the test's timeout. With every beat due at once, the export finishes and beats between tables."""
    from analytics import services
    from analytics.export import bundle, copy
    from analytics.models import ExportJob

    monkeypatch.setattr(copy, "TICK_SECONDS", 0.01)
    monkeypatch.setattr(bundle, "TICK_SECONDS", 0.01)
    beats = []
    real = services._Heartbeat.__call__
    monkeypatch.setattr(services._Heartbeat, "__call__", lambda self, value: beats.append(value) or real(self, value))
    out = call("export_trial", "--trial", sim_trial.slug, "--out", str(tmp_path / "x.zip"))
    assert "responses" in out
    assert ItemAnswer.objects.count() > 1000  # the responses table streams in several chunks
    job = ExportJob.objects.get()
    assert job.status == "done" and job.progress == 1.0
    assert len(beats) > len(TABLES) and beats == sorted(beats)  # a beat after each table, in order


def test_export_trial_command(sim_trial, tmp_path, call):
    out = call("export_trial", "--trial", sim_trial.slug, "--out", str(tmp_path / "x.zip"))
    assert "blinded" in out and "responses" in out
    with pytest.raises(CommandError):
        call("export_trial", "--trial", sim_trial.slug, "--out", str(tmp_path / "y.zip"), "--unblinded")
    out = call(
        "export_trial", "--trial", sim_trial.slug, "--out", str(tmp_path / "y.zip"), "--unblinded", "--reason", "DSMB"
    )
    assert "allocation.csv" in zipfile.ZipFile(tmp_path / "y.zip").namelist()
    with pytest.raises(CommandError):
        call("export_trial", "--trial", sim_trial.slug, "--out", str(tmp_path / "z.zip"), "--formats", "xls")
