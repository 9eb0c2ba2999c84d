"""Builders for the reminder tests (on the factories of surveys/tests/factories.py) and a look at the broker queue."""

from __future__ import annotations

from datetime import datetime, time, timedelta

from participants.models import Participant
from surveys.models import SurveyInstance

from .factories import SurveyInstanceFactory


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
    """An enrolled participant (participants/tests/factories.py) with the reminder settings a phone would set."""
    from participants.services import participant_settings_update
    from participants.tests.factories import EnrolledParticipantFactory

    participant = EnrolledParticipantFactory(
        trial=trial, site=site, tz=tz or site.timezone, contact={"email": email} if email else None
    )
    return participant_settings_update(
        participant=participant,
        channels=list(channels),
        push_token=push,
        quiet_hours={"start": quiet[0], "end": quiet[1]} if quiet else None,
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
    """An instance with explicit times (surveys/tests/factories.py), planned the day before it opens."""
    extra = {"study_day": day} if day is not None else {}
    return SurveyInstanceFactory(
        participant=participant,
        slug=slug,
        opens_at=opens_at,
        window=window,
        grace=grace,
        schedule_key=f"rd-{slug}",
        created_at=opens_at - timedelta(days=1),
        **extra,
    )


def queue_length(queue: str) -> int:
    from trialsite.celery import app

    with app.connection_for_read() as conn:
        return conn.default_channel.client.llen(queue)


def purge(queue: str) -> None:
    from trialsite.celery import app

    with app.connection_for_read() as conn:
        conn.default_channel.client.delete(queue)
