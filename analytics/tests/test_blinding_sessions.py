"""Per-session blinding figures on a small hand-computed table, and the CGRC on simulated data."""

import pytest

from analytics.blinding_sessions import GuessRecord, cgrc, session_figures, wilson
from analytics.design_simulation import simulate_design, simulate_session

# Ten participants at one time point: (arm actually taken, guess, outcome).
TABLE = [
    ("active", "active", 10),
    ("active", "active", 14),
    ("active", "active", 12),
    ("active", "placebo", 4),
    ("active", "dont_know", 7),
    ("placebo", "placebo", 2),
    ("placebo", "placebo", 6),
    ("placebo", "active", 11),
    ("placebo", "active", 9),
    ("placebo", "dont_know", 5),
]


def records(rows=TABLE):
    return [GuessRecord(participant=f"p{i}", arm=a, guess=g, outcome=o) for i, (a, g, o) in enumerate(rows)]


def test_wilson_interval_matches_published_values():
    # Wilson score intervals at 95%: 3/4 → 0.3006–0.9544, 2/4 → 0.1500–0.8500, 0/10 → 0–0.2775.
    assert wilson(3, 4)["lower"] == pytest.approx(0.30064, abs=1e-4)
    assert wilson(3, 4)["upper"] == pytest.approx(0.95441, abs=1e-4)
    assert (wilson(2, 4)["lower"], wilson(2, 4)["upper"]) == (
        pytest.approx(0.15004, abs=1e-4),
        pytest.approx(0.84996, abs=1e-4),
    )
    assert wilson(0, 10)["lower"] == pytest.approx(0.0, abs=1e-12) and wilson(0, 10)["upper"] == pytest.approx(
        0.27753, abs=1e-4
    )
    assert wilson(0, 0)["rate"] is None


def test_session_figures_match_hand_computed_values():
    fig = session_figures(records(), cgrc_options={"n_trials": 50, "seed": 1})
    assert fig["n"] == 10
    assert fig["table"] == [[3, 2], [1, 2], [1, 1]]
    cgr = fig["correct_guess_rate"]
    # Active: 3 of 4 guessers correct (the don't-know is counted apart); placebo 2 of 4; overall 5 of 8.
    assert (cgr["active"]["k"], cgr["active"]["n"], cgr["active"]["dont_know"]) == (3, 4, 1)
    assert cgr["active"]["rate"] == 0.75 and cgr["active"]["lower"] == pytest.approx(0.30064, abs=1e-4)
    assert cgr["placebo"]["rate"] == 0.5 and cgr["placebo"]["upper"] == pytest.approx(0.84996, abs=1e-4)
    assert (cgr["overall"]["k"], cgr["overall"]["n"], cgr["overall"]["respondents"]) == (5, 8, 10)
    # Bang: (correct − wrong) / n with don't know in n: active (3 − 1)/5, placebo (2 − 2)/5.
    assert fig["bang"]["active"]["index"] == pytest.approx(0.4)
    assert fig["bang"]["placebo"]["index"] == pytest.approx(0.0)
    assert 0 < fig["james"]["index"] < 1
    cells = {(c["arm"], c["guess"]): c for c in fig["outcome_by_arm_guess"]}
    # active × guess active: 10, 14, 12 → mean 12, sd 2, 12 ± 1.96·2/√3.
    aa = cells[("active", "active")]
    assert (aa["n"], aa["mean"], aa["sd"]) == (3, 12, pytest.approx(2.0))
    assert aa["lower"] == pytest.approx(12 - 1.959964 * 2 / 3**0.5, abs=1e-5)
    # placebo × guess active: 11, 9 → mean 10, sd √2, 10 ± 1.96.
    pa = cells[("placebo", "active")]
    assert (pa["mean"], pa["lower"], pa["upper"]) == (
        10,
        pytest.approx(8.040036, abs=1e-5),
        pytest.approx(11.959964, abs=1e-5),
    )
    # One value: a mean without an interval.
    assert cells[("active", "placebo")] == {
        "arm": "active",
        "guess": "placebo",
        "n": 1,
        "mean": 4,
        "sd": None,
        "lower": None,
        "upper": None,
    }
    assert cells[("placebo", "dont_know")]["mean"] == 5


def test_cgrc_by_hand_on_the_small_table():
    result = cgrc(records(), n_trials=400, bandwidth=0.0, seed=3)
    # Strata among the 8 guessers: AC-AC 3 (mean 12), AC-PL 1 (4), PL-AC 2 (10), PL-PL 2 (4).
    assert result["strata"] == {"ACAC": 3, "ACPL": 1, "PLAC": 2, "PLPL": 2}
    assert result["trial_cgr"] == 5 / 8
    assert result["naive_effect"] == pytest.approx(10 - 7)  # active (10+14+12+4)/4, placebo (2+6+11+9)/4
    # At CGR 0.5: 4 correct → PL-PL round(4·2/5) = 2, AC-AC 2; 4 incorrect → AC-PL round(4·1/3) = 1, PL-AC 3.
    # active (2·12 + 1·4)/3 = 28/3, placebo (2·4 + 3·10)/5 = 38/5.
    assert result["expected"] == pytest.approx(28 / 3 - 38 / 5)
    # Resampled pseudo-trials (no kernel noise) scatter around the expected value.
    assert result["defined"] and result["estimate"] == pytest.approx(28 / 3 - 38 / 5, abs=0.5)
    assert result["lower"] <= result["estimate"] <= result["upper"]
    # At the trial's own CGR (5 of 8) the pseudo-trial has the observed strata: the curve gives the naive effect.
    curve = {c["cgr"]: c["expected"] for c in cgrc(records(), curve=[0.625])["curve"]}
    assert curve[0.625] == pytest.approx(3.0)


def test_cgrc_undefined_when_a_stratum_is_empty():
    rows = [r for r in TABLE if not (r[0] == "active" and r[1] == "placebo")]
    result = cgrc(records(rows))
    assert not result["defined"] and result["estimate"] is None and "ACPL" in result["reason"]
    with pytest.raises(ValueError):
        cgrc([GuessRecord(participant="x", arm="other", guess="active", outcome=1)])


def test_cgrc_moves_a_pure_expectancy_effect_towards_zero():
    # True drug effect zero; scores follow the guess (+6 when guessing active); guessing improves with dose.
    design = simulate_design(n=600, dose_counts=[2, 7], seed=11, true_effect=0.0, expectancy_effect=6.0)
    early, late = (session_figures(design[d], cgrc_options={"n_trials": 50, "seed": 2}) for d in (2, 7))
    assert late["correct_guess_rate"]["active"]["rate"] > early["correct_guess_rate"]["active"]["rate"]
    assert late["cgrc"]["naive_effect"] > 2.0  # an "effect" made by breaking blind
    # Over eight simulated trials: every CGRC estimate lies below its naive estimate, and on average the
    # CGRC is near the true zero while the naive estimate is not.
    naive, corrected = [], []
    for seed in range(8):
        rows = simulate_design(n=600, dose_counts=[7], seed=seed, true_effect=0.0, expectancy_effect=6.0)[7]
        c = cgrc(rows, n_trials=50, seed=seed)
        assert c["defined"] and c["estimate"] < c["naive_effect"]
        assert c["expected"] == pytest.approx(c["estimate"], abs=0.3)
        naive.append(c["naive_effect"])
        corrected.append(c["estimate"])
    mean_naive, mean_cgrc = sum(naive) / 8, sum(corrected) / 8
    assert mean_naive > 2.5
    assert abs(mean_cgrc) < mean_naive / 5


def test_cgrc_keeps_a_real_effect_that_does_not_follow_the_guess():
    # Positive control: a true effect of 5 with no expectancy effect survives the CGRC.
    rows = simulate_session(n=600, doses=7, seed=4, true_effect=5.0, expectancy_effect=0.0, expectancy_slope=0.0)
    c = cgrc(rows, n_trials=100)
    assert c["naive_effect"] == pytest.approx(5.0, abs=1.0)
    assert c["estimate"] == pytest.approx(5.0, abs=1.2)


def test_simulated_crossover_swaps_arms_and_the_demo_command_prints_both_designs():
    import io

    from django.core.management import call_command

    from analytics.design_simulation import simulate_crossover

    sessions = simulate_crossover(n=40, dose_counts=[2, 7], seed=3)
    p1, p2 = ({r.participant: r.arm for r in sessions[(period, 7)]} for period in (1, 2))
    assert p1.keys() == p2.keys() and all(p1[k] != p2[k] for k in p1)
    out = io.StringIO()
    call_command("blinding_demo", "--participants", "60", stdout=out)
    lines = out.getvalue().splitlines()
    assert sum(line.startswith("parallel") for line in lines) == 2
    assert sum(line.startswith("crossover") for line in lines) == 4
