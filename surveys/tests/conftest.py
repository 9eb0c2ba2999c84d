from datetime import timedelta

import pytest
from django.utils import timezone

from .factories import auth, make_participant, sign_consent


@pytest.fixture
def phone(trial, site_ldn, api_client):
    """A consented London participant (baseline PHQ-9 and GAD-7 open) and an authenticated API client."""
    participant, key = make_participant(trial=trial, site=site_ldn)
    sign_consent(participant, at=timezone.now() - timedelta(hours=1))
    participant.refresh_from_db()
    auth(api_client, key)
    api_client.participant = participant
    api_client.token = key
    return api_client


PHQ9_MILD = {f"phq9_{n}": v for n, v in enumerate([1, 1, 1, 1, 1, 0, 0, 0, 0], 1)}
