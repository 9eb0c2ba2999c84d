"""Scoring of validated answers (pure: no database). Scores are computed on the server only.

A score (protocol `scoring.scores[]`, see trialsite.protocol.schema.Score) is the sum or mean of its
components. A component is one item (reverse-scored when listed in `reverse`: scored = total - answer)
or one `max_groups` group (the largest answer among its items: QIDS-SR16's rule). Several scores on one
instrument express subscales (PANAS positive / negative affect).

Missing answers: `not_scored` - any missing component → no score. `prorate` - with at most `max_missing`
components missing, a sum is the mean of the answered components times the number of components; a
mean is the mean of the answered ones. A group is missing only when all its items are.

Bands: the band whose [min, max] holds the value; a prorated fraction between two bands takes the lower.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ScoreResult:
    key: str
    value: float | None
    band: str
    scored: bool
    items_missing: int


def _numeric(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def band_for(bands: list[dict], value: float | None) -> str:
    if value is None:
        return ""
    for band in bands:
        if band["min"] <= value <= band["max"]:
            return band["label"]
    below = [b for b in bands if b["min"] <= value and value <= bands[-1]["max"]]
    return below[-1]["label"] if below else ""


def score_one(score: dict, answers: dict[str, Any]) -> ScoreResult:
    reverse = score.get("reverse") or {}

    def item_value(key: str) -> float | None:
        v = _numeric(answers.get(key))
        if v is None:
            return None
        return reverse[key] - v if key in reverse else v

    components: list[float | None] = [item_value(k) for k in score.get("items", [])]
    for group in score.get("max_groups", []):
        values = [v for v in (item_value(k) for k in group) if v is not None]
        components.append(max(values) if values else None)
    present = [c for c in components if c is not None]
    missing = len(components) - len(present)
    value: float | None
    if missing == 0:
        value = sum(present) if score["method"] == "sum" else sum(present) / len(present)
    elif score.get("missing") == "prorate" and missing <= score.get("max_missing", 0) and present:
        mean = sum(present) / len(present)
        value = mean * len(components) if score["method"] == "sum" else mean
    else:
        value = None
    if value is not None:
        value = round(value, 6)
    return ScoreResult(
        key=score["key"],
        value=value,
        band=band_for(score.get("bands", []), value),
        scored=value is not None,
        items_missing=missing,
    )


def score_answers(definition: dict, answers: dict[str, Any]) -> list[ScoreResult]:
    scoring = definition.get("scoring") or {}
    return [score_one(s, answers) for s in scoring.get("scores", [])]
