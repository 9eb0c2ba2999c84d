"""The survey schedule and the reminders."""

from __future__ import annotations

from datetime import time as LocalTime
from datetime import timedelta
from typing import Literal

from pydantic import Field, field_validator, model_validator

from .base import KEY, Duration, Strict, _duration_str, parse_duration


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
