"""Extension points through which later apps take part in participant workflows.

The dependency direction is surveys → participants, never the reverse, so participants cannot call the
surveys app. Instead surveys registers handlers here in its AppConfig.ready(). Handlers run inside the
caller's transaction: if one raises, the whole workflow step rolls back.

- baseline providers answer "has this participant completed the baseline?" (randomisation needs it)
  and give baseline scores used as strata (e.g. PHQ-9 < 10 / >= 10);
- event handlers react to consent, randomisation, withdrawal and zone changes (plan or cancel survey
  instances and reminders).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

BaselineCheck = Callable[..., tuple[bool, list[str]]]
BaselineScore = Callable[..., float | None]
EventHandler = Callable[..., None]

_baseline_checks: dict[str, BaselineCheck] = {}
_adherence: dict[str, Callable[..., dict]] = {}
_baseline_scores: dict[str, BaselineScore] = {}
_handlers: dict[str, dict[str, EventHandler]] = {
    "consented": {},
    "randomised": {},
    "withdrawn": {},
    "timezone_changed": {},
}


def register_baseline_check(name: str, fn: BaselineCheck) -> None:
    """fn(*, participant) -> (complete, missing_descriptions)."""
    _baseline_checks[name] = fn


def register_baseline_score(name: str, fn: BaselineScore) -> None:
    """fn(*, participant, instrument, schedule, score) -> the score, or None when not available."""
    _baseline_scores[name] = fn


def register(event: str, name: str, fn: EventHandler) -> None:
    """fn(*, participant, **details) for event in consented, randomised, withdrawn, timezone_changed."""
    if event not in _handlers:
        raise ValueError(f"unknown participant event {event!r}")
    _handlers[event][name] = fn


def baseline_status(*, participant) -> tuple[bool, list[str]]:
    """(complete, what is missing). With no provider registered nothing can be checked: not complete."""
    if not _baseline_checks:
        return False, ["no baseline provider is installed"]
    missing: list[str] = []
    for fn in _baseline_checks.values():
        complete, items = fn(participant=participant)
        if not complete:
            missing.extend(items)
    return not missing, missing


def baseline_score(*, participant, instrument: str, schedule: str, score: str) -> float | None:
    for fn in _baseline_scores.values():
        value = fn(participant=participant, instrument=instrument, schedule=schedule, score=score)
        if value is not None:
            return value
    return None


def emit(event: str, *, participant, **details: Any) -> None:
    for fn in _handlers[event].values():
        fn(participant=participant, **details)


def register_adherence(name: str, fn: Callable[..., dict]) -> None:
    """fn(*, participants, now) -> {participant pk: {figure: value}} in a constant number of queries."""
    _adherence[name] = fn


def adherence(*, participants, now) -> dict:
    """Adherence figures for a page of participants (empty dicts when no provider is installed)."""
    out: dict = {p.pk: {} for p in participants}
    for fn in _adherence.values():
        for pk, figures in fn(participants=participants, now=now).items():
            out.setdefault(pk, {}).update(figures)
    return out


def unregister(name: str) -> None:
    """Remove every provider and handler registered under `name` (tests register and remove their own)."""
    _adherence.pop(name, None)
    _baseline_checks.pop(name, None)
    _baseline_scores.pop(name, None)
    for handlers in _handlers.values():
        handlers.pop(name, None)
