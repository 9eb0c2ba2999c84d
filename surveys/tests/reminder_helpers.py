"""Builders for the reminder tests: participants, instances and a look at the broker queue."""

from __future__ import annotations

import itertools
from datetime import datetime, time, timedelta

from participants.models import ContactDetails, Participant, ParticipantStatus
from surveys.models import Instrument, SurveyInstance

_seq = itertools.count(1)


def make_participant(
    trial,
    site,
    *,
    tz: str | None = None,
    channels=("email",),
    email: str = "",
    push: str = "",
    quiet: tuple[time, time] | None = None,
) -> Participant:
    from django.contrib.auth import get_user_model

    from participants import crypto

    n = next(_seq)
    study_id = f"RD-{n:05d}-{datetime.now().timestamp():.0f}"[-32:]  # noqa: DTZ005 - only a unique suffix
    participant = Participant.objects.create(
        study_id=study_id,
        user=get_user_model().objects.create_user(f"phone-{study_id}", password=None),  # the phone's account
        trial=trial,
        site=site,
        status=ParticipantStatus.ENROLLED,
        timezone=tz or site.timezone,
        channels=list(channels),
        push_token=push,
        eligibility={"adult": True},
        eligible=True,
        quiet_hours_start=quiet[0] if quiet else None,
        quiet_hours_end=quiet[1] if quiet else None,
    )
    if email:
        ContactDetails.objects.create(participant=participant, email_encrypted=crypto.encrypt(email), has_email=True)
    return participant


def instrument(trial, slug: str = "daily-mood") -> Instrument:
    found = Instrument.objects.filter(trial=trial, slug=slug).order_by("-version").first()
    if found:
        return found
    pv = trial.current_protocol
    return Instrument.objects.create(
        trial=trial, slug=slug, version=1, title=slug, definition={"items": []}, protocol_version=pv
    )


def make_instance(
    participant,
    *,
    opens_at: datetime,
    window: timedelta = timedelta(hours=4),
    grace: timedelta = timedelta(0),
    slug: str = "daily-mood",
    day: int | None = None,
) -> SurveyInstance:
    inst = instrument(participant.trial, slug)
    local = opens_at.astimezone(participant.zone)
    return SurveyInstance.objects.create(
        participant=participant,
        instrument=inst,
        schedule_key=f"rd-{slug}",
        study_day=day if day is not None else next(_seq),
        timezone=participant.timezone,
        local_date=local.date(),
        local_time=local.time().replace(tzinfo=None),
        opens_at=opens_at,
        closes_at=opens_at + window,
        grace_until=opens_at + window + grace,
        protocol_version=participant.trial.current_protocol,
        created_at=opens_at - timedelta(days=1),
    )


def queue_length(queue: str) -> int:
    from trialsite.celery import app

    with app.connection_for_read() as conn:
        return conn.default_channel.client.llen(queue)


def purge(queue: str) -> None:
    from trialsite.celery import app

    with app.connection_for_read() as conn:
        conn.default_channel.client.delete(queue)
