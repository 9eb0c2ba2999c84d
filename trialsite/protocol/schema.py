"""The protocol file format (protocols/*.yaml), validated before anything is stored.

Every error names its place in the file (`schedule[2].instrument`) and the problem. The format is
documented in docs/protocol-format.md; keep the two together.
"""

from __future__ import annotations

import re
import zoneinfo
from datetime import date, timedelta
from datetime import time as LocalTime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .crossover import Crossover

SLUG = r"^[a-z0-9][a-z0-9_-]{0,63}$"
KEY = r"^[a-z][a-z0-9_]{0,63}$"
_DURATION = re.compile(r"^(-?)(\d+)\s*(d|h|m|s)$")


def parse_duration(value: str | int) -> timedelta:
    """'7d', '48h', '30m', '-30m', '0m' → timedelta. Integers are seconds."""
    if isinstance(value, bool):
        raise ValueError("a duration like '48h', '30m' or '7d'")
    if isinstance(value, int):
        return timedelta(seconds=value)
    m = _DURATION.match(str(value).strip())
    if not m:
        raise ValueError(f"{value!r} is not a duration like '48h', '30m' or '7d'")
    sign, amount, unit = m.groups()
    seconds = int(amount) * {"d": 86400, "h": 3600, "m": 60, "s": 1}[unit]
    return timedelta(seconds=-seconds if sign else seconds)


def _duration_str(value: Any) -> str:
    parse_duration(value)
    return str(value)


Duration = Annotated[str, Field(description="e.g. '48h', '30m', '7d'")]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TrialInfo(Strict):
    slug: str = Field(pattern=SLUG)
    title: str = Field(min_length=1, max_length=255)


class Arm(Strict):
    code: str = Field(pattern=r"^[A-Z0-9]{1,8}$")
    name: str = Field(min_length=1, max_length=128)
    ratio: int = Field(ge=1, le=20)
    # The comparator (placebo, sham, …): exactly one arm says so. Blinding indices read "placebo" as this arm.
    control: bool = False


class Stratum(Strict):
    key: str = Field(pattern=KEY)
    source: Literal["site", "score", "eligibility"]
    instrument: str | None = None
    schedule: str | None = None
    score: str = "total"
    cut_points: list[float] = Field(default_factory=list)
    labels: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check(self):
        if self.source == "score":
            if not self.instrument or not self.schedule:
                raise ValueError("a score stratum needs 'instrument' and 'schedule'")
            if not self.cut_points:
                raise ValueError("a score stratum needs at least one cut point")
            if self.cut_points != sorted(self.cut_points):
                raise ValueError("cut_points must be increasing")
            if self.labels and len(self.labels) != len(self.cut_points) + 1:
                raise ValueError("labels must number one more than cut_points")
        return self


class DoseUnits(Strict):
    per_allocation: int = Field(ge=1, le=500)
    prefix: str = Field(default="DU", pattern=r"^[A-Z]{1,6}$")


class Randomisation(Strict):
    scheme: Literal["stratified_permuted_blocks"]
    block_sizes: list[int] = Field(min_length=1)
    strata: list[Stratum] = Field(default_factory=list)
    dose_units: DoseUnits

    @field_validator("block_sizes")
    @classmethod
    def _sizes(cls, v: list[int]) -> list[int]:
        if any(s < 1 for s in v):
            raise ValueError("block sizes must be positive")
        return v


class Enrolment(Strict):
    code_valid_days: int = Field(default=14, ge=1, le=365)


class Criterion(Strict):
    key: str = Field(pattern=KEY)
    text: str = Field(min_length=1)


class ConsentDoc(Strict):
    version: str = Field(min_length=1, max_length=32)
    title: str = Field(min_length=1, max_length=255)
    body: str = Field(min_length=1)
    valid_from: date
    valid_to: date | None = None
    requires_reconsent: bool = False

    @model_validator(mode="after")
    def _dates(self):
        if self.valid_to is not None and self.valid_to < self.valid_from:
            raise ValueError("valid_to is before valid_from")
        return self


class Dosing(Strict):
    anchor: Literal["randomisation"] = "randomisation"
    start_day: int = Field(ge=0)
    every_n_days: int = Field(ge=1)
    end_day: int = Field(ge=0)
    time: LocalTime | None = None

    @model_validator(mode="after")
    def _range(self):
        if self.end_day < self.start_day:
            raise ValueError("end_day is before start_day")
        return self


class Substance(Strict):
    """What an active dose unit contains (the same for every participant, so it reveals no arm). With
    `provided_by: participant` (self-blinding: participants bring their own) each participant's substance and
    amount per unit are recorded at enrolment; these protocol values are then only the expected ones."""

    name: str = Field(min_length=1, max_length=128)
    amount_per_unit: float | None = Field(default=None, gt=0)
    unit: Literal["g", "mg", "ug"] = "mg"
    provided_by: Literal["site", "participant"] = "site"


class Choice(Strict):
    value: int | str | float
    label: str = Field(min_length=1)
    code: str | None = None


ITEM_TYPES = (
    "choice",
    "multi_choice",
    "integer",
    "decimal",
    "slider",
    "boolean",
    "text",
    "date",
    "time",
    "kit_code",
)


class SkipCondition(Strict):
    """Show the item only when another item's answer compares as given."""

    item: str
    op: Literal["eq", "ne", "gt", "gte", "lt", "lte", "in"]
    value: Any


class Item(Strict):
    key: str = Field(pattern=KEY)
    # kit_code: a self-blinding envelope code (checked against the participant's unused codes when answered).
    type: Literal[
        "choice", "multi_choice", "integer", "decimal", "slider", "boolean", "text", "date", "time", "kit_code"
    ]
    text: str = Field(min_length=1)
    required: bool = True
    choices: str | list[Choice] | None = None
    min: float | None = None
    max: float | None = None
    step: float | None = None
    max_length: int | None = Field(default=None, ge=1)
    code: str | None = None
    enable_when: SkipCondition | None = None

    @model_validator(mode="after")
    def _check(self):
        if self.type in ("choice", "multi_choice") and self.choices is None:
            raise ValueError(f"a {self.type} item needs 'choices'")
        if self.type not in ("choice", "multi_choice") and self.choices is not None:
            raise ValueError(f"a {self.type} item takes no 'choices'")
        if self.type == "slider" and (self.min is None or self.max is None):
            raise ValueError("a slider needs 'min' and 'max'")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError("min is greater than max")
        return self


class Band(Strict):
    min: float
    max: float
    label: str


class Score(Strict):
    """A score: sum or mean of items (after reverse scoring), optionally of max-of-item groups."""

    key: str = Field(pattern=KEY)
    method: Literal["sum", "mean"]
    items: list[str] = Field(default_factory=list)
    # Groups contribute the maximum of their items (QIDS-SR16 style).
    max_groups: list[list[str]] = Field(default_factory=list)
    # Item key -> (min + max) for reverse scoring: scored value = reverse_total - answer.
    reverse: dict[str, float] = Field(default_factory=dict)
    # not_scored: any missing item → no score. prorate: scale the mean-based sum when at most
    # `max_missing` items are missing.
    missing: Literal["not_scored", "prorate"] = "not_scored"
    max_missing: int = Field(default=0, ge=0)
    bands: list[Band] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check(self):
        if not self.items and not self.max_groups:
            raise ValueError("a score needs 'items' or 'max_groups'")
        return self


class Scoring(Strict):
    scores: list[Score] = Field(min_length=1)


class Coding(Strict):
    system: str
    code: str


LANGUAGE = r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})?$"
Language = Annotated[str, Field(pattern=LANGUAGE)]
# Participant-facing text: plain (in the protocol's `language`) or one text per language, {en: "...", es: "..."}.
LocalText = str | dict[Language, Annotated[str, Field(min_length=1)]]


class InstrumentTranslation(Strict):
    """An instrument's participant-facing texts in one more language. Anything left out stays in the default
    language. Validated instruments: only an official published translation belongs here."""

    title: str | None = Field(default=None, min_length=1)
    stem: str | None = None
    items: dict[str, Annotated[str, Field(min_length=1)]] = Field(default_factory=dict)  # item key → text
    # Option labels: choice set name (or an item key, for inline choices) → {value: label}.
    choices: dict[str, dict[Any, Annotated[str, Field(min_length=1)]]] = Field(default_factory=dict)


class Instrument(Strict):
    slug: str = Field(pattern=SLUG)
    version: int = Field(ge=1)
    title: str = Field(min_length=1)
    stem: str | None = None
    coding: Coding | None = None
    choice_sets: dict[str, list[Choice]] = Field(default_factory=dict)
    items: list[Item] = Field(min_length=1)
    scoring: Scoring | None = None
    # language code → texts in that language (see docs/protocol-format.md, "Languages").
    translations: dict[Language, InstrumentTranslation] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check_translations(self):
        keys = {i.key: i for i in self.items}
        for lang, tr in self.translations.items():
            unknown = sorted(set(tr.items) - set(keys))
            if unknown:
                raise ValueError(f"translations.{lang}.items: unknown items: {', '.join(unknown)}")
            for name, labels in tr.choices.items():
                if name in self.choice_sets:
                    options = self.choice_sets[name]
                elif name in keys and isinstance(keys[name].choices, list):
                    options = keys[name].choices
                else:
                    raise ValueError(f"translations.{lang}.choices: {name!r} is neither a choice set nor an item")
                values = {str(c.value) for c in options}
                extra = sorted(str(v) for v in labels if str(v) not in values)
                if extra:
                    raise ValueError(f"translations.{lang}.choices.{name}: unknown values: {', '.join(extra)}")
        return self

    @model_validator(mode="after")
    def _check(self):
        keys = [i.key for i in self.items]
        dupes = sorted({k for k in keys if keys.count(k) > 1})
        if dupes:
            raise ValueError(f"duplicate item keys: {', '.join(dupes)}")
        for item in self.items:
            if isinstance(item.choices, str) and item.choices not in self.choice_sets:
                raise ValueError(f"item {item.key!r}: unknown choice set {item.choices!r}")
            if item.enable_when is not None and item.enable_when.item not in keys:
                raise ValueError(f"item {item.key!r}: enable_when refers to unknown item {item.enable_when.item!r}")
        if self.scoring:
            for score in self.scoring.scores:
                used = list(score.items) + [k for g in score.max_groups for k in g] + list(score.reverse)
                unknown = sorted({k for k in used if k not in keys})
                if unknown:
                    raise ValueError(f"score {score.key!r} uses unknown items: {', '.join(unknown)}")
        return self

    def resolved_choices(self, item: Item) -> list[Choice]:
        if item.choices is None:
            return []
        if isinstance(item.choices, str):
            return list(self.choice_sets[item.choices])
        return list(item.choices)


class Recurrence(Strict):
    every_n_days: int = Field(ge=1)
    from_day: int = Field(ge=0)
    to_day: int = Field(ge=0)

    @model_validator(mode="after")
    def _range(self):
        if self.to_day < self.from_day:
            raise ValueError("to_day is before from_day")
        return self


class AfterDose(Strict):
    """A dose-anchored survey: opens `minutes` after each logged dose, for `window_minutes`."""

    minutes: int = Field(ge=0, le=7 * 24 * 60)
    window_minutes: int = Field(ge=1, le=7 * 24 * 60)


class ScheduleEvent(Strict):
    key: str = Field(pattern=KEY)
    instrument: str
    # Required unless `after_dose` is given (a dose-anchored entry has no anchor, days or time).
    anchor: Literal["consent", "randomisation"] | None = None
    days: list[int] = Field(default_factory=list)
    recurrence: Recurrence | None = None
    # "on_anchor": opens at the anchor instant itself (baseline after consent); else `time` local.
    open: Literal["on_anchor", "at_time"] = "at_time"
    time: LocalTime | None = None
    window: Duration | None = None
    grace: Duration = "0m"
    baseline: bool = False
    after_dose: AfterDose | None = None

    @field_validator("window", "grace", mode="before")
    @classmethod
    def _duration(cls, v):
        return None if v is None else _duration_str(v)

    @model_validator(mode="after")
    def _check(self):
        if self.after_dose is not None:
            if self.anchor or self.days or self.recurrence or self.time or self.window or self.baseline:
                raise ValueError(
                    "an 'after_dose' entry takes no anchor, days, recurrence, time, window or baseline "
                    "(it opens after each logged dose)"
                )
            if self.open != "at_time":
                raise ValueError("an 'after_dose' entry takes no 'open'")
            return self
        if self.anchor is None:
            raise ValueError("'anchor' is required (consent or randomisation) unless the entry is 'after_dose'")
        if self.window is None:
            raise ValueError("'window' is required unless the entry is 'after_dose'")
        if bool(self.days) == bool(self.recurrence):
            raise ValueError("give exactly one of 'days' or 'recurrence'")
        if any(d < 0 for d in self.days):
            raise ValueError("days must not be negative")
        if self.open == "at_time" and self.time is None:
            raise ValueError("'time' is required unless open is 'on_anchor'")
        if parse_duration(self.window) <= timedelta(0):
            raise ValueError("window must be positive")
        if parse_duration(self.grace) < timedelta(0):
            raise ValueError("grace must not be negative")
        return self

    def day_list(self) -> list[int]:
        if self.after_dose is not None:
            return []
        if self.recurrence:
            r = self.recurrence
            return list(range(r.from_day, r.to_day + 1, r.every_n_days))
        return sorted(set(self.days))


class ReminderStage(Strict):
    key: str = Field(pattern=KEY)
    at: Literal["open", "close"]
    offset: Duration

    @field_validator("offset", mode="before")
    @classmethod
    def _duration(cls, v):
        return _duration_str(v)


class QuietHours(Strict):
    start: LocalTime
    end: LocalTime


class Message(Strict):
    subject: str = Field(min_length=1, max_length=200)
    body: str = Field(min_length=1, max_length=1000)


class MissedRule(Strict):
    instrument: str
    count: int = Field(ge=1)


class Reminders(Strict):
    stages: list[ReminderStage] = Field(min_length=1)
    quiet_hours: QuietHours | None = None
    channels: list[Literal["email", "sms", "push"]] = Field(default_factory=lambda: ["email"])
    message: Message
    missed_in_a_row: MissedRule | None = None


class Condition(Strict):
    item: str | None = None
    score: str | None = None
    field: str | None = None
    op: Literal["eq", "ne", "gt", "gte", "lt", "lte"]
    value: Any

    @model_validator(mode="after")
    def _one(self):
        if sum(x is not None for x in (self.item, self.score, self.field)) != 1:
            raise ValueError("a condition names exactly one of 'item', 'score' or 'field'")
        return self


class SafetyRule(Strict):
    key: str = Field(pattern=KEY)
    title: str = Field(min_length=1)
    instrument: str | None = None
    source: Literal["response", "side_effect", "adverse_event"] = "response"
    when: Condition
    severity: Literal["urgent", "high", "moderate"] = "high"

    @model_validator(mode="after")
    def _check(self):
        if self.source == "response" and not self.instrument:
            raise ValueError("a response rule needs 'instrument'")
        if self.source != "response" and self.when.field is None:
            raise ValueError(f"a {self.source} rule compares a 'field'")
        return self


class Safety(Strict):
    acknowledge_within: Duration = "24h"
    escalate_to: Literal["trial_manager"] = "trial_manager"
    notify: list[Literal["safety_physician", "coordinator", "trial_manager"]] = Field(
        default_factory=lambda: ["safety_physician"]
    )
    rules: list[SafetyRule] = Field(default_factory=list)

    @field_validator("acknowledge_within", mode="before")
    @classmethod
    def _duration(cls, v):
        return _duration_str(v)


class SafetyContact(Strict):
    """Shown by the participant app after a serious side-effect report (and on request): who to call."""

    contact: LocalText
    helpline: LocalText


class Site(Strict):
    code: str = Field(pattern=r"^[A-Z0-9]{2,16}$")
    name: str = Field(min_length=1)
    timezone: str

    @field_validator("timezone")
    @classmethod
    def _zone(cls, v: str) -> str:
        try:
            zoneinfo.ZoneInfo(v)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"{v!r} is not an IANA time zone") from exc
        return v


class SelfBlinding(Strict):
    """Self-blinding kits (`blinding: self`): each participant gets `envelopes_per_condition` envelope codes per
    arm (condition); each period they scan or type the code of the envelope they opened. The periods start at
    the occurrences of the schedule entry `schedule`, whose instrument has a `kit_code` item."""

    periods: int = Field(ge=1, le=52)
    envelopes_per_condition: int = Field(ge=1, le=52)
    schedule: str = Field(pattern=KEY)


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
