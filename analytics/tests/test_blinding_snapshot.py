"""The unblinded summary reads its blinding figures (per-arm indices, per-session figures with the seeded CGRC) as
stored by the snapshot refresh, apart from the blinded snapshot (analytics.blinding_snapshots, issue 14 goal 4):
the stored figures equal the live computation and the defining selectors, a recount of the guess tables from the
rows, and a second live run (the CGRC's pseudo-trials are seeded); `as_of` says when they were computed, for the
blinded and the blinding figures alike; a stale snapshot, a blinded snapshot refreshed alone, or an outcome
nobody asked for before are computed now and stored."""

import json
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from django.test import override_settings

from analytics import selectors
from analytics.blinding_selectors import blinding_session_figures, session_records
from analytics.blinding_snapshots import blinding_figures
from analytics.completion_snapshots import completion_snapshot_current, completion_snapshot_refresh
from analytics.models import BlindingSnapshot, CompletionSnapshot
from analytics.summary import trial_summary, trial_summary_for
from participants.models import Allocation
from surveys.models import Response, SurveyInstance

NOW = datetime(2026, 4, 20, 12, 0, tzinfo=UTC)
FOREVER = 10**9  # DASHBOARD_SNAPSHOT_MAX_AGE: the stored rows are used whatever the wall clock


def roundtrip(value):
    """As read back from the JSON column."""
    return json.loads(json.dumps(value))


@pytest.fixture
def sim_trial(trial):
    from analytics.simulation import simulate_trial

    simulate_trial(trial=trial, participants=40, days=60, seed=7, now=NOW, audit=False)
    return trial


def recount(trial, day: int) -> list[list[int]]:
    """The guess table at planned day `day` (rows: guess active, placebo, don't know; columns: actual active,
    placebo), counted with the ORM from the rows, independently of the SQL selectors."""
    arm_of = {
        a.participant_id: ("placebo" if a.slot.arm.code == "B" else "active")
        for a in Allocation.objects.filter(participant__trial=trial).select_related("slot__arm")
    }
    pairs = Counter(
        (r.answers["guess"], arm_of[r.participant_id])
        for r in Response.objects.filter(
            participant__trial=trial, instance__schedule_key="blinding_guess", instance__study_day=day
        )
    )
    return [[pairs[(guess, "active")], pairs[(guess, "placebo")]] for guess in ("active", "placebo", "dont_know")]


def answer_a_missed_guess(trial, guess: str = "active") -> Response:
    """A late answer to a blinding guess nobody answered: the blinding figures computed now change."""
    instance = SurveyInstance.objects.filter(
        participant__trial=trial, schedule_key="blinding_guess", study_day=7, response__isnull=True
    ).first()
    assert instance is not None
    return Response.objects.create(
        instance=instance,
        participant=instance.participant,
        instrument=instance.instrument,
        idempotency_key=uuid.uuid4(),
        request_hash="0" * 64,
        answers={"guess": guess, "confidence": 80},
        authored_at=NOW,
        received_at=NOW,
    )


def test_the_stored_blinding_figures_equal_the_live_computation(sim_trial, make_staff):
    trial = sim_trial
    points, _ = session_records(trial=trial)
    records = [r for rs in points.values() for r in rs]
    # The edges are there: don't-know answers, guesses without a PHQ-9 in the window, both arms guessing both ways.
    assert any(r.guess == "dont_know" for r in records) and any(r.outcome is None for r in records)
    completion_snapshot_refresh(trial=trial, now=NOW)
    stored = BlindingSnapshot.objects.get(trial=trial)
    assert (stored.outcome, stored.computed_at) == ("phq9.total", NOW)
    assert CompletionSnapshot.objects.get(trial=trial).computed_at == NOW  # stored with the blinded snapshot
    assert stored.figures == roundtrip(blinding_figures(trial=trial))
    # Each part equals the selector that defines it.
    assert stored.figures["indices"] == roundtrip(selectors.blinding_indices(trial=trial))
    assert stored.figures["coordinator_indices"] == roundtrip(selectors.coordinator_blinding_indices(trial=trial))
    sessions = stored.figures["sessions"]
    assert sessions == roundtrip(blinding_session_figures(trial=trial, outcome="phq9.total"))
    # The guess tables recounted from the rows; the CGRC defined (its seeded pseudo-trials ran) at every time point.
    assert [p["planned_day"] for p in sessions["time_points"]] == [7, 42, 56]
    for point in sessions["time_points"]:
        assert point["table"] == recount(trial, point["planned_day"]), point["planned_day"]
        assert (
            point["cgrc"]["defined"] and point["cgrc"]["lower"] <= point["cgrc"]["estimate"] <= point["cgrc"]["upper"]
        )
    by_day = {row["planned_day"]: row["table"] for row in stored.figures["indices"]}
    assert by_day == {day: recount(trial, day) for day in (7, 42, 56)}
    # Reproducible: the pseudo-trials are seeded, so another live run draws the same ones.
    assert roundtrip(blinding_session_figures(trial=trial))["time_points"] == sessions["time_points"]
    # The summary as the unblinded statistician reads it = the summary computed live, every figure.
    later = NOW + timedelta(minutes=1)
    fast = roundtrip(trial_summary_for(actor=make_staff("unblinded_statistician"), trial=trial, now=later))
    live = roundtrip(trial_summary(trial=trial, unblinded=True, now=later))
    assert fast["as_of"] == NOW.isoformat() and live["as_of"] == later.isoformat()
    assert fast["blinding"] == live["blinding"]
    assert {k: v for k, v in fast.items() if k != "as_of"} == {k: v for k, v in live.items() if k != "as_of"}


@override_settings(DASHBOARD_SNAPSHOT_MAX_AGE=FOREVER)
def test_the_api_reads_the_stored_blinding_figures_as_of_their_time(sim_trial, make_staff, api_client):
    from trialsite.api.auth import token_issue

    trial = sim_trial
    completion_snapshot_refresh(trial=trial, now=NOW)
    url = f"/api/v1/staff/analytics/{trial.slug}/summary"
    key, _ = token_issue(user=make_staff("unblinded_statistician"), kind="staff", ttl=timedelta(hours=1))

    def get() -> dict:
        response = api_client.get(url, HTTP_AUTHORIZATION=f"Bearer {key}")
        assert response.status_code == 200, response.content
        return response.json()

    body = get()
    assert body["as_of"] == NOW.isoformat()
    stored = BlindingSnapshot.objects.get(trial=trial).figures
    assert {k: body["blinding"][k] for k in stored} == stored
    # A new guess: the API shows the stored figures until the refresh computes them again.
    answer_a_missed_guess(trial)
    day7 = recount(trial, 7)
    assert get()["blinding"] == body["blinding"]
    assert body["blinding"]["sessions"]["time_points"][0]["table"] != day7
    later = NOW + timedelta(minutes=5)
    completion_snapshot_refresh(trial=trial, now=later)
    refreshed = get()
    assert refreshed["as_of"] == later.isoformat()
    assert refreshed["blinding"]["sessions"]["time_points"][0]["table"] == day7
    assert refreshed["blinding"]["indices"][0]["table"] == day7
    assert refreshed["blinding"] == roundtrip(trial_summary(trial=trial, unblinded=True, now=later))["blinding"]


@override_settings(DASHBOARD_SNAPSHOT_MAX_AGE=900)
def test_stale_or_unmatched_blinding_figures_are_computed_now_and_stored(sim_trial, make_staff):
    trial = sim_trial
    actor, blinded = make_staff("unblinded_statistician"), make_staff("statistician")
    completion_snapshot_refresh(trial=trial, now=NOW)
    answer_a_missed_guess(trial, guess="placebo")
    # Stale: computed now, both stored at that moment.
    stale = NOW + timedelta(minutes=16)
    summary = trial_summary_for(actor=actor, trial=trial, now=stale)
    assert summary["as_of"] == stale.isoformat()
    assert summary["blinding"]["sessions"]["time_points"][0]["table"] == recount(trial, 7)
    assert BlindingSnapshot.objects.get(trial=trial).computed_at == stale
    assert CompletionSnapshot.objects.get(trial=trial).computed_at == stale
    # A blinded reader's stale path refreshes the blinded snapshot alone (no arm-bearing work for a blinded
    # request); the unblinded reader then finds figures of another moment and computes both now.
    alone = stale + timedelta(minutes=16)
    assert trial_summary_for(actor=blinded, trial=trial, now=alone)["as_of"] == alone.isoformat()
    assert BlindingSnapshot.objects.get(trial=trial).computed_at == stale
    after = alone + timedelta(minutes=1)
    summary = trial_summary_for(actor=actor, trial=trial, now=after)
    assert summary["as_of"] == after.isoformat()
    assert BlindingSnapshot.objects.get(trial=trial).computed_at == after
    # Computed for a moment long before the stored one (a clock far behind): shown, not stored over the later one.
    before = after - timedelta(minutes=20)
    assert trial_summary_for(actor=actor, trial=trial, now=before)["as_of"] == before.isoformat()
    assert BlindingSnapshot.objects.get(trial=trial).computed_at == after
    assert completion_snapshot_current(trial=trial, now=after).computed_at == after


@override_settings(DASHBOARD_SNAPSHOT_MAX_AGE=900)
def test_another_outcome_is_stored_once_asked_for_and_refreshed_since(sim_trial, make_staff):
    trial = sim_trial
    actor = make_staff("unblinded_statistician")
    completion_snapshot_refresh(trial=trial, now=NOW)
    first = NOW + timedelta(minutes=1)
    gad7 = trial_summary_for(actor=actor, trial=trial, outcome="gad7", now=first)
    assert gad7["as_of"] == first.isoformat()  # nobody asked for it before: computed now
    assert gad7["blinding"]["sessions"]["outcome"] == "gad7.total"
    stored = BlindingSnapshot.objects.get(trial=trial, outcome="gad7.total")
    assert stored.computed_at == first
    assert stored.figures == roundtrip(blinding_figures(trial=trial, outcome="gad7.total"))
    assert stored.figures["sessions"] != BlindingSnapshot.objects.get(outcome="phq9.total").figures["sessions"]
    again = trial_summary_for(actor=actor, trial=trial, outcome="gad7.total", now=first + timedelta(minutes=1))
    assert again["as_of"] == first.isoformat() and roundtrip(again["blinding"]) == roundtrip(gad7["blinding"])
    # The refresh keeps every outcome asked for, at one moment.
    later = NOW + timedelta(minutes=5)
    completion_snapshot_refresh(trial=trial, now=later)
    assert dict(BlindingSnapshot.objects.values_list("outcome", "computed_at")) == {
        "phq9.total": later,
        "gad7.total": later,
    }
    for outcome in ("gad7", None):
        read = trial_summary_for(actor=actor, trial=trial, outcome=outcome, now=later + timedelta(minutes=1))
        assert read["as_of"] == later.isoformat(), outcome
    with pytest.raises(ValueError, match="phq9 has no score 'nope'"):
        trial_summary_for(actor=actor, trial=trial, outcome="phq9.nope", now=later)
    assert BlindingSnapshot.objects.count() == 2
