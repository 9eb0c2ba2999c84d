"""simulate_trial on a crossover design: each period's treatment comes from the participant's arm sequence, guessing
improves with the doses of the period, scores follow the guess (true effect zero), so the blinding figures the
summary API shows (`blinding_session_figures`) give a naive effect that the CGRC estimate shrinks towards zero."""

from collections import Counter
from datetime import UTC, datetime
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command

from analytics.blinding_selectors import blinding_session_figures
from participants.models import Allocation
from surveys.models import Response
from trialsite.models import Trial
from trialsite.protocol.services import protocol_load_file
from trialsite.services import site_create

NOW = datetime(2026, 4, 20, 12, 0, tzinfo=UTC)
CROSSOVER = Path(__file__).resolve().parents[2] / "protocols" / "crossover.yaml"


@pytest.fixture
def crossover(db):
    from analytics.simulation import simulate_trial

    trial = protocol_load_file(path=CROSSOVER).trial
    site_create(code="AMS", name="Amsterdam", timezone="Europe/Amsterdam", trials=[trial])
    simulate_trial(trial=trial, participants=60, days=60, seed=11, now=NOW)
    return trial


def _guesses(trial, days):
    """(sequence, guess) counts at the given planned days, read with the ORM (independently of the selector)."""
    sequence = {a.participant_id: a.slot.arm_sequence for a in Allocation.objects.filter(participant__trial=trial)}
    return Counter(
        (sequence[r.participant_id], r.answers["guess"])
        for r in Response.objects.filter(
            participant__trial=trial, instance__schedule_key="session_guess", instance__study_day__in=days
        )
    )


def test_crossover_guesses_follow_the_period_treatment_and_improve_with_dose(crossover):
    # Period 2 (days 38 and 53): the BA sequence takes the active arm, AB the placebo — guesses follow that period's
    # treatment, not the first period's arm.
    second = _guesses(crossover, [38, 53])
    share = {s: second[(s, "active")] / sum(v for (q, _), v in second.items() if q == s) for s in ("AB", "BA")}
    assert share["BA"] > share["AB"] + 0.2

    # The active period's guessers say "active" more often after its 7th dose (AB: day 18, BA: day 53) than after
    # its 2nd (AB: day 3, BA: day 38).
    def active_period(ab_day, ba_day):
        counts = _guesses(crossover, [ab_day]), _guesses(crossover, [ba_day])
        pairs = [(g, v) for c, s in zip(counts, ("AB", "BA"), strict=True) for (q, g), v in c.items() if q == s]
        n = sum(v for _, v in pairs)
        return n, sum(v for g, v in pairs if g == "active") / max(n, 1)

    (early_n, early), (late_n, late) = active_period(3, 38), active_period(18, 53)
    assert early_n > 15 and late_n > 15
    assert late > early + 0.1, (early, late)


def test_crossover_naive_effect_is_shrunk_by_the_cgrc(crossover):
    figures = blinding_session_figures(trial=crossover)
    assert figures["crossover"] is True and figures["outcome"] == "phq9.total" and figures["change_from_baseline"]
    periods = {p["period"]: p["cgrc"] for p in figures["periods"]}
    assert set(periods) == {1, 2}
    for period, c in periods.items():
        assert c["defined"], (period, c["reason"])
        # Scores follow the guess and the active period's participants guess "active" more often: the active
        # arm seems to improve more (a lower PHQ-9 change) although the true effect is zero.
        assert c["naive_effect"] < -1.0, (period, c["naive_effect"])
        assert abs(c["estimate"]) < abs(c["naive_effect"]) - 0.3, (period, c)


def test_load_protocol_then_simulate_trial_commands(db):
    out = StringIO()
    call_command("load_protocol", str(CROSSOVER), stdout=out)
    trial = Trial.objects.get(slug="microdose-crossover")
    site_create(code="AMS", name="Amsterdam", timezone="Europe/Amsterdam", trials=[trial])
    call_command(
        "simulate_trial", "--trial", trial.slug, "--participants", "30", "--days", "60", "--seed", "3", stdout=out
    )
    assert "simulated 30 participants in microdose-crossover" in out.getvalue()
    figures = blinding_session_figures(trial=trial)
    assert [p["period"] for p in figures["periods"]] == [1, 2]
    # Period ends carry an outcome for the guessers (PHQ-9 at the period's last day).
    assert all(p["cgrc"]["n"] > 0 for p in figures["periods"])


SELF_BLINDING = Path(__file__).resolve().parents[2] / "protocols" / "self-blinding.yaml"


def test_self_blinding_envelopes_are_recorded_and_drive_the_guesses(db):
    from analytics.simulation import simulate_trial
    from participants.kit_models import KitEnvelope

    trial = protocol_load_file(path=SELF_BLINDING).trial
    site_create(code="AMS", name="Amsterdam", timezone="Europe/Amsterdam", trials=[trial])
    simulate_trial(trial=trial, participants=60, days=30, seed=5, now=NOW)
    # Every randomised participant has a kit (4 envelopes per condition) made by the kit service; those still in
    # the trial recorded one envelope per period (periods start on days 1, 8, 15, 22), on the period's start day.
    allocated = Allocation.objects.filter(participant__trial=trial).count()
    assert allocated > 30
    assert KitEnvelope.objects.filter(participant__trial=trial).count() == allocated * 8
    recorded = KitEnvelope.objects.filter(participant__trial=trial, period__isnull=False)
    per_participant = Counter(recorded.values_list("participant_id", flat=True))
    assert per_participant and set(per_participant.values()) == {4}
    assert set(recorded.values_list("recorded_study_day", flat=True)) == {1, 8, 15, 22}
    # The week's guess follows the condition of the envelope recorded for that week (not the allocation).
    condition = {(e.participant_id, e.period): e.condition.code for e in recorded.select_related("condition")}
    counts = Counter()
    for r in Response.objects.filter(participant__trial=trial, instance__schedule_key="week_guess"):
        week = {7: 1, 14: 2, 21: 3, 28: 4}[r.instance.study_day]
        if (r.participant_id, week) in condition:
            counts[(condition[(r.participant_id, week)], r.answers["guess"])] += 1
    active = counts[("MD", "active")] / max(1, sum(v for (c, _), v in counts.items() if c == "MD"))
    placebo = counts[("PL", "active")] / max(1, sum(v for (c, _), v in counts.items() if c == "PL"))
    assert sum(counts.values()) > 60
    assert active > placebo + 0.2, (active, placebo)
    # The summary API's figures attribute each week's guess to that week's envelope: at the post session (day 28,
    # well-being follows the guess, true effect zero) the naive effect is positive and the CGRC shrinks it.
    figures = blinding_session_figures(trial=trial)
    post = next(t for t in figures["time_points"] if (t["schedule_key"], t["planned_day"]) == ("week_guess", 28))
    c = post["cgrc"]
    assert c["defined"], c["reason"]
    assert c["naive_effect"] > 3.0, c
    assert abs(c["estimate"]) < abs(c["naive_effect"]) - 1.0, c
