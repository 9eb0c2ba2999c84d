"""Fixtures of the participants tests."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest
from rest_framework.test import APIClient

from participants import hooks
from participants.tests.factories import ELIGIBLE, ConsentFactory, ParticipantFactory

PROVIDER = "participants-tests"


@pytest.fixture
def api_client():
    """A client with its own address, so the per-address throttles (shared Redis) never mix tests."""
    client = APIClient()
    client.defaults["REMOTE_ADDR"] = f"10.{random.randint(0, 255)}.{random.randint(0, 255)}.{random.randint(1, 254)}"
    return client


@pytest.fixture
def baseline(monkeypatch):
    """A test baseline provider: baseline[participant.pk] = PHQ-9 total (absent: baseline not done).

    It replaces the providers installed by other apps (the surveys app's real one) for the test's duration."""
    scores: dict[int, float] = {}
    monkeypatch.setattr(hooks, "_baseline_checks", {})
    monkeypatch.setattr(hooks, "_baseline_scores", {})

    def check(*, participant):
        return (participant.pk in scores), ([] if participant.pk in scores else ["baseline PHQ-9"])

    def score(*, participant, instrument, schedule, score):
        return scores.get(participant.pk) if instrument == "phq9" else None

    hooks.register_baseline_check(PROVIDER, check)
    hooks.register_baseline_score(PROVIDER, score)
    yield scores
    hooks.unregister(PROVIDER)


@pytest.fixture
def events():
    """Records every participants hook event: list of (event, participant_id, details)."""
    seen: list[tuple[str, int, dict]] = []
    for event in ("consented", "randomised", "withdrawn", "timezone_changed"):
        hooks.register(
            event,
            PROVIDER + "-events",
            lambda *, participant, _e=event, **details: seen.append((_e, participant.pk, details)),
        )
    yield seen
    hooks.unregister(PROVIDER + "-events")


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
