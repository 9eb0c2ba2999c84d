"""Simulated blinding guesses and outcomes with expectancy-driven effects (pure, no database).

A small generator for the blinding analyses (tests, the demo's CGRC figures): it is separate from the trial
simulator (`analytics.simulation`), which makes participants and answers through the services.

The model, per participant and time point (after `doses` doses):
- treatment: "active" or "placebo" (1:1, or given);
- baseline expectancy E ~ uniform 0–100 (the baseline expectancy instrument's score);
- guessing improves with dose: an active participant notices the drug with probability
  1 − (1 − detect_per_dose)^doses and then guesses "active"; otherwise (and always on placebo) the participant
  guesses "active" with probability `false_active` + `expectancy_guess`·(E − 50)/100, "don't know" with
  probability `dont_know`, else "placebo";
- the outcome follows the guess, not the capsule: outcome = true_effect·[active] + expectancy_effect·[guess is
  active] + expectancy_slope·(E − 50)/50 + N(0, noise_sd²).

With `true_effect=0` and `expectancy_effect>0`, the naive active − placebo difference is positive only because
active participants guess "active" more often; the CGRC estimate at chance guessing is near zero.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from .blinding_sessions import GuessRecord

__all__ = ["ExpectancyModel", "simulate_session", "simulate_design", "simulate_crossover"]


@dataclass(frozen=True)
class ExpectancyModel:
    """The model above, one participant and time point at a time (also used by the trial simulator,
    `analytics.simulation.designs`, so both generators share one model)."""

    true_effect: float = 0.0
    expectancy_effect: float = 6.0
    expectancy_slope: float = 2.0
    detect_per_dose: float = 0.2
    false_active: float = 0.3
    expectancy_guess: float = 0.2
    dont_know: float = 0.0
    noise_sd: float = 5.0

    def __post_init__(self):
        if not 0 <= self.detect_per_dose <= 1:
            raise ValueError("detect_per_dose must be a probability")

    def guess(self, rng: random.Random, *, active: bool, doses: int, expectancy: float) -> str:
        """ "active", "placebo" or "dont_know" after `doses` doses; noticing the drug gets likelier with each."""
        if active and rng.random() < 1 - (1 - self.detect_per_dose) ** max(doses, 0):
            return "active"
        u = rng.random()
        p_active = min(1.0, max(0.0, self.false_active + self.expectancy_guess * (expectancy - 50) / 100))
        return "active" if u < p_active else "dont_know" if u < p_active + self.dont_know else "placebo"

    def outcome(self, rng: random.Random, *, active: bool, guess: str, expectancy: float) -> float:
        """The improvement: follows the guess (expectancy), plus the true effect of the capsule."""
        return (
            self.true_effect * active
            + self.expectancy_effect * (guess == "active")
            + self.expectancy_slope * (expectancy - 50) / 50
            + rng.gauss(0.0, self.noise_sd)
        )


def simulate_session(
    *,
    n: int,
    doses: int,
    seed: int = 0,
    arms: list[str] | None = None,
    expectancy: list[float] | None = None,
    **params,
) -> list[GuessRecord]:
    """One time point's records for `n` participants (ids p000…). `arms`/`expectancy` fix them per participant
    (so several time points of one design share them); otherwise drawn from `seed`. `params`: ExpectancyModel's."""
    if n < 0 or doses < 0:
        raise ValueError("n and doses must be non-negative, detect_per_dose a probability")
    model = ExpectancyModel(**params)
    rng = random.Random(seed)
    arms = arms or [("active", "placebo")[i % 2] for i in rng.sample(range(n), n)]
    expectancy = expectancy or [rng.uniform(0, 100) for _ in range(n)]
    records = []
    for i in range(n):
        active, e = arms[i] == "active", expectancy[i]
        guess = model.guess(rng, active=active, doses=doses, expectancy=e)
        outcome = model.outcome(rng, active=active, guess=guess, expectancy=e)
        records.append(GuessRecord(participant=f"p{i:03d}", arm=arms[i], guess=guess, confidence=None, outcome=outcome))
    return records


def simulate_design(*, n: int, dose_counts: list[int], seed: int = 0, **model) -> dict[int, list[GuessRecord]]:
    """Several time points of one trial (e.g. after the 2nd and the 7th dose): {doses: records}, same participants
    and expectancies throughout, guesses drawn afresh at each time point."""
    rng = random.Random(seed)
    arms = [("active", "placebo")[i % 2] for i in rng.sample(range(n), n)]
    expectancy = [rng.uniform(0, 100) for _ in range(n)]
    return {
        d: simulate_session(n=n, doses=d, seed=seed * 1000 + d, arms=arms, expectancy=expectancy, **model)
        for d in dose_counts
    }


def simulate_crossover(
    *, n: int, dose_counts: list[int], seed: int = 0, **model
) -> dict[tuple[int, int], list[GuessRecord]]:
    """A two-period AB/BA crossover: {(period, doses): records}. Half the participants take active in period 1
    and placebo in period 2, the others the reverse; expectancies are the participant's own throughout."""
    rng = random.Random(seed)
    first = [("active", "placebo")[i % 2] for i in rng.sample(range(n), n)]
    second = ["placebo" if a == "active" else "active" for a in first]
    expectancy = [rng.uniform(0, 100) for _ in range(n)]
    return {
        (period, d): simulate_session(
            n=n, doses=d, seed=seed * 1000 + period * 100 + d, arms=arms, expectancy=expectancy, **model
        )
        for period, arms in ((1, first), (2, second))
        for d in dose_counts
    }
