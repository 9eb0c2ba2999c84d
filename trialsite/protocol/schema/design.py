"""The trial design: arms, randomisation and strata, enrolment, eligibility, consent, dosing, substance, sites
and self-blinding kits."""

from __future__ import annotations

import zoneinfo
from datetime import date
from datetime import time as LocalTime
from typing import Literal

from pydantic import Field, field_validator, model_validator

from .base import KEY, SLUG, Strict


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
