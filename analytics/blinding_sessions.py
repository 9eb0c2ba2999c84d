"""Blinding measured per time point (a blinding-guess session or a period end): pure functions, no database.

Input is one `GuessRecord` per participant and time point: the treatment the participant actually had at that
time point ("active" / "placebo" — in a crossover, the treatment of the period, not a fixed arm), the guess
("active" / "placebo" / "dont_know"), the confidence (0–100, optional) and an outcome value (optional; the
selector chooses it, e.g. the change of a score from baseline). `session_figures` gives, for one time point:

- `correct_guess_rate`: per arm and overall, correct ÷ those who guessed active or placebo, with Wilson score
  intervals (Wilson 1927); don't-know answers are counted apart and are not in the denominator;
- `bang` (per arm) and `james` (overall), from `analytics.blinding` (the 3 × 2 table, don't know included);
- `outcome_by_arm_guess`: the outcome mean per arm × guess cell with a normal-approximation interval
  (mean ± z·sd/√n, sd with n − 1): if scores follow the guess rather than the capsule, the two "guess active"
  cells sit together above the two "guess placebo" cells;
- `cgrc`: the Correct Guess Rate Curve estimate of the treatment effect at chance-level guessing (below).

## The CGRC (Szigeti, Nutt, Carhart-Harris, Erritzoe; Sci Rep 2023 13:12107, doi 10.1038/s41598-023-34938-7)

The paper's idea: when the outcome is partly driven by what participants believe they took ("activated
expectancy bias"), the naive between-arm difference mixes the drug effect with the effect of breaking blind.
Re-estimate the effect in pseudo-trials in which the correct-guess rate (CGR) is set by construction, and read
the curve "effect as a function of CGR" at the CGR of a perfectly blinded two-arm trial, 0.5.

What is implemented here follows the authors' published code (github.com/szb37/cgrc, `src/cgrc/core.py`,
`CorrectGuessRateCurve`, with its defaults `strata_sampling='all_prop'`, `use_KDE=True`,
`estimator='mean'`, model "score ~ condition" whose condition coefficient is the difference of means):

1. Split the guessers into four strata by (condition, guess): AC-AC and PL-PL (correct), AC-PL and PL-AC
   (incorrect). Don't-know answers have no stratum and are left out (the paper's trial had no don't-know).
2. For a target CGR c and the trial's size N (the guessers): the correct part has round(c·N) members, the
   incorrect part the rest. Within the correct part, PL-PL takes its observed share PL-PL ÷ (PL-PL + AC-AC)
   (rounded to whole participants) and AC-AC the rest; within the incorrect part AC-PL takes its share
   AC-PL ÷ (AC-PL + PL-AC) and PL-AC the rest. (The published code rounds the stratum shares to two decimals
   first; here they are exact.)
3. Each pseudo-participant's outcome is drawn from a Gaussian kernel density fitted to the observed outcomes of
   their stratum: one observed outcome picked at random plus N(0, bandwidth²) noise (sklearn's
   `KernelDensity(kernel='gaussian')` with its default bandwidth 1.0, in outcome units, as the published
   code; the published code also rounds the draws to integers, which is not done here).
4. The pseudo-trial's effect is mean(AC) − mean(PL) (the OLS condition coefficient of "score ~ condition").
   The estimate at c is the mean over `n_trials` pseudo-trials; its interval is the 2.5th–97.5th percentile of
   the pseudo-trial effects (a spread of the resampling, not a confidence interval for the trial).

Besides the resampled value, `expected` gives the limit of infinitely many pseudo-trials (the kernel noise has
mean zero): at CGR c, with stratum sizes n_s as in step 2 and stratum means m_s,
    effect(c) = (n_ACAC·m_ACAC + n_ACPL·m_ACPL)/(n_ACAC + n_ACPL) − (n_PLPL·m_PLPL + n_PLAC·m_PLAC)/(n_PLPL + n_PLAC)
— a deterministic figure that is easy to check by hand.

Assumptions (as stated by the paper, and what follows from the method): the outcome's dependence on the guess
is the same mechanism in the trial and in the hypothetical blinded trial (strata are exchangeable: an AC-PL
participant of the pseudo-trial looks like the observed AC-PL participants); the guess is measured before or
at the outcome and reflects belief during treatment; the arms' proportions among correct and among incorrect
guessers are kept as observed; each of the four strata needs observed members (otherwise the estimate is
undefined and reported as such, with the reason); with few participants per stratum the estimate is noisy.
The CGRC corrects for expectancy tied to the guess; it cannot separate a drug effect that itself causes
correct guessing from expectancy (the paper discusses this as a limitation).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from .blinding import bang, guess_table, james

__all__ = [
    "GuessRecord",
    "wilson",
    "mean_interval",
    "correct_guess_rates",
    "outcome_by_arm_guess",
    "cgrc",
    "session_figures",
]

ARMS = ("active", "placebo")
GUESSES = ("active", "placebo", "dont_know")
CHANCE = 0.5
# Strata of the CGRC, named as in the paper's code: condition then guess (AC = active, PL = placebo).
STRATA = {"ACAC": ("active", "active"), "ACPL": ("active", "placebo"),
          "PLAC": ("placebo", "active"), "PLPL": ("placebo", "placebo")}  # fmt: skip


@dataclass(frozen=True)
class GuessRecord:
    """One participant at one time point. `arm` is the treatment actually received at that time point."""

    participant: str
    arm: str
    guess: str
    confidence: float | None = None
    outcome: float | None = None


def _z(conf: float) -> float:
    if not 0 < conf < 1:
        raise ValueError("conf must be between 0 and 1")
    return NormalDist().inv_cdf(1 - (1 - conf) / 2)


def wilson(k: int, n: int, conf: float = 0.95) -> dict:
    """Wilson score interval for k successes in n: {"k", "n", "rate", "lower", "upper"}; None figures for n = 0.

    centre = (p + z²/2n) / (1 + z²/n), half-width = z·√(p(1−p)/n + z²/4n²) / (1 + z²/n).
    """
    if n < 0 or k < 0 or k > n:
        raise ValueError("need 0 <= k <= n")
    if n == 0:
        return {"k": 0, "n": 0, "rate": None, "lower": None, "upper": None}
    z = _z(conf)
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return {"k": k, "n": n, "rate": p, "lower": max(0.0, centre - half), "upper": min(1.0, centre + half)}


def mean_interval(values: Sequence[float], conf: float = 0.95) -> dict:
    """{"n", "mean", "sd", "lower", "upper"}: mean ± z·sd/√n (sd with n − 1). sd and interval None for n < 2."""
    values = [float(v) for v in values]
    n = len(values)
    if n == 0:
        return {"n": 0, "mean": None, "sd": None, "lower": None, "upper": None}
    mean = statistics.fmean(values)
    if n < 2:
        return {"n": 1, "mean": mean, "sd": None, "lower": None, "upper": None}
    sd = statistics.stdev(values)
    half = _z(conf) * sd / math.sqrt(n)
    return {"n": n, "mean": mean, "sd": sd, "lower": mean - half, "upper": mean + half}


def _checked(records: Iterable[GuessRecord]) -> list[GuessRecord]:
    out = []
    for r in records:
        if r.arm not in ARMS:
            raise ValueError(f"arm must be active or placebo, not {r.arm!r}")
        if r.guess not in GUESSES:
            raise ValueError(f"guess must be active, placebo or dont_know, not {r.guess!r}")
        out.append(r)
    return out


def correct_guess_rates(records: Iterable[GuessRecord], conf: float = 0.95) -> dict:
    """Per arm and overall: respondents, don't-know answers, and the correct-guess rate among guessers (Wilson)."""
    records = _checked(records)
    out = {}
    for arm in (*ARMS, "overall"):
        rows = [r for r in records if arm == "overall" or r.arm == arm]
        guessed = [r for r in rows if r.guess != "dont_know"]
        correct = sum(1 for r in guessed if r.guess == r.arm)
        out[arm] = {
            "respondents": len(rows),
            "dont_know": len(rows) - len(guessed),
            **wilson(correct, len(guessed), conf),
        }
    return out


def outcome_by_arm_guess(records: Iterable[GuessRecord], conf: float = 0.95) -> list[dict]:
    """Outcome mean per arm × guess (six cells, empty ones with n = 0), records without an outcome left out."""
    records = _checked(records)
    out = []
    for arm in ARMS:
        for guess in GUESSES:
            values = [r.outcome for r in records if r.arm == arm and r.guess == guess and r.outcome is not None]
            out.append({"arm": arm, "guess": guess, **mean_interval(values, conf)})
    return out


def _strata_sizes(counts: dict[str, int], cgr: float) -> dict[str, int]:
    """Step 2 of the published algorithm ('all_prop'): sizes of the four strata of a pseudo-trial at `cgr`."""
    total = sum(counts.values())
    correct = round(cgr * total)
    incorrect = total - correct
    plpl = round(correct * counts["PLPL"] / (counts["PLPL"] + counts["ACAC"]))
    acpl = round(incorrect * counts["ACPL"] / (counts["ACPL"] + counts["PLAC"]))
    return {"PLPL": plpl, "ACAC": correct - plpl, "ACPL": acpl, "PLAC": incorrect - acpl}


def _effect(sizes: dict[str, int], means: dict[str, float]) -> float | None:
    def arm_mean(a: str, b: str) -> float | None:
        n = sizes[a] + sizes[b]
        return (sizes[a] * means[a] + sizes[b] * means[b]) / n if n else None

    active, placebo = arm_mean("ACAC", "ACPL"), arm_mean("PLPL", "PLAC")
    return None if active is None or placebo is None else active - placebo


def cgrc(
    records: Iterable[GuessRecord],
    *,
    target: float = CHANCE,
    curve: Sequence[float] = (0.0, 0.25, 0.5, 0.75, 1.0),
    n_trials: int = 200,
    bandwidth: float = 1.0,
    seed: int = 0,
) -> dict:
    """The CGRC estimate of the treatment effect at CGR `target` (0.5: chance), as in the module docstring.

    Returns {"defined", "reason", "n", "trial_cgr", "naive_effect", "target", "expected", "estimate", "lower",
    "upper", "n_trials", "bandwidth", "curve": [{"cgr", "expected"}]}. Undefined (defined False, figures None,
    `reason` says why) when a stratum has no participant with an outcome. Deterministic for a given `seed` (numpy's
    default generator: every pseudo-trial drawn at once).
    """
    if not 0 <= target <= 1 or any(not 0 <= c <= 1 for c in curve):
        raise ValueError("CGR values must be between 0 and 1")
    if n_trials < 1 or bandwidth < 0:
        raise ValueError("n_trials must be positive and bandwidth non-negative")
    records = [r for r in _checked(records) if r.guess != "dont_know" and r.outcome is not None]
    scores = {s: [float(r.outcome) for r in records if (r.arm, r.guess) == key] for s, key in STRATA.items()}
    counts = {s: len(v) for s, v in scores.items()}
    n = sum(counts.values())
    active = [float(r.outcome) for r in records if r.arm == "active"]
    placebo = [float(r.outcome) for r in records if r.arm == "placebo"]
    result = {
        "defined": False,
        "reason": None,
        "n": n,
        "strata": counts,
        "trial_cgr": (counts["ACAC"] + counts["PLPL"]) / n if n else None,
        "naive_effect": statistics.fmean(active) - statistics.fmean(placebo) if active and placebo else None,
        "target": target,
        "expected": None,
        "estimate": None,
        "lower": None,
        "upper": None,
        "n_trials": n_trials,
        "bandwidth": bandwidth,
        "curve": [],
    }
    empty = [s for s, c in counts.items() if c == 0]
    if empty:
        result["reason"] = "no guessers with an outcome in stratum " + ", ".join(empty) + " (arm-guess)"
        return result
    means = {s: statistics.fmean(v) for s, v in scores.items()}
    result["curve"] = [{"cgr": c, "expected": _effect(_strata_sizes(counts, c), means)} for c in curve]
    sizes = _strata_sizes(counts, target)
    result["expected"] = _effect(sizes, means)
    n_active, n_placebo = sizes["ACAC"] + sizes["ACPL"], sizes["PLPL"] + sizes["PLAC"]
    if not n_active or not n_placebo:
        result["reason"] = "at this CGR one arm has no pseudo-participants"
        return result
    # All pseudo-trials at once (n_trials x stratum size draws per stratum), from one seeded generator: the same
    # seed and records give the same figures (the stored summary equals a live computation).
    rng = np.random.default_rng(seed)
    sums = {}
    for s, k in sizes.items():
        observed = np.asarray(scores[s], dtype=float)
        drawn = observed[rng.integers(0, len(observed), size=(n_trials, k))]
        sums[s] = (drawn + rng.normal(0.0, bandwidth, size=(n_trials, k))).sum(axis=1)
    effects = sorted(((sums["ACAC"] + sums["ACPL"]) / n_active - (sums["PLPL"] + sums["PLAC"]) / n_placebo).tolist())
    result.update(
        defined=True,
        estimate=statistics.fmean(effects),
        lower=effects[int(0.025 * (len(effects) - 1))],
        upper=effects[math.ceil(0.975 * (len(effects) - 1))],
    )
    return result


def session_figures(records: Iterable[GuessRecord], *, conf: float = 0.95, cgrc_options: dict | None = None) -> dict:
    """Every figure of one time point: the guess table, correct-guess rates, Bang, James, outcome by arm × guess
    and the CGRC. UNBLINDED: the result is arm-bearing."""
    records = _checked(records)
    table = guess_table((r.guess, r.arm) for r in records)
    return {
        "n": len(records),
        "table": table,
        "correct_guess_rate": correct_guess_rates(records, conf),
        "bang": {arm: est.as_dict() for arm, est in bang(table, conf=conf).items()},
        "james": james(table, conf=conf).as_dict(),
        "outcome_by_arm_guess": outcome_by_arm_guess(records, conf),
        "cgrc": cgrc(records, **(cgrc_options or {})),
    }
