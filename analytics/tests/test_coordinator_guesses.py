"""Coordinators' blinding guesses in the simulation, the export bundle and the summary API."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from datetime import UTC, datetime, timedelta

import pytest

from analytics.blinding import bang, guess_table, james
from participants.models import Allocation, StaffBlindingGuess
from surveys.models import Response

NOW = datetime(2026, 4, 20, 12, 0, tzinfo=UTC)


@pytest.fixture
def sim_trial(trial):
    from analytics.simulation import simulate_trial

    result = simulate_trial(trial=trial, participants=30, days=45, seed=5, now=NOW)
    assert result.staff_guesses == StaffBlindingGuess.objects.count() > 0
    return trial


@pytest.fixture
def as_user(api_client):
    from trialsite.api.auth import token_issue

    def login(user):
        key, _ = token_issue(user=user, kind="staff", ttl=timedelta(hours=1))
        api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
        return api_client

    return login


def _actual(placebo_code="B"):
    return {
        a.participant_id: ("placebo" if a.slot.arm.code == placebo_code else "active")
        for a in Allocation.objects.select_related("slot__arm")
    }


def test_simulated_coordinators_guess_at_reached_time_points_a_little_better_than_chance(sim_trial):
    guesses = list(StaffBlindingGuess.objects.select_related("participant"))
    assert guesses and {g.time_point for g in guesses} <= {"day_7", "day_42", "day_56"}
    for g in guesses:
        assert g.participant.randomised_at is not None
        assert g.recorded_at <= NOW
        assert g.participant.study_day(g.recorded_at) >= g.study_day
        assert 0 <= g.confidence <= 100
    assert not StaffBlindingGuess.objects.filter(recorded_at__gt=NOW).exists()
    # Not every reached time point has a guess, and both arms' participants are rated.
    assert len({g.participant_id for g in guesses}) > 5
    assert {"active", "placebo"} <= set(_actual()[g.participant_id] for g in guesses)


def test_export_has_coordinator_rows_with_rater_and_time_point(sim_trial, tmp_path):
    from analytics.export import write_bundle

    result = write_bundle(trial=sim_trial, out=tmp_path / "b.zip", formats=["csv"])
    zf = zipfile.ZipFile(result.path)
    rows = list(csv.DictReader(io.StringIO(zf.read("blinding_guesses.csv").decode())))
    coordinator = [r for r in rows if r["rater"] == "coordinator"]
    participant = [r for r in rows if r["rater"] == "participant"]
    assert len(coordinator) == StaffBlindingGuess.objects.count()
    assert len(participant) == Response.objects.filter(answers__has_key="guess").count()
    # Participants' rows keep their values; the time point is the planned day.
    for r in participant:
        assert r["respondent"] == "participant" and r["schedule_key"] == "blinding_guess"
        assert r["time_point"] == f"day_{r['planned_day']}"
    by_id = {str(g.uuid): g for g in StaffBlindingGuess.objects.select_related("participant")}
    for r in coordinator:
        g = by_id[r["response_id"]]
        assert (r["study_id"], r["time_point"], r["guess"], int(float(r["confidence"]))) == (
            g.participant.study_id,
            g.time_point,
            g.guess,
            g.confidence,
        )
        assert r["planned_day"] == str(g.study_day) and r["schedule_key"] == ""
        assert r["respondent"] == "coordinator"
    # No user name, e-mail or user id of the rater; no arm in the blinded bundle.
    text = zf.read("blinding_guesses.csv").decode()
    assert "simulated-coordinator" not in text and "@" not in text
    assert "rater_id" not in rows[0] and "arm" not in rows[0]
    assert "allocation.csv" not in zf.namelist()
    codebook = list(csv.DictReader(io.StringIO(zf.read("codebook.csv").decode())))
    rater = next(c for c in codebook if c["table"] == "blinding_guesses" and c["variable"] == "rater")
    assert rater["allowed_values"] == "participant;coordinator"
    assert any(c["table"] == "blinding_guesses" and c["variable"] == "time_point" for c in codebook)


def test_summary_blinded_users_see_only_the_coordinators_guess_distribution(sim_trial, make_staff, as_user):
    body = as_user(make_staff("statistician")).get(f"/api/v1/staff/analytics/{sim_trial.slug}/summary").json()
    blinding = body["blinding"]
    assert set(blinding) == {"guesses", "coordinator_guesses"}
    counts = {}
    for g in StaffBlindingGuess.objects.all():
        counts.setdefault(g.time_point, {"active": 0, "placebo": 0, "dont_know": 0})[g.guess] += 1
    assert {
        r["time_point"]: {k: r[k] for k in ("active", "placebo", "dont_know")} for r in blinding["coordinator_guesses"]
    } == counts
    assert [r["planned_day"] for r in blinding["coordinator_guesses"]] == sorted(
        int(tp.removeprefix("day_")) for tp in counts
    )
    text = json.dumps(body).lower()
    assert "psilocybin" not in text and '"arm"' not in text and "indices" not in text


def test_summary_unblinded_statistician_sees_coordinator_indices_matching_the_data(sim_trial, make_staff, as_user):
    body = as_user(make_staff("unblinded_statistician")).get(f"/api/v1/staff/analytics/{sim_trial.slug}/summary")
    assert body.status_code == 200
    blinding = body.json()["blinding"]
    assert blinding["indices"]  # the participants' indices are still there
    indices = blinding["coordinator_indices"]
    assert [i["time_point"] for i in indices] == [r["time_point"] for r in blinding["coordinator_guesses"]]
    actual = _actual()
    for point in indices:
        pairs = [
            (g.guess, actual[g.participant_id])
            for g in StaffBlindingGuess.objects.filter(time_point=point["time_point"])
        ]
        table = guess_table(pairs)
        assert point["table"] == table
        assert point["planned_day"] == int(point["time_point"].removeprefix("day_"))
        assert point["james"]["index"] == pytest.approx(james(table).index)
        for arm in ("active", "placebo"):
            assert point["bang"][arm]["index"] == pytest.approx(bang(table)[arm].index)
            assert point["bang"][arm]["n"] == bang(table)[arm].n


def test_summary_coordinator_figures_are_scoped_to_the_users_sites(sim_trial, make_staff, as_user, site_ldn):
    body = as_user(make_staff("coordinator", site=site_ldn)).get(f"/api/v1/staff/analytics/{sim_trial.slug}/summary")
    rows = body.json()["blinding"]["coordinator_guesses"]
    total = sum(r["active"] + r["placebo"] + r["dont_know"] for r in rows)
    assert total == StaffBlindingGuess.objects.filter(participant__site=site_ldn).count()
    assert total < StaffBlindingGuess.objects.count()
