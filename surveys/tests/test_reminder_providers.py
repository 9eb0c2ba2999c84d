"""Production never fakes an SMS or a push (issue 11 item 7): a channel without a real provider stops
`manage.py check` (so `check --deploy`, `migrate` and the web start), and a worker that somehow runs anyway
fails the reminder instead of writing the local outbox and calling it sent. REMINDER_CHANNELS turns a channel
off explicitly."""

from __future__ import annotations

import subprocess
import sys

import pytest
from django.conf import settings

from participants import crypto
from participants.models import ContactDetails
from trialsite import vapid
from trialsite.tests.test_settings import production_env

from .reminder_helpers import make_participant
from .test_push import ALWAYS_AWAKE, NOON, due_reminder, send_like_the_task


def check(*args: str, **env) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", "check", *args],
        cwd=settings.BASE_DIR,
        env=production_env(**env),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_production_refuses_sms_and_push_without_providers():
    result = check(REMINDER_CHANNELS="email,sms,push")
    assert result.returncode != 0
    assert "surveys.E102" in result.stderr and "SMS reminders are enabled but no SMS provider" in result.stderr
    assert "surveys.E104" in result.stderr and "Web Push is not configured" in result.stderr
    # An explicit outbox backend is refused just the same.
    result = check(
        REMINDER_CHANNELS="email,sms",
        REMINDER_SMS_BACKEND="surveys.reminders.channels.FileOutboxBackend",
    )
    assert result.returncode != 0 and "surveys.E102" in result.stderr


def test_production_with_twilio_and_vapid_configured_is_clean():
    private, public = vapid.generate()
    result = check(
        "--deploy",
        "--fail-level",
        "WARNING",
        REMINDER_CHANNELS="email,sms,push",
        REMINDER_SMS_BACKEND="surveys.reminders.channels.TwilioSmsBackend",
        TWILIO_ACCOUNT_SID="AC" + "0" * 32,
        TWILIO_AUTH_TOKEN="x" * 32,
        TWILIO_FROM_NUMBER="+15005550006",
        WEBPUSH_VAPID_PRIVATE_KEY=private,
        WEBPUSH_VAPID_PUBLIC_KEY=public,
        WEBPUSH_VAPID_SUBJECT="mailto:trial-team@example.org",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_names_incomplete_provider_settings():
    result = check(
        REMINDER_CHANNELS="sms,push",
        REMINDER_SMS_BACKEND="surveys.reminders.channels.TwilioSmsBackend",
        TWILIO_ACCOUNT_SID="AC" + "0" * 32,
        WEBPUSH_VAPID_PRIVATE_KEY="not-a-key",
        WEBPUSH_VAPID_SUBJECT="trial-team@example.org",
    )
    assert result.returncode != 0
    assert "surveys.E103" in result.stderr and "surveys.E105" in result.stderr


def test_production_requires_public_base_url():
    env = production_env()
    del env["PUBLIC_BASE_URL"]
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0 and "PUBLIC_BASE_URL is required" in result.stderr


@pytest.mark.django_db
def test_a_worker_without_a_provider_fails_the_reminder_instead_of_faking_it(trial, site_ldn, settings, tmp_path):
    settings.REMINDER_ALLOW_LOCAL_PROVIDERS = False
    settings.REMINDER_OUTBOX_DIR = str(tmp_path)
    settings.WEBPUSH_VAPID_PRIVATE_KEY = ""
    reminder = due_reminder(make_participant(trial, site_ldn, channels=["push"], push="tok", quiet=ALWAYS_AWAKE))
    assert send_like_the_task(reminder.pk, now=NOON) == "failed"
    reminder.refresh_from_db()
    assert reminder.status == "failed" and "no provider configured" in reminder.last_error
    assert not (tmp_path / "push.jsonl").exists()


@pytest.mark.django_db
def test_a_channel_left_out_of_reminder_channels_is_never_used(trial, site_ldn, settings, mailoutbox):
    settings.REMINDER_CHANNELS = ["email"]
    participant = make_participant(
        trial, site_ldn, channels=["sms", "email"], email="a@example.org", quiet=ALWAYS_AWAKE
    )
    ContactDetails.objects.filter(participant=participant).update(
        phone_encrypted=crypto.encrypt("+447700900123"), has_phone=True
    )
    reminder = due_reminder(participant)
    assert send_like_the_task(reminder.pk, now=NOON) == "sent"
    reminder.refresh_from_db()
    assert reminder.channel == "email" and len(mailoutbox) == 1
