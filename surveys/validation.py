"""Validation of answers against an instrument definition (pure: no database).

The definition is the instrument as validated from the protocol (`trialsite.protocol.schema.Instrument`
dumped to JSON and stored on `surveys.Instrument.definition`).

Rules:
- unknown item keys are refused;
- an item whose `enable_when` condition is false is skipped: it may be absent or null, any other value is
  refused (the phone must not show it);
- a required, enabled item must have a non-null answer;
- every type is checked strictly (a boolean is not a number, "1" is not 1).

Errors come back keyed like the API's `fields`: `answers.phq9_3`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from trialsite.protocol.rules import compare, is_number

_TIME = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)(:([0-5]\d))?$")


@dataclass
class ValidationResult:
    answers: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, list[str]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.errors


# Instants within a day of datetime's limits cannot be shown in every zone (Python raises OverflowError), and
# PostgreSQL stores ones past them that can then no longer be read back: such a timestamp is refused on input.
_INSTANT_MIN = datetime.min.replace(tzinfo=UTC) + timedelta(days=1)
_INSTANT_MAX = datetime.max.replace(tzinfo=UTC) - timedelta(days=1)


def instant_in_range(value: datetime) -> bool:
    """True when an aware timestamp can be stored, read back and shown in any zone."""
    try:
        return _INSTANT_MIN <= value.astimezone(UTC) <= _INSTANT_MAX
    except (OverflowError, ValueError):
        return False


def item_choices(definition: dict, item: dict) -> list[dict]:
    choices = item.get("choices")
    if choices is None:
        return []
    if isinstance(choices, str):
        return list(definition.get("choice_sets", {}).get(choices, []))
    return list(choices)


# One implementation of the protocol's comparisons (enable_when here, safety rules everywhere).
_is_number = is_number


def _same_choice(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return False
    if _is_number(a) and _is_number(b):
        return a == b
    return type(a) is type(b) and a == b


def _check_value(definition: dict, item: dict, value: Any) -> tuple[Any, str | None]:
    """→ (cleaned value, error message or None)."""
    kind = item["type"]
    lo, hi = item.get("min"), item.get("max")

    def in_range(v: float) -> str | None:
        if lo is not None and v < lo:
            return f"Must be at least {lo:g}."
        if hi is not None and v > hi:
            return f"Must be at most {hi:g}."
        return None

    if kind == "choice":
        for choice in item_choices(definition, item):
            if _same_choice(choice["value"], value):
                return choice["value"], None
        allowed = ", ".join(repr(c["value"]) for c in item_choices(definition, item))
        return None, f"Not one of the allowed values ({allowed})."
    if kind == "multi_choice":
        if not isinstance(value, list):
            return None, "A list of values is expected."
        cleaned = []
        for v in value:
            match = next((c["value"] for c in item_choices(definition, item) if _same_choice(c["value"], v)), None)
            if match is None:
                return None, f"{v!r} is not one of the allowed values."
            if match in cleaned:
                return None, f"{v!r} is given twice."
            cleaned.append(match)
        return cleaned, None
    if kind == "integer":
        if not _is_number(value) or (isinstance(value, float) and not value.is_integer()):
            return None, "A whole number is expected."
        return int(value), in_range(value)
    if kind in ("decimal", "slider"):
        if not _is_number(value):
            return None, "A number is expected."
        problem = in_range(value)
        step = item.get("step")
        if problem is None and kind == "slider" and step:
            steps = (value - (lo or 0)) / step
            if abs(steps - round(steps)) > 1e-9:
                return None, f"Must be a multiple of {step:g} from {lo or 0:g}."
            if float(step).is_integer() and float(lo or 0).is_integer():
                value = int(round(value))
        return value, problem
    if kind == "boolean":
        if not isinstance(value, bool):
            return None, "true or false is expected."
        return value, None
    if kind == "text":
        if not isinstance(value, str):
            return None, "Text is expected."
        limit = item.get("max_length")
        if limit and len(value) > limit:
            return None, f"At most {limit} characters."
        if "\x00" in value:
            return None, "Text must not contain NUL characters."
        return value, None
    if kind == "date":
        try:
            if len(value) != 10:
                raise ValueError(value)
            return date.fromisoformat(value).isoformat(), None
        except (TypeError, ValueError):
            return None, "A date YYYY-MM-DD is expected."
    if kind == "time":
        if not isinstance(value, str) or not _TIME.match(value):
            return None, "A time HH:MM is expected."
        return time.fromisoformat(value).isoformat(timespec="minutes"), None
    if kind == "kit_code":
        # Well-formed with a valid check character here; whose code it is, the service decides (with the DB).
        from participants.services.kits import kit_code_normalise

        code = kit_code_normalise(value)
        if code is None:
            return None, "This is not an envelope code. Check the letters and try again."
        return code, None
    return None, f"Unsupported item type {kind!r}."


def validate_answers(definition: dict, answers: Any, *, prefix: str = "answers") -> ValidationResult:
    result = ValidationResult()
    if not isinstance(answers, dict):
        result.errors[prefix] = ["An object of item key → answer is expected."]
        return result
    items = {i["key"]: i for i in definition["items"]}
    for key in answers:
        if key not in items:
            result.errors[f"{prefix}.{key}"] = ["Unknown item."]
    # First the values, then enable_when against the cleaned values (conditions may point either way).
    cleaned: dict[str, Any] = {}
    for key, item in items.items():
        value = answers.get(key)
        if value is None:
            continue
        clean, problem = _check_value(definition, item, value)
        if problem:
            result.errors[f"{prefix}.{key}"] = [problem]
        else:
            cleaned[key] = clean
    for key, item in items.items():
        cond = item.get("enable_when")
        enabled = cond is None or compare(cond["op"], cleaned.get(cond["item"]), cond["value"])
        if not enabled:
            if answers.get(key) is not None and f"{prefix}.{key}" not in result.errors:
                result.errors[f"{prefix}.{key}"] = ["This item is skipped for these answers; leave it out."]
            cleaned.pop(key, None)
            continue
        if item.get("required", True) and answers.get(key) is None:
            result.errors[f"{prefix}.{key}"] = ["This item is required."]
    result.answers = {k: cleaned[k] for k in items if k in cleaned}
    return result
