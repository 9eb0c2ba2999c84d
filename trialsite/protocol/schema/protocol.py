"""The whole protocol file and its cross-field checks."""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from pydantic import Field, field_validator, model_validator

from ..crossover import Crossover
from .base import Language, Strict, parse_duration
from .design import (
    Arm,
    ConsentDoc,
    Criterion,
    Dosing,
    Enrolment,
    Randomisation,
    SelfBlinding,
    Site,
    Substance,
    TrialInfo,
)
from .instruments import Instrument
from .safety import Safety, SafetyContact
from .schedule import Reminders, ScheduleEvent


class Protocol(Strict):
    format: Literal[1]
    trial: TrialInfo
    arms: list[Arm] = Field(min_length=2)
    blinding: Literal["double", "single", "open", "self"]
    self_blinding: SelfBlinding | None = None
    randomisation: Randomisation
    enrolment: Enrolment = Enrolment()
    eligibility: list[Criterion] = Field(min_length=1)
    consent: list[ConsentDoc] = Field(min_length=1)
    dosing: Dosing | None = None
    # Crossover designs (trialsite/protocol/crossover.py): periods, washouts, arm sequences, dose days per period.
    crossover: Crossover | None = None
    substance: Substance | None = None
    instruments: list[Instrument] = Field(min_length=1)
    schedule: list[ScheduleEvent] = Field(min_length=1)
    reminders: Reminders
    safety: Safety = Safety()
    sites: list[Site] = Field(default_factory=list)
    # The language plain participant-facing texts are written in; other languages come from translations.
    language: Language = "en"
    safety_contact: SafetyContact | None = None

    @field_validator("arms")
    @classmethod
    def _one_control(cls, arms: list[Arm]) -> list[Arm]:
        controls = [a.code for a in arms if a.control]
        if len(controls) != 1:
            raise ValueError(
                "exactly one arm must be the comparator (`control: true`); "
                + (f"found {len(controls)}: {', '.join(controls)}" if controls else "none is")
            )
        return arms

    @model_validator(mode="after")
    def _cross_references(self):
        def unique(values: list[str], what: str) -> None:
            dupes = sorted({v for v in values if values.count(v) > 1})
            if dupes:
                raise ValueError(f"duplicate {what}: {', '.join(dupes)}")

        unique([a.code for a in self.arms], "arm codes")
        unique([a.name for a in self.arms], "arm names")
        unique([c.key for c in self.eligibility], "eligibility keys")
        unique([c.version for c in self.consent], "consent versions")
        unique([i.slug for i in self.instruments], "instrument slugs")
        unique([s.key for s in self.schedule], "schedule keys")
        unique([r.key for r in self.safety.rules], "safety rule keys")
        unique([s.code for s in self.sites], "site codes")

        instruments = {i.slug: i for i in self.instruments}
        schedule = {s.key: s for s in self.schedule}
        for n, event in enumerate(self.schedule):
            if event.instrument not in instruments:
                raise ValueError(f"schedule[{n}].instrument: unknown instrument {event.instrument!r}")
        total_ratio = sum(a.ratio for a in self.arms)
        for size in self.randomisation.block_sizes:
            if size % total_ratio:
                raise ValueError(
                    f"randomisation.block_sizes: {size} is not a multiple of the arm ratio total {total_ratio}"
                )
        for n, stratum in enumerate(self.randomisation.strata):
            if stratum.source == "score":
                if stratum.instrument not in instruments:
                    raise ValueError(f"randomisation.strata[{n}].instrument: unknown instrument {stratum.instrument!r}")
                if stratum.schedule not in schedule or not schedule[stratum.schedule].baseline:
                    raise ValueError(
                        f"randomisation.strata[{n}].schedule: {stratum.schedule!r} is not a baseline schedule event"
                    )
        for n, rule in enumerate(self.safety.rules):
            if rule.source != "response":
                continue
            inst = instruments.get(rule.instrument or "")
            if inst is None:
                raise ValueError(f"safety.rules[{n}].instrument: unknown instrument {rule.instrument!r}")
            if rule.when.item and rule.when.item not in {i.key for i in inst.items}:
                raise ValueError(f"safety.rules[{n}].when.item: {inst.slug} has no item {rule.when.item!r}")
            if rule.when.score:
                scores = {s.key for s in (inst.scoring.scores if inst.scoring else [])}
                if rule.when.score not in scores:
                    raise ValueError(f"safety.rules[{n}].when.score: {inst.slug} has no score {rule.when.score!r}")
        self._check_self_blinding(instruments, schedule)
        missed = self.reminders.missed_in_a_row
        if missed and missed.instrument not in instruments:
            raise ValueError(f"reminders.missed_in_a_row.instrument: unknown instrument {missed.instrument!r}")
        for n, stage in enumerate(self.reminders.stages):
            if stage.at == "close" and parse_duration(stage.offset) > timedelta(0):
                raise ValueError(f"reminders.stages[{n}].offset: a stage after closing would never be useful")
        unique([s.key for s in self.reminders.stages], "reminder stage keys")
        self._check_crossover()
        return self

    def _check_self_blinding(self, instruments: dict, schedule: dict) -> None:
        sb = self.self_blinding
        if (self.blinding == "self") != (sb is not None):
            raise ValueError("self_blinding: give it exactly when blinding is 'self'")
        if sb is None:
            return
        if sb.envelopes_per_condition * len(self.arms) < sb.periods:
            raise ValueError(
                f"self_blinding: {sb.envelopes_per_condition} envelope(s) per condition × {len(self.arms)} conditions "
                f"cannot cover {sb.periods} periods"
            )
        event = schedule.get(sb.schedule)
        if event is None:
            raise ValueError(f"self_blinding.schedule: unknown schedule entry {sb.schedule!r}")
        if event.anchor != "randomisation" or len(event.day_list()) != sb.periods:
            raise ValueError(
                f"self_blinding.schedule: {sb.schedule!r} must be anchored on randomisation with one occurrence "
                f"per period ({sb.periods})"
            )
        kit_items = [i for i in instruments[event.instrument].items if i.type == "kit_code"]
        if len(kit_items) != 1:
            raise ValueError(f"self_blinding.schedule: instrument {event.instrument!r} needs exactly one kit_code item")

    def period_start_days(self) -> list[int]:
        """Study days on which the self-blinding periods start (empty unless `blinding: self`)."""
        if self.self_blinding is None:
            return []
        return next(e for e in self.schedule if e.key == self.self_blinding.schedule).day_list()

    def _check_crossover(self) -> None:
        cx = self.crossover
        if cx is None:
            return
        codes = {a.code for a in self.arms}
        for n, seq in enumerate(cx.sequences):
            unknown = sorted(set(seq.arms) - codes)
            if unknown:
                raise ValueError(f"crossover.sequences[{n}].arms: unknown arms: {', '.join(unknown)}")
        for size in self.randomisation.block_sizes:
            if size % cx.ratio_total:
                raise ValueError(
                    f"randomisation.block_sizes: {size} is not a multiple of the sequences' ratio total {cx.ratio_total}"
                )
        if self.dosing is not None and cx.dosing is not None:
            raise ValueError("dosing: a crossover gives its dose days in crossover.dosing (per period), not here")

    def instrument(self, slug: str) -> Instrument:
        return next(i for i in self.instruments if i.slug == slug)

    def control_arm(self) -> Arm:
        """The comparator arm declared in the protocol (validated: exactly one)."""
        (control,) = [a for a in self.arms if a.control]
        return control

    def arm_names(self) -> list[str]:
        return [a.name for a in self.arms]
