"""Blinding per session through the interfaces: the summary API (unblinded: `blinding.sessions`; blinded: only
the overall guess distribution), the admin page, and crossover time points attributed to the period's arm."""

from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from analytics.blinding_selectors import session_records
from participants.models import Allocation
from surveys.models import Response
from trialsite.api.auth import token_issue
from trialsite.protocol.services import protocol_load_file
from trialsite.services import site_create

NOW = datetime(2026, 4, 20, 12, 0, tzinfo=UTC)
CROSSOVER = Path(__file__).resolve().parents[2] / "protocols" / "crossover.yaml"


@pytest.fixture
def sim_trial(trial):
    from analytics.simulation import simulate_trial

    simulate_trial(trial=trial, participants=40, days=60, seed=7, now=NOW)
    return trial


def staff_get(api_client, user, path):
    key, _ = token_issue(user=user, kind="staff", ttl=timedelta(hours=1))
    return api_client.get(path, HTTP_AUTHORIZATION=f"Bearer {key}")


def _truth(trial, day):
    """(guess, arm) counts at planned day `day`, read with the ORM (independently of the SQL selector)."""
    arm_of = {
        a.participant_id: ("placebo" if a.slot.arm.code == "B" else "active")
        for a in Allocation.objects.filter(participant__trial=trial).select_related("slot__arm")
    }
    pairs = Counter()
    for r in Response.objects.filter(
        participant__trial=trial, instance__schedule_key="blinding_guess", instance__study_day=day
    ):
        pairs[(r.answers["guess"], arm_of[r.participant_id])] += 1
    return pairs


def test_unblinded_summary_carries_per_session_figures(sim_trial, make_staff, api_client):
    resp = staff_get(
        api_client, make_staff("unblinded_statistician"), f"/api/v1/staff/analytics/{sim_trial.slug}/summary"
    )
    assert resp.status_code == 200, resp.content
    sessions = resp.json()["blinding"]["sessions"]
    assert sessions["outcome"] == "phq9.total" and sessions["change_from_baseline"] is True
    assert sessions["crossover"] is False and sessions["periods"] == []
    points = {(p["schedule_key"], p["planned_day"]): p for p in sessions["time_points"]}
    assert set(points) == {("blinding_guess", 7), ("blinding_guess", 42), ("blinding_guess", 56)}
    for day in (7, 42):
        truth, point = _truth(sim_trial, day), points[("blinding_guess", day)]
        assert point["table"] == [
            [truth[("active", "active")], truth[("active", "placebo")]],
            [truth[("placebo", "active")], truth[("placebo", "placebo")]],
            [truth[("dont_know", "active")], truth[("dont_know", "placebo")]],
        ]
        cgr = point["correct_guess_rate"]["active"]
        assert (cgr["k"], cgr["n"]) == (
            truth[("active", "active")],
            truth[("active", "active")] + truth[("placebo", "active")],
        )
        assert cgr["lower"] <= cgr["rate"] <= cgr["upper"]
        assert sum(c["n"] for c in point["outcome_by_arm_guess"]) > 0  # weekly PHQ-9 on the guess days
        assert set(point["cgrc"]) >= {"defined", "naive_effect", "estimate", "curve", "trial_cgr"}
    # Another outcome by name; an unknown one is a 400 in the error shape.
    resp = staff_get(
        api_client,
        make_staff("unblinded_statistician"),
        f"/api/v1/staff/analytics/{sim_trial.slug}/summary?outcome=gad7",
    )
    assert resp.json()["blinding"]["sessions"]["outcome"] == "gad7.total"
    bad = staff_get(
        api_client,
        make_staff("unblinded_statistician"),
        f"/api/v1/staff/analytics/{sim_trial.slug}/summary?outcome=phq9.nope",
    )
    assert bad.status_code == 400 and "outcome" in bad.json()["error"]["fields"]


def test_blinded_roles_see_only_the_overall_guess_distribution(sim_trial, make_staff, api_client, client):
    for role in ("statistician", "trial_manager", "monitor"):
        user = make_staff(role)
        blinding = staff_get(api_client, user, f"/api/v1/staff/analytics/{sim_trial.slug}/summary").json()["blinding"]
        assert "sessions" not in blinding and "indices" not in blinding
        assert any(row["schedule_key"] == "blinding_guess" for row in blinding["guesses"])
        client.force_login(user)
        page = client.get("/admin/blinding/")
        assert page.status_code == 200
        text = page.content.decode()
        assert 'id="guess-distribution"' in text and "<svg" in text
        assert "Blinding per session (unblinded)" not in text and "CGRC" not in text
        client.logout()


def test_admin_blinding_page_draws_the_unblinded_plots(sim_trial, make_staff, client):
    client.force_login(make_staff("unblinded_statistician"))
    page = client.get("/admin/blinding/")
    assert page.status_code == 200
    text = page.content.decode()
    assert "Blinding per session (unblinded)" in text
    assert 'id="outcome-plot"' in text and 'id="cgrc-plot"' in text and text.count("<svg") >= 4
    assert "day56-blinding_guess" in text  # the chosen time point defaults to the last one
    chosen = client.get("/admin/blinding/?point=day7-blinding_guess")
    assert chosen.status_code == 200 and 'value="day7-blinding_guess" selected' in chosen.content.decode()


@pytest.fixture
def crossover_trial(db):
    from analytics.simulation import simulate_trial

    trial = protocol_load_file(path=CROSSOVER).trial
    site_create(code="AMS", name="Amsterdam", timezone="Europe/Amsterdam", trials=[trial])
    simulate_trial(trial=trial, participants=24, days=60, seed=9, now=NOW)
    return trial


def test_crossover_guesses_are_attributed_to_the_period_arm(crossover_trial, make_staff, api_client):
    points, about = session_records(trial=crossover_trial)
    assert about["crossover"] is True
    sequence = {
        a.participant.study_id: a.slot.arm_sequence
        for a in Allocation.objects.filter(participant__trial=crossover_trial).select_related("slot", "participant")
    }
    seen = set()
    for (day, key), records in points.items():
        period = 1 if day <= 20 else 2
        for r in records:
            # AB: active (A) in period 1, placebo (B) in period 2; BA the other way round.
            expected = "active" if (sequence[r.participant] == "AB") == (period == 1) else "placebo"
            assert r.arm == expected, (day, key, r.participant)
            seen.add((sequence[r.participant], period))
    assert {("AB", 1), ("BA", 1)} <= seen
    resp = staff_get(
        api_client, make_staff("unblinded_statistician"), f"/api/v1/staff/analytics/{crossover_trial.slug}/summary"
    )
    sessions = resp.json()["blinding"]["sessions"]
    assert {
        (p["schedule_key"], p["period"], p["dose_number"]) for p in sessions["time_points"] if p["planned_day"] == 18
    } == {("session_guess", 1, 7)}
    assert [p["period"] for p in sessions["periods"]] == sorted({p["period"] for p in sessions["time_points"]})
