"""The protocol's conditions and safety rules, evaluated: one implementation for every app and write path.

Pure functions over the parsed protocol (trialsite.protocol.schema); the apps raise the alerts. A safety rule
names its source (`SafetyRule.source`: a survey response, a participant-reported side effect or a
staff-entered adverse event); every service that writes a record of that source evaluates the rules here.
"""

from __future__ import annotations

import math
from typing import Any, get_args

from .schema import Protocol, SafetyRule

# The kinds of record a safety rule can watch, straight from the protocol schema.
SAFETY_RULE_SOURCES: tuple[str, ...] = get_args(SafetyRule.model_fields["source"].annotation)


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def compare(op: str, left: Any, right: Any) -> bool:
    """The comparison operators of enable_when and safety conditions; a missing left side is never true."""
    if left is None:
        return False
    try:
        if op == "eq":
            return left == right
        if op == "ne":
            return left != right
        if op == "in":
            return left in (right if isinstance(right, list) else [right])
        if isinstance(left, bool) or not is_number(left) or not is_number(right):
            return False
        return {"gt": left > right, "gte": left >= right, "lt": left < right, "lte": left <= right}[op]
    except (TypeError, KeyError):
        return False


def rules_fired_for_response(
    *, protocol: Protocol, instrument: str, answers: dict[str, Any], scores: dict[str, float | None]
) -> list[tuple[SafetyRule, dict]]:
    fired = []
    for rule in protocol.safety.rules:
        if rule.source != "response" or rule.instrument != instrument:
            continue
        when = rule.when
        if when.item is not None:
            value, what = answers.get(when.item), {"item": when.item}
        else:
            value, what = scores.get(when.score), {"score": when.score}
        if compare(when.op, value, when.value):
            fired.append((rule, {"instrument": instrument, **what, "value": value}))
    return fired


def rules_fired_for_record(*, protocol: Protocol, source: str, record: Any) -> list[tuple[SafetyRule, dict]]:
    """The rules of `source` ("side_effect", "adverse_event") whose field condition holds for the record."""
    if source not in SAFETY_RULE_SOURCES:
        raise ValueError(f"unknown safety rule source {source!r}")
    fired = []
    for rule in protocol.safety.rules:
        if rule.source != source:
            continue
        value = getattr(record, rule.when.field, None)
        if compare(rule.when.op, value, rule.when.value):
            fired.append((rule, {"field": rule.when.field, "value": value}))
    return fired
