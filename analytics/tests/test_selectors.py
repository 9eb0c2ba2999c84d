"""Figures of analytics.selectors recomputed by hand from the rows."""

from datetime import UTC, datetime, timedelta

import pytest

from analytics import selectors
from participants.models import Participant
from surveys.models import DoseLog, SurveyInstance

NOW = datetime(2026, 4, 20, 12, 0, tzinfo=UTC)


@pytest.fixture
def sim_trial(trial):
    from analytics.simulation import simulate_trial

    simulate_trial(trial=trial, participants=20, days=40, seed=9, now=NOW)
    return trial


def test_completion_by_participant(sim_trial):
    rows = {r["study_id"]: r for r in selectors.completion(trial=sim_trial, by="participant", now=NOW)}
    p = Participant.objects.filter(trial=sim_trial, randomised_at__isnull=False).order_by("study_id").first()
    mine = SurveyInstance.objects.filter(participant=p).exclude(status="cancelled")
    due = [i for i in mine if i.status == "completed" or i.grace_until <= NOW]
    answered = [i for i in due if i.status == "completed"]
    on_time = [i for i in answered if not i.response.late]
    assert due and answered
    assert rows[p.study_id]["planned"] == len(due)
    assert (rows[p.study_id]["answered"], rows[p.study_id]["on_time"]) == (len(answered), len(on_time))
    assert rows[p.study_id]["rate"] == pytest.approx(len(answered) / len(due), abs=1e-4)
    by_week = selectors.completion(trial=sim_trial, by="week", now=NOW)
    assert sum(r["planned"] for r in by_week) == sum(r["planned"] for r in rows.values())


def test_adherence_by_participant(sim_trial):
    rows = {r["study_id"]: r for r in selectors.adherence(trial=sim_trial, by="participant", now=NOW)}
    p = (
        Participant.objects.filter(trial=sim_trial, randomised_at__isnull=False, withdrawn_at__isnull=True)
        .order_by("study_id")
        .first()
    )
    today = NOW.astimezone(p.zone).date()
    planned = [d for d in range(0, 42, 3) if p.day0 + timedelta(days=d) <= today]  # the demo's dosing block
    assert planned and rows[p.study_id]["logged"] > 0  # a figure of a participant who did dose
    logged = {
        (d.taken_at.astimezone(p.zone).date() - p.day0).days for d in DoseLog.objects.filter(participant=p)
    } & set(planned)
    assert rows[p.study_id]["planned"] == len(planned)
    assert rows[p.study_id]["logged"] == len(logged)


def test_site_scope_narrows_every_figure(sim_trial, site_ldn):
    summary = selectors.trial_summary(trial=sim_trial, site_ids={site_ldn.pk}, unblinded=True, now=NOW)
    ldn = Participant.objects.filter(trial=sim_trial, site=site_ldn)
    assert summary["consort"]["screened"] == ldn.count()
    assert ldn.exists() and summary["consort"]["screened"] < Participant.objects.filter(trial=sim_trial).count()
    assert {r["site"] for r in summary["adherence"]["by_site"]} == {"LDN"}
    guesses = sum(g["active"] + g["placebo"] + g["dont_know"] for g in summary["blinding"]["guesses"])
    assert guesses > 0 and guesses == sum(sum(map(sum, i["table"])) for i in summary["blinding"]["indices"])
