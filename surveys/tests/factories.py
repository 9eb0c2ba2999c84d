"""Participants built directly (the enrol flow belongs to the participants app): a Participant row, its
Django user and a phone bearer token; consent by ConsentSignature rows; randomisation by setting the
fields and emitting the `randomised` event, as the participants service does."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta

from django.contrib.auth import get_user_model
from django.utils import timezone

from participants import providers
from participants.models import ConsentDocument, ConsentSignature, Participant, ParticipantStatus
from trialsite.api.auth import token_issue
from trialsite.models import ApiToken

_seq = itertools.count(1)


def make_participant(
    *, trial, site, tz: str | None = None, status=ParticipantStatus.ENROLLED
) -> tuple[Participant, str]:
    n = next(_seq)
    user = get_user_model().objects.create_user(f"phone-{n}-{timezone.now().timestamp()}", password=None)
    participant = Participant.objects.create(
        study_id=f"T{n:04d}-{int(timezone.now().timestamp() * 1000) % 10**8}",
        trial=trial,
        site=site,
        user=user,
        status=status,
        timezone=tz or site.timezone,
        eligibility={"adult": True},
        eligible=True,
        enrolled_at=timezone.now(),
    )
    key, _ = token_issue(user=user, kind=ApiToken.PARTICIPANT, ttl=timedelta(days=30))
    return participant, key


def sign_consent(participant: Participant, *, at: datetime | None = None, version: str = "1.0", now=None):
    document = ConsentDocument.objects.get(trial=participant.trial, version=version)
    signature = ConsentSignature.objects.create(
        participant=participant,
        document=document,
        method=ConsentSignature.ELECTRONIC,
        sha256=document.sha256,
        typed_name="Test Person",
        signed_at=at or timezone.now(),
    )
    providers.schedule_provider().on_consented(participant=participant, signature=signature, now=now)
    return signature


def randomise(participant: Participant, *, at: datetime, now=None) -> Participant:
    participant.status = ParticipantStatus.RANDOMISED
    participant.randomised_at = at
    participant.day0 = at.astimezone(participant.zone).date()
    participant.save(update_fields=["status", "randomised_at", "day0"])
    providers.schedule_provider().on_randomised(participant=participant, now=now or at)
    return participant


def auth(client, key: str):
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client


def make_instance(
    participant: Participant,
    *,
    slug: str,
    opens_at: datetime,
    window=timedelta(hours=4),
    grace=timedelta(minutes=30),
    schedule_key: str | None = None,
    study_day: int | None = None,
):
    """An instance with explicit times (window tests), outside the protocol's schedule."""
    from surveys.models import Instrument, SurveyInstance

    instrument = Instrument.objects.filter(trial=participant.trial, slug=slug).order_by("-version").first()
    n = next(_seq)
    return SurveyInstance.objects.create(
        participant=participant,
        instrument=instrument,
        schedule_key=schedule_key or f"test_{slug}",
        study_day=n if study_day is None else study_day,
        timezone=participant.timezone,
        local_date=opens_at.astimezone(participant.zone).date(),
        opens_at=opens_at,
        closes_at=opens_at + window,
        grace_until=opens_at + window + grace,
        protocol_version=participant.trial.current_protocol,
    )
