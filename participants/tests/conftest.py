"""Fixtures of the participants tests."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest
from rest_framework.test import APIClient

from participants import providers
from participants.tests.factories import ELIGIBLE, ConsentFactory, ParticipantFactory


@pytest.fixture
def api_client():
    """A client with its own address, so the per-address throttles (shared Redis) never mix tests."""
    client = APIClient()
    client.defaults["REMOTE_ADDR"] = f"10.{random.randint(0, 255)}.{random.randint(0, 255)}.{random.randint(1, 254)}"
    return client


class _Provider:
    """Delegates to the registered schedule provider (the surveys app's), except what a test overrides."""

    def __init__(self, inner, **overrides):
        self._inner = inner
        self.__dict__.update(overrides)

    def __getattr__(self, name):
        return getattr(self._inner, name)


@pytest.fixture
def baseline(monkeypatch):
    """A test baseline: baseline[participant.pk] = PHQ-9 total (absent: baseline not done).

    It replaces the baseline of the registered schedule provider (the surveys app's) for the test's duration;
    survey planning and adherence still go to the real one."""
    scores: dict[int, float] = {}

    def check(*, participant):
        return (participant.pk in scores), ([] if participant.pk in scores else ["baseline PHQ-9"])

    def score(*, participant, instrument, schedule, score):
        return scores.get(participant.pk) if instrument == "phq9" else None

    provider = _Provider(providers.schedule_provider(), baseline_status=check, baseline_score=score)
    monkeypatch.setitem(providers._registered, "schedule", provider)
    return scores


@pytest.fixture
def events(monkeypatch):
    """Records every participants workflow step passed to the schedule provider: list of (event, participant_id,
    details); the registered provider (the surveys app's) still plans the surveys."""
    seen: list[tuple[str, int, dict]] = []
    inner = providers.schedule_provider()

    def recorder(event):
        def record(*, participant, **details):
            seen.append((event, participant.pk, details))
            getattr(inner, f"on_{event}")(participant=participant, **details)

        return record

    steps = ("consented", "randomised", "withdrawn", "timezone_changed")
    provider = _Provider(inner, **{f"on_{event}": recorder(event) for event in steps})
    monkeypatch.setitem(providers._registered, "schedule", provider)
    return seen


@pytest.fixture
def register(trial, site_ldn, make_staff):
    """register(site=..., **kw) → (participant, code), registered by an LDN coordinator (ParticipantFactory)."""
    coordinator = make_staff("coordinator", site=site_ldn)

    def run(site=None, eligibility=None, contact=None, tz="Europe/London"):
        participant = ParticipantFactory(
            trial=trial,
            site=site or site_ldn,
            tz=tz,
            eligibility=dict(eligibility or ELIGIBLE),
            contact=contact,
            registered_by=coordinator,
        )
        return participant, participant.enrolment_code

    return run


def sign_consent(participant):
    """Paper consent to version 1.0, recorded by the coordinator who registered the participant."""
    return ConsentFactory(
        participant=participant,
        version="1.0",
        paper_reference="scan-001",
        at=datetime(2026, 1, 10, 9, 0, tzinfo=UTC),
        by=participant.registered_by,
    )
