"""Safety rules, their escalation and the contact shown to participants."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from .base import KEY, Duration, LocalText, Strict, _duration_str


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
