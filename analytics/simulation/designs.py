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
recorded for the period (`envelopes_record`: production's kit services). Self-blinding outcomes are not
modelled yet (the outcome model answers PHQ-9 only), and the blinding figures read a self-blinding trial's
allocated arm, not the envelopes. Each (participant, study day) guess
is drawn from its own seeded generator, so the order in which the simulator answers surveys does not matter.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, time, timedelta

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
        self.period_starts = protocol.period_start_days()  # self-blinding periods (empty otherwise)
        self.conditions: dict = {}  # self-blinding: participant uuid → {period: condition (arm code)} recorded
        self._guesses: dict = {}

    def __getattr__(self, name):  # everything else is the plain model's
        return getattr(self.base, name)

    # -- the period's treatment ------------------------------------------------------------------------
    def period_of(self, day: int) -> int | None:
        if self.cx is None:  # self-blinding: the periods start on the envelope days
            return sum(1 for start in self.period_starts if start <= day) or None
        return self.cx.period_ending_by(day)  # a guess in the washout is about the period just ended

    def treatment(self, p, period: int) -> str | None:
        if self.cx is None:
            return self.conditions.get(p.uuid, {}).get(period)  # no envelope recorded: no guess model
        if p.slot_pk not in self.sequences:
            self.sequences.update(self._slots.values_list("pk", "arm_sequence"))
        sequence = self.sequences.get(p.slot_pk)
        return self.cx.sequence(sequence).arms[period - 1] if sequence else p.arm

    def doses_by(self, p, period: int, day: int, rng: random.Random) -> int:
        """Doses taken in the period up to `day` (each planned dose taken with the participant's dose rate)."""
        if self.cx is None:  # self-blinding: a capsule about every third day of the period (Szigeti 2021)
            planned = range(max(0, (day - self.period_starts[period - 1] + 1) // 3))
        else:
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
    def baseline(self, slug: str, p, spec) -> dict:
        return self.answers(slug, p, spec, day=0, baseline=True)

    def _scored_sliders(self, spec) -> dict:
        """A 0–100 well-being outcome (mean of sliders, higher is better): its sliders' answers at a level."""
        keys = set(spec.scoring.scores[0].items) if spec.scoring else set()
        return {i.key: i for i in spec.items if i.key in keys and i.type == "slider"}

    def _wellbeing(self, p, spec, improvement: float) -> dict:
        level = 75 - 2.2 * p.baseline_phq9 + 3 * improvement
        gauss = self.base.rng.gauss
        out = self.base.generic(spec)
        out.update({k: int(clip(round(level + gauss(0, 3)), 0, 100)) for k in self._scored_sliders(spec)})
        return out

    def answers(self, slug: str, p, spec, *, day: int, baseline: bool) -> dict:
        other_outcome = slug == self.outcome_slug and slug != "phq9" and self._scored_sliders(spec)
        if baseline and other_outcome:
            return self._wellbeing(p, spec, 0.0)
        if baseline or p.day0 is None:
            return self.base.answers(slug, p, spec, day=day, baseline=baseline)
        if slug in self.guess_slugs:
            drawn = self.guess(p, day)
            if drawn is not None:
                conf = 20 if drawn[0] == "dont_know" else 55
                return {"guess": drawn[0], "confidence": int(clip(round(self.base.rng.gauss(conf, 18)), 0, 100))}
        if slug == self.outcome_slug:
            drawn = self.guess(p, day)
            if drawn is not None:
                g, active = drawn
                rng = random.Random(f"{self.seed}-{p.uuid}-{day}-outcome")
                improvement = self.model.outcome(rng, active=active, guess=g, expectancy=self.expectancy(p))
                if other_outcome:
                    return self._wellbeing(p, spec, improvement)
                total = clip(p.baseline_phq9 - 2.0 - improvement, 0, 27)
                ans = self.base.sum_items([f"phq9_{i}" for i in range(1, 9)], total * 8 / 9)
                ans["phq9_9"] = 0
                return ans
        return self.base.answers(slug, p, spec, day=day, baseline=baseline)


def design_answer_model(sim, base, *, seed: int = 0):
    """The answer model for the trial's design: `base` for a plain trial, DesignAnswers for crossover and
    self-blinding trials."""
    if sim.protocol.crossover is None and sim.protocol.self_blinding is None:
        return base
    return DesignAnswers(sim, base, seed=seed)


def envelopes_record(sim, people) -> int:
    """Self-blinding: each randomised participant's kit is made at randomisation by production's
    `kit_envelopes_make`; at each period start (before `now` and any withdrawal) the participant takes an unused
    envelope at random and records its code with production's `kit_envelope_record`, as the app does. The
    recorded conditions then drive the guesses. Returns the number of envelopes recorded."""
    from participants.models import Allocation, Participant
    from participants.services.kits import kit_envelope_record, kit_envelopes_make

    model = sim.answer_model
    if not isinstance(model, DesignAnswers) or sim.protocol.self_blinding is None:
        return 0
    by_pk = {p.pk: p for p in people if p.fate == "randomised"}
    objs = Participant.objects.select_related("trial").in_bulk(list(by_pk))
    n = 0
    for alloc in Allocation.objects.filter(participant_id__in=list(by_pk)).select_related("slot"):
        p, obj = by_pk[alloc.participant_id], objs[alloc.participant_id]
        unused = list(kit_envelopes_make(participant=obj, allocation=alloc, now=p.randomised_at))
        rng = random.Random(f"{model.seed}-{p.uuid}-envelopes")
        conditions = model.conditions.setdefault(p.uuid, {})
        for period, start in enumerate(model.period_starts, 1):
            at = datetime.combine(p.day0 + timedelta(days=start), time(8, 30), tzinfo=p.zone).astimezone(UTC)
            if at > sim.now or p.withdrawn_at is not None or not unused:
                break  # (a withdrawn participant's status no longer allows recording: the kit stays unused)
            envelope = unused.pop(rng.randrange(len(unused)))
            kit_envelope_record(participant=obj, code=envelope.code, period=period, source="sync", now=at)
            conditions[period] = envelope.condition.code
            n += 1
    return n
