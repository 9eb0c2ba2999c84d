"""Protocol safety rules on answers and side effects. Alerts are raised in the caller's transaction."""

from __future__ import annotations

from typing import Any

from participants.services import safety_alert_raise
from trialsite.protocol.schema import Protocol

from .validation import compare


def rules_fired_for_response(
    *, protocol: Protocol, instrument: str, answers: dict[str, Any], scores: dict[str, float | None]
) -> list[tuple[Any, dict]]:
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


def rules_fired_for_record(*, protocol: Protocol, source: str, record: Any) -> list[tuple[Any, dict]]:
    fired = []
    for rule in protocol.safety.rules:
        if rule.source != source:
            continue
        value = getattr(record, rule.when.field, None)
        if compare(rule.when.op, value, rule.when.value):
            fired.append((rule, {"field": rule.when.field, "value": value}))
    return fired


def raise_alerts(*, participant, fired: list[tuple[Any, dict]], source_kind: str, source_id: str, now=None) -> list:
    return [
        safety_alert_raise(
            participant=participant,
            rule=rule.key,
            title=rule.title,
            severity=rule.severity,
            source_kind=source_kind,
            source_id=source_id,
            details=details,
            now=now,
        )
        for rule, details in fired
    ]
