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


# --- Web Push: the local push-service double and VAPID settings (issue 10) ----------------------------------


@pytest.fixture
def push_double():
    """A running push-service double on 127.0.0.1 (surveys/tests/push_double.py)."""
    from . import push_double as double_module

    double = double_module.start()
    yield double
    double_module.stop(double)


@pytest.fixture
def vapid(settings):
    """A fresh VAPID key pair in the settings (the push channel defaults to Web Push once it is set)."""
    from trialsite import vapid as vapid_keys

    private, public = vapid_keys.generate()
    settings.WEBPUSH_VAPID_PRIVATE_KEY = private
    settings.WEBPUSH_VAPID_PUBLIC_KEY = public
    settings.WEBPUSH_VAPID_SUBJECT = "mailto:trial-team@example.org"
    settings.WEBPUSH_ALLOW_INSECURE_ENDPOINTS = True
    settings.PUBLIC_BASE_URL = "https://trial.example.org"
    settings.REMINDER_PUSH_BACKEND = None
    return {"private": private, "public": public, "subject": settings.WEBPUSH_VAPID_SUBJECT}
