"""Crossover designs in the protocol (`crossover:`): periods separated by washouts, arm sequences, dose days.

```yaml
crossover:
  period_days: 21            # each treatment period lasts 21 days (study days 0–20 for period 1)
  washout_days: 14           # no study treatment between periods
  sequences:                 # randomised in the stratified permuted blocks instead of arms; ARM-BEARING
    - {code: AB, arms: [A, B]}
    - {code: BA, arms: [B, A], ratio: 1}
  dosing: {first_day: 0, every_n_days: 3}   # days within each period (0 = the period's first day)
```

Period k (1-based) starts on study day (k − 1)·(period_days + washout_days) from randomisation; the sequence's
k-th arm is the treatment of period k. Days in a washout (and after the last period) belong to no period.
Pure functions here are the one definition of "period", "treatment on a day" and "crossover dose day"; the
allocation list, the exports and the blinding figures call them.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CrossoverSequence(_Strict):
    code: str = Field(pattern=r"^[A-Z0-9]{1,16}$")
    arms: list[str] = Field(min_length=2)
    ratio: int = Field(default=1, ge=1, le=20)


class CrossoverDosing(_Strict):
    first_day: int = Field(default=0, ge=0)
    every_n_days: int = Field(ge=1)
    last_day: int | None = Field(default=None, ge=0)


class Crossover(_Strict):
    period_days: int = Field(ge=1, le=366)
    washout_days: int = Field(ge=0, le=366)
    sequences: list[CrossoverSequence] = Field(min_length=2)
    dosing: CrossoverDosing | None = None

    @model_validator(mode="after")
    def _check(self):
        lengths = {len(s.arms) for s in self.sequences}
        if len(lengths) != 1:
            raise ValueError("every sequence must have the same number of periods")
        codes = [s.code for s in self.sequences]
        if len(codes) != len(set(codes)):
            raise ValueError("duplicate sequence codes")
        orders = [tuple(s.arms) for s in self.sequences]
        if len(orders) != len(set(orders)):
            raise ValueError("two sequences give the same order of arms")
        d = self.dosing
        if d is not None:
            last = self.period_days - 1 if d.last_day is None else d.last_day
            if d.first_day > last or last >= self.period_days:
                raise ValueError("dosing days must lie within a period (0 … period_days − 1)")
        return self

    @property
    def periods(self) -> int:
        return len(self.sequences[0].arms)

    @property
    def ratio_total(self) -> int:
        return sum(s.ratio for s in self.sequences)

    def period_start(self, period: int) -> int:
        """First study day of period `period` (1-based)."""
        if not 1 <= period <= self.periods:
            raise ValueError(f"period must be 1…{self.periods}")
        return (period - 1) * (self.period_days + self.washout_days)

    def period_end(self, period: int) -> int:
        return self.period_start(period) + self.period_days - 1

    @property
    def last_day(self) -> int:
        return self.period_end(self.periods)

    def period_of(self, day: int) -> int | None:
        """The period (1-based) study day `day` belongs to; None before day 0, in a washout or after the end."""
        if day < 0:
            return None
        period, offset = divmod(day, self.period_days + self.washout_days)
        if period >= self.periods or offset >= self.period_days:
            return None
        return period + 1

    def period_ending_by(self, day: int) -> int | None:
        """The period `day` lies in, or else the last period that ended before it (a guess in the washout
        is about the period just finished); None before the first period."""
        if day < 0:
            return None
        return min(self.periods, day // (self.period_days + self.washout_days) + 1)

    def sequence(self, code: str) -> CrossoverSequence:
        for s in self.sequences:
            if s.code == code:
                return s
        raise KeyError(code)

    def treatment(self, sequence: str, day: int) -> str | None:
        """The arm code taken on study day `day` by a participant of `sequence`; None outside the periods."""
        period = self.period_of(day)
        return None if period is None else self.sequence(sequence).arms[period - 1]

    def dose_days(self) -> list[int]:
        """Planned dose days (study days), period by period; none in washouts. Empty without `dosing`."""
        d = self.dosing
        if d is None:
            return []
        last = self.period_days - 1 if d.last_day is None else d.last_day
        offsets = range(d.first_day, last + 1, d.every_n_days)
        return [self.period_start(k) + o for k in range(1, self.periods + 1) for o in offsets]

    def dose_number(self, day: int) -> int | None:
        """Which dose of its period `day` is (1 = the first), or None when it is not a dose day."""
        period = self.period_of(day)
        if period is None or self.dosing is None:
            return None
        days = [x for x in self.dose_days() if self.period_of(x) == period]
        return days.index(day) + 1 if day in days else None
