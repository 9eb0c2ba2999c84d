"""The surveys app's implementation of participants.providers.ScheduleProvider (registered in
SurveysConfig.ready()): the baseline and adherence from surveys' selectors, survey planning on participants'
workflow steps from surveys.services.schedule."""

from __future__ import annotations

from . import selectors
from .services import schedule as planning


class SurveysScheduleProvider:
    def baseline_status(self, *, participant) -> tuple[bool, list[str]]:
        return selectors.baseline_status(participant=participant)

    def baseline_score(self, *, participant, instrument: str, schedule: str, score: str) -> float | None:
        return selectors.baseline_score(participant=participant, instrument=instrument, schedule=schedule, score=score)

    def adherence(self, *, participants, now) -> dict:
        return selectors.participants_adherence(participants=participants, now=now)

    def on_consented(self, *, participant, **details) -> None:
        planning.on_consented(participant=participant, **details)

    def on_randomised(self, *, participant, **details) -> None:
        planning.on_randomised(participant=participant, **details)

    def on_timezone_changed(self, *, participant, **details) -> None:
        planning.on_timezone_changed(participant=participant, **details)

    def on_withdrawn(self, *, participant, **details) -> None:
        planning.on_withdrawn(participant=participant, **details)
