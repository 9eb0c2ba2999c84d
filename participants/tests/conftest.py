"""Fixtures of the participants tests."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest
from rest_framework.test import APIClient

from participants import hooks
from participants.models import ConsentDocument

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


ELIGIBLE = {
    "adult": True,
    "no_psychosis_history": True,
    "no_lithium_or_tramadol": True,
    "not_pregnant": True,
    "no_cardiac_condition": True,
}


@pytest.fixture
def register(trial, site_ldn, make_staff):
    """register(site=..., **kw) → (participant, code) through the service."""
    from participants.services import participant_register

    coordinators = {site_ldn.pk: make_staff("coordinator", site=site_ldn)}  # a coordinator of each site registers

    def run(site=None, eligibility=None, contact=None, tz="Europe/London"):
        site = site or site_ldn
        if site.pk not in coordinators:
            coordinators[site.pk] = make_staff("coordinator", site=site)
        coordinator = coordinators[site.pk]
        return participant_register(
            trial=trial,
            site=site,
            tz=tz,
            eligibility=dict(eligibility or ELIGIBLE),
            contact=contact,
            actor=coordinator,
        )

    return run


def sign_consent(participant):
    from participants.services import consent_record_paper

    document = ConsentDocument.objects.get(trial=participant.trial, version="1.0")
    return consent_record_paper(
        participant=participant,
        version=document.version,
        paper_reference="scan-001",
        signed_at=datetime(2026, 1, 10, 9, 0, tzinfo=UTC),
        actor=participant.registered_by,
    )
