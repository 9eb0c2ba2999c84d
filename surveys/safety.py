"""Protocol safety rules on answers and side effects. Alerts are raised in the caller's transaction."""

from __future__ import annotations

from typing import Any

from participants.services import safety_alert_raise
from trialsite.protocol.rules import rules_fired_for_record, rules_fired_for_response

__all__ = ["raise_alerts", "rules_fired_for_record", "rules_fired_for_response"]


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
