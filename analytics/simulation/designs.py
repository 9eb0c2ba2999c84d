"""Trial designs in the simulator: crossover periods and self-blinding envelopes, with expectancy-driven effects.

The answer model of a plain trial (model.py) knows one arm per participant. In a crossover trial the treatment
changes with the period, and in a self-blinding trial with the envelope drawn for the period; in both the
blinding figures ask whether scores follow the guess or the capsule. `DesignAnswers` wraps the plain answer
model and answers two instruments differently:

- the guess instrument (an instrument with a `guess` item): the guess comes from the shared expectancy model
  (`analytics.design_simulation.ExpectancyModel`): it follows the period's treatment with a probability that rises
  with the doses taken in the period so far, and otherwise with the participant's baseline expectancy;
- the outcome instrument of the blinding figures (`analytics.blinding_selectors.default_outcome`, e.g. PHQ-9):
  the score improves from baseline by the expectancy model's outcome, which follows the guess — the true drug
  effect is `true_effect` (zero by default).

The period and its treatment come from production's one definition: `trialsite.protocol.crossover` (the
participant's arm sequence is the allocation slot's) or, in a self-blinding trial, the condition of the envelope
recorded for the period — NOT YET: the simulator makes no envelopes, so self-blinding trials use the plain
model (and the blinding figures read a self-blinding trial's allocated arm, not the envelopes). Each (participant, study day) guess
is drawn from its own seeded generator, so the order in which the simulator answers surveys does not matter.
"""

from __future__ import annotations

import random

from analytics.design_simulation import ExpectancyModel

from .model import clip

DEFAULT_MODEL = ExpectancyModel(expectancy_effect=6.0, expectancy_slope=1.0, detect_per_dose=0.2, noise_sd=1.5)


def _guess_instruments(protocol) -> set[str]:
    return {i.slug for i in protocol.instruments if any(item.key == "guess" for item in i.items)}


class DesignAnswers:
    """The plain answer model, with guesses and the outcome driven by the period's treatment (see module doc)."""

    def __init__(self, sim, base, *, model: ExpectancyModel = DEFAULT_MODEL, seed: int = 0):
        from analytics.blinding_selectors import default_outcome
        from participants.models import AllocationSlot

        self.sim, self.base, self.model, self.seed = sim, base, model, seed
        protocol = sim.protocol
        self.cx = protocol.crossover
        self.placebo = protocol.control_arm().code
        self.guess_slugs = _guess_instruments(protocol)
        outcome = default_outcome(protocol)
        self.outcome_slug = outcome[0] if outcome else None
        self._slots = AllocationSlot.objects.filter(allocation_list__trial=sim.trial)
        self.sequences: dict[int, str] = {}  # slot pk → arm sequence, read when first needed (after allocation)
        self._guesses: dict = {}

    def __getattr__(self, name):  # everything else is the plain model's
        return getattr(self.base, name)

    # -- the period's treatment ------------------------------------------------------------------------
    def period_of(self, day: int) -> int | None:
        return self.cx.period_ending_by(day)  # a guess in the washout is about the period just ended

    def treatment(self, p, period: int) -> str | None:
        if p.slot_pk not in self.sequences:
            self.sequences.update(self._slots.values_list("pk", "arm_sequence"))
        sequence = self.sequences.get(p.slot_pk)
        return self.cx.sequence(sequence).arms[period - 1] if sequence else p.arm

    def doses_by(self, p, period: int, day: int, rng: random.Random) -> int:
        """Doses taken in the period up to `day` (each planned dose taken with the participant's dose rate)."""
        planned = [d for d in self.cx.dose_days() if self.cx.period_of(d) == period and d <= day]
        return sum(rng.random() < p.dose_rate for _ in planned)

    def expectancy(self, p) -> float:
        answers = p.baseline_answers.get("expectancy") or {}
        values = [v for v in answers.values() if isinstance(v, int | float) and not isinstance(v, bool)]
        return sum(values) / len(values) if values else 50.0

    def guess(self, p, day: int) -> tuple[str, bool] | None:
        """(guess, treatment is active) at a study day, the same whichever survey asks first."""
        period = self.period_of(day)
        arm = self.treatment(p, period) if period else None
        if arm is None:
            return None
        key = (p.uuid, day)
        if key not in self._guesses:
            rng = random.Random(f"{self.seed}-{p.uuid}-{day}")
            active = arm != self.placebo
            g = self.model.guess(
                rng, active=active, doses=self.doses_by(p, period, day, rng), expectancy=self.expectancy(p)
            )
            self._guesses[key] = (g, active, rng.random())
        g, active, _ = self._guesses[key]
        return g, active

    # -- answers ---------------------------------------------------------------------------------------
    def answers(self, slug: str, p, spec, *, day: int, baseline: bool) -> dict:
        if baseline or p.day0 is None:
            return self.base.answers(slug, p, spec, day=day, baseline=baseline)
        if slug in self.guess_slugs:
            drawn = self.guess(p, day)
            if drawn is not None:
                conf = 20 if drawn[0] == "dont_know" else 55
                return {"guess": drawn[0], "confidence": int(clip(round(self.base.rng.gauss(conf, 18)), 0, 100))}
        if slug == self.outcome_slug and slug == "phq9":
            drawn = self.guess(p, day)
            if drawn is not None:
                g, active = drawn
                rng = random.Random(f"{self.seed}-{p.uuid}-{day}-outcome")
                improvement = self.model.outcome(rng, active=active, guess=g, expectancy=self.expectancy(p))
                total = clip(p.baseline_phq9 - 2.0 - improvement, 0, 27)
                ans = self.base.sum_items([f"phq9_{i}" for i in range(1, 9)], total * 8 / 9)
                ans["phq9_9"] = 0
                return ans
        return self.base.answers(slug, p, spec, day=day, baseline=baseline)


def design_answer_model(sim, base, *, seed: int = 0):
    """The answer model for the trial's design: `base` for a plain trial, DesignAnswers for a crossover trial.
    (Self-blinding trials still use the plain model: see the module doc.)"""
    if sim.protocol.crossover is None:
        return base
    return DesignAnswers(sim, base, seed=seed)
