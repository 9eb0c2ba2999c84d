"""The SMS channel through Twilio's official client, against a local double of the Messages API."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest

from participants import crypto
from participants.models import ContactDetails
from surveys.models import Reminder

from . import twilio_double
from .reminder_helpers import make_participant
from .test_push import ALWAYS_AWAKE, NOON, due_reminder, send_like_the_task

pytestmark = pytest.mark.django_db

NUMBER = "+447700900123"


@pytest.fixture
def twilio(settings):
    double = twilio_double.start()
    settings.REMINDER_SMS_BACKEND = "surveys.reminders.channels.TwilioSmsBackend"
    settings.TWILIO_ACCOUNT_SID = double.account_sid
    settings.TWILIO_AUTH_TOKEN = double.auth_token
    settings.TWILIO_FROM_NUMBER = "+15005550006"
    settings.TWILIO_API_BASE_URL = double.base_url
    yield double
    twilio_double.stop(double)


def texting(trial, site, number: str = NUMBER):
    participant = make_participant(trial, site, channels=["sms"], quiet=ALWAYS_AWAKE)
    ContactDetails.objects.create(participant=participant, phone_encrypted=crypto.encrypt(number), has_phone=True)
    return participant


def test_sms_reminder_goes_through_twilio_once(trial, site_ldn, twilio, caplog):
    reminder = due_reminder(texting(trial, site_ldn))
    with caplog.at_level(logging.INFO):
        assert send_like_the_task(reminder.pk, now=NOON) == "sent"
    (message,) = twilio.messages
    assert message["To"] == NUMBER and message["From"] == "+15005550006"
    assert message["Body"].startswith("A short questionnaire for the study is open on your phone until ")
    reminder.refresh_from_db()
    assert reminder.status == "sent" and reminder.channel == "sms" and reminder.provider_id == message["sid"]
    assert twilio.rejected == []
    assert NUMBER not in caplog.text and "…23" in caplog.text  # numbers are masked in logs
    assert send_like_the_task(reminder.pk, now=NOON + timedelta(minutes=1)) == "already sent"
    assert len(twilio.messages) == 1


def test_messaging_service_sid_instead_of_a_from_number(trial, site_ldn, twilio, settings):
    settings.TWILIO_FROM_NUMBER = ""
    settings.TWILIO_MESSAGING_SERVICE_SID = "MG" + "0" * 32
    reminder = due_reminder(texting(trial, site_ldn))
    assert send_like_the_task(reminder.pk, now=NOON) == "sent"
    assert twilio.messages[0]["MessagingServiceSid"] == "MG" + "0" * 32 and "From" not in twilio.messages[0]


def test_bad_number_fails_for_good_with_twilios_code(trial, site_ldn, twilio):
    twilio.bad_numbers.add("+440000")
    reminder = due_reminder(texting(trial, site_ldn, "+440000"))
    assert send_like_the_task(reminder.pk, now=NOON) == "failed"
    reminder.refresh_from_db()
    assert reminder.status == "failed" and "Twilio 400 error 21211" in reminder.last_error
    assert "+440000" not in reminder.last_error
    assert twilio.messages == []


@pytest.mark.parametrize("status", [503, 429])
def test_twilio_outage_is_transient_then_sends(trial, site_ldn, twilio, status):
    reminder = due_reminder(texting(trial, site_ldn))
    twilio.outage = status
    assert send_like_the_task(reminder.pk, now=NOON) == "error"
    assert Reminder.objects.get(pk=reminder.pk).status not in ("sent", "failed")
    twilio.outage = None
    assert send_like_the_task(reminder.pk, now=NOON + timedelta(minutes=1)) == "sent"
    assert len(twilio.messages) == 1


def test_wrong_credentials_are_refused_by_the_double(trial, site_ldn, twilio, settings):
    settings.TWILIO_AUTH_TOKEN = "wrong"
    reminder = due_reminder(texting(trial, site_ldn))
    assert send_like_the_task(reminder.pk, now=NOON) == "failed"
    assert twilio.rejected == ["Authenticate"] and twilio.messages == []
