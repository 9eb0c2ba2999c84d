"""Instruments: items, choices, skip conditions, scores and translations."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from .base import KEY, SLUG, Language, Strict


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
