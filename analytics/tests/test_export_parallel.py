"""The parallel export: several connections copy the bundle's tables on ONE exported snapshot.

Runs with committed data (transactional_db): inside a test's open transaction the bundle is read serially."""

import csv
import hashlib
import io
import json
import threading
import uuid
import zipfile
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection, connections

NOW = datetime(2026, 4, 20, 12, 0, tzinfo=UTC)


def _csv(zf, name):
    return list(csv.DictReader(io.StringIO(zf.read(name).decode("utf-8"))))


@pytest.fixture
def committed_trial(transactional_db, trial):
    from analytics.simulation import simulate_trial

    simulate_trial(trial=trial, participants=8, days=20, seed=5, now=NOW)
    return trial


def test_rows_committed_after_the_snapshot_appear_in_no_table(committed_trial, site_ldn, tmp_path, monkeypatch):
    """Between the coordinator's snapshot and the workers' first query a participant is registered and an answer
    submitted and committed: no worker sees them, and every worker reports the coordinator's snapshot."""
    from analytics.export import parallel, write_bundle
    from participants.models import Participant
    from surveys.models import Response, SurveyInstance
    from surveys.services import survey_response_submit
    from surveys.tests.factories import make_participant

    trial = committed_trial
    todo = (
        SurveyInstance.objects.filter(participant__trial=trial, instrument__slug="phq9", status="scheduled")
        .filter(participant__withdrawn_at__isnull=True, participant__day0__isnull=False)
        .select_related("participant")
        .order_by("opens_at", "id")
        .first()
    )
    assert todo is not None
    late = {}
    lock = threading.Lock()
    seen_snapshots: list[str] = []
    real_adopt = parallel.adopt_snapshot

    def adopt_after_a_commit(cursor, snapshot_id):
        with lock:
            if not late:  # the first worker commits new rows, on its thread's own connection, before adopting
                p, _key = make_participant(trial=trial, site=site_ldn)
                at = todo.opens_at + timedelta(minutes=1)
                survey_response_submit(
                    participant=todo.participant,
                    instance_id=todo.uuid,
                    idempotency_key=uuid.uuid4(),
                    answers={f"phq9_{n}": 1 for n in range(1, 10)},
                    authored=at,
                    now=at,
                )
                late["study_id"] = p.study_id
                connection.close()
        real_adopt(cursor, snapshot_id)
        cursor.execute("SELECT pg_current_snapshot()::text")
        seen_snapshots.append(cursor.fetchone()[0])

    monkeypatch.setattr(parallel, "adopt_snapshot", adopt_after_a_commit)
    result = write_bundle(trial=trial, out=tmp_path / "b.zip", formats=["csv"], workers=3)

    # Positive signal first: the late rows are committed.
    response = Response.objects.get(instance=todo)
    assert Participant.objects.filter(study_id=late["study_id"]).exists()
    # Every worker read the coordinator's snapshot, which the manifest records.
    assert seen_snapshots == [result.manifest["snapshot"]["pg_snapshot"]] * 3
    zf = zipfile.ZipFile(result.path)
    participants = {r["study_id"] for r in _csv(zf, "participants.csv")}
    assert todo.participant.study_id in participants and late["study_id"] not in participants
    assert str(response.uuid) not in {r["response_id"] for r in _csv(zf, "responses.csv")}
    assert str(response.uuid) not in {r["response_id"] for r in _csv(zf, "scores.csv")}
    row = next(r for r in _csv(zf, "schedule.csv") if r["instance_id"] == str(todo.uuid))
    assert (row["status"], row["answered_at"]) == ("scheduled", "")
    # A bundle taken now has them.
    again = zipfile.ZipFile(write_bundle(trial=trial, out=tmp_path / "c.zip", workers=3).path)
    assert late["study_id"] in {r["study_id"] for r in _csv(again, "participants.csv")}
    assert str(response.uuid) in {r["response_id"] for r in _csv(again, "responses.csv")}


def test_parallel_and_serial_bundles_hold_the_same_files_in_every_format(committed_trial, tmp_path):
    import pandas as pd

    from analytics.export import write_bundle

    serial = write_bundle(
        trial=committed_trial, out=tmp_path / "s.zip", formats=["csv", "parquet", "spss", "stata"], workers=1
    )
    par = write_bundle(
        trial=committed_trial, out=tmp_path / "p.zip", formats=["csv", "parquet", "spss", "stata"], workers=3
    )
    assert [f["name"] for f in par.files] == [f["name"] for f in serial.files]
    zs, zp = zipfile.ZipFile(serial.path), zipfile.ZipFile(par.path)
    assert zp.testzip() is None
    assert zp.namelist() == zs.namelist()
    manifest = json.loads(zp.read("manifest.json"))
    for f in manifest["files"]:
        assert hashlib.sha256(zp.read(f["name"])).hexdigest() == f["sha256"], f["name"]
        if f["format"] == "csv":  # same rows, byte for byte
            assert f["sha256"] == next(s["sha256"] for s in serial.files if s["name"] == f["name"])
    assert manifest["snapshot"]["isolation"] == "repeatable read" and manifest["snapshot"]["read_only"] is True
    responses = pd.read_parquet(io.BytesIO(zp.read("responses.parquet")))
    assert len(responses) == sum(f["rows"] for f in manifest["files"] if f["name"] == "responses.csv") > 100
    import pyreadstat

    (tmp_path / "scores.sav").write_bytes(zp.read("scores.sav"))
    df, meta = pyreadstat.read_sav(str(tmp_path / "scores.sav"))
    assert len(df) == next(f["rows"] for f in manifest["files"] if f["name"] == "scores.csv")


def test_a_failing_progress_callback_stops_every_worker(committed_trial, tmp_path):
    """A lost lease (progress raises) abandons the bundle: the error propagates and no worker is left running."""
    from analytics.export import write_bundle
    from analytics.export.parallel import APPLICATION_NAME
    from conftest import wait_for

    class LeaseLost(Exception):
        pass

    calls = []

    def progress(fraction):
        calls.append(fraction)
        raise LeaseLost

    before = threading.active_count()
    with pytest.raises(LeaseLost):
        write_bundle(trial=committed_trial, out=tmp_path / "x.zip", workers=3, progress=progress)
    assert calls and threading.active_count() == before

    def export_backends() -> int:
        with connections["default"].cursor() as cur:
            cur.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s AND datname = current_database()",
                [APPLICATION_NAME],
            )
            return cur.fetchone()[0]

    # The workers closed their connections; the server ends a backend a moment after its client leaves.
    wait_for(lambda: export_backends() == 0, timeout=10, what="the workers' backends to end")
