"""Explicit interfaces through which participants' workflows use what a later app provides.

The dependency direction is surveys → participants, never the reverse, yet randomisation needs the baseline
(complete? which score, for the stratum?), the staff API shows adherence, and consent, randomisation,
withdrawal and zone changes must (re)plan the participant's surveys inside the same transaction. So
participants declares what it needs (ScheduleProvider), the surveys app implements it and registers it in its
AppConfig.ready() (`register_schedule_provider`), and participants' services call it explicitly. Fails
closed: a service that needs the provider when none is registered raises (ImproperlyConfigured).
"""

from __future__ import annotations

from typing import Any, Protocol

from django.core.exceptions import ImproperlyConfigured


class ScheduleProvider(Protocol):
    """The participant's surveys: the baseline, adherence, and (re)planning on workflow steps. The on_* calls run
    inside the caller's transaction: if one raises, the whole workflow step rolls back."""

    def baseline_status(self, *, participant) -> tuple[bool, list[str]]:
        """(complete, what is missing) of the participant's baseline (randomisation needs it)."""

    def baseline_score(self, *, participant, instrument: str, schedule: str, score: str) -> float | None:
        """A baseline score used as a stratum (e.g. PHQ-9 < 10 / >= 10), or None when not available."""

    def adherence(self, *, participants, now) -> dict:
        """{participant pk: {figure: value}} for a page of participants, in a constant number of queries."""

    def on_consented(self, *, participant, **details: Any) -> None: ...

    def on_randomised(self, *, participant, **details: Any) -> None: ...

    def on_timezone_changed(self, *, participant, **details: Any) -> None: ...

    def on_withdrawn(self, *, participant, **details: Any) -> None: ...


_registered: dict[str, ScheduleProvider] = {}


def register_schedule_provider(provider: ScheduleProvider) -> None:
    _registered["schedule"] = provider


def schedule_provider() -> ScheduleProvider:
    provider = _registered.get("schedule")
    if provider is None:
        raise ImproperlyConfigured(
            "No schedule provider is registered (participants.providers.register_schedule_provider, called by the "
            "surveys app's AppConfig.ready()): baseline, adherence and survey planning are unavailable."
        )
    return provider
