"""factory-boy factories of the surveys app, and the few helpers the tests call, all on the real write paths.

Participants are registered and enrolled through participants.services (participants/tests/factories.py);
consent is signed with consent_sign; randomisation is the real one: the baseline surveys opened by consent are
answered through survey_response_submit, then participants.services.participant_randomise allocates a slot of
the trial's concealed list (generated on first use) in the stratum of the real baseline score. Survey instances
with explicit windows (window and reminder tests) are rows: the planner owns instance writes and has no
"one instance at this time" entry point.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import factory
from django.utils import timezone

from participants.models import Participant
from participants.tests.factories import ConsentFactory, EnrolledParticipantFactory
from surveys.models import InstanceStatus, Instrument, Response, SurveyInstance

PHQ9_MILD = {f"phq9_{n}": v for n, v in enumerate([1, 1, 1, 1, 1, 0, 0, 0, 0], 1)}  # total 5: stratum lt10
GAD7_MILD = {f"gad7_{n}": 1 for n in range(1, 8)}
BASELINE_ANSWERS = {"phq9": PHQ9_MILD, "gad7": GAD7_MILD}


def instrument_of(trial, slug: str) -> Instrument:
    return Instrument.objects.filter(trial=trial, slug=slug).order_by("-version").first()


class SurveyInstanceFactory(factory.django.DjangoModelFactory):
    """SurveyInstanceFactory(participant=p, opens_at=...) → a scheduled instance of `slug` open for `window`, then
    `grace`; local date and time in the participant's zone."""

    class Meta:
        model = SurveyInstance

    class Params:
        slug = "daily-mood"
        window = timedelta(hours=4)
        grace = timedelta(minutes=30)

    participant = None
    opens_at = None
    instrument = factory.LazyAttribute(lambda o: instrument_of(o.participant.trial, o.slug))
    schedule_key = factory.LazyAttribute(lambda o: f"test_{o.slug}")
    study_day = factory.Sequence(lambda n: n + 1)
    timezone = factory.LazyAttribute(lambda o: o.participant.timezone)
    local_date = factory.LazyAttribute(lambda o: o.opens_at.astimezone(o.participant.zone).date())
    local_time = factory.LazyAttribute(lambda o: o.opens_at.astimezone(o.participant.zone).time().replace(tzinfo=None))
    closes_at = factory.LazyAttribute(lambda o: o.opens_at + o.window)
    grace_until = factory.LazyAttribute(lambda o: o.opens_at + o.window + o.grace)
    protocol_version = factory.LazyAttribute(lambda o: o.participant.trial.current_protocol)


class ResponseFactory(factory.Factory):
    """ResponseFactory(instance=i, answers={...}, at=...) → the Response stored by survey_response_submit (scored,
    safety rules run), authored and received at `at` (default: now)."""

    class Meta:
        model = Response

    instance = None
    answers = None
    at = None
    source = "api"

    @classmethod
    def _create(cls, model_class, *, instance, answers, at, source):
        from surveys.services import survey_response_submit

        at = at or timezone.now()
        if answers is None:
            answers = BASELINE_ANSWERS[instance.instrument.slug]
        survey_response_submit(
            participant=instance.participant,
            instance_id=instance.uuid,
            idempotency_key=uuid.uuid4(),
            answers=answers,
            authored=at,
            source=source,
            now=at,
        )
        return model_class.objects.get(instance=instance)


# --- the helpers the tests call -------------------------------------------------------------------------------


def make_participant(*, trial, site, tz: str | None = None) -> tuple[Participant, str]:
    """An enrolled participant (registered, code exchanged on the phone) and the phone's bearer token."""
    participant = EnrolledParticipantFactory(trial=trial, site=site, tz=tz or site.timezone)
    return participant, participant.token


def sign_consent(participant: Participant, *, at: datetime | None = None, version: str | None = None, now=None):
    """The participant signs (on the phone) the version in force, or `version`, at `at` (or `now`)."""
    return ConsentFactory(participant=participant, at=at or now, version=version)


def randomise(participant: Participant, *, at: datetime, now=None) -> Participant:
    """Randomise through the real path at `at`: consent (an hour before, if not signed yet), the open baseline
    surveys answered, then participant_randomise. `now` is accepted for older callers and must equal `at`."""
    from participants.models import AllocationList, ConsentSignature
    from participants.services import allocation_list_generate, participant_randomise

    assert now is None or now == at, "randomisation happens at `at`"
    if not ConsentSignature.objects.filter(participant=participant).exists():
        sign_consent(participant, at=at - timedelta(hours=1))
    baseline = SurveyInstance.objects.filter(
        participant=participant, schedule_key__startswith="baseline", status=InstanceStatus.SCHEDULED
    ).select_related("instrument")
    for instance in baseline:
        ResponseFactory(instance=instance, at=at)
    if not AllocationList.objects.filter(trial=participant.trial).exists():
        allocation_list_generate(trial=participant.trial, seed=7, per_stratum=16)
    participant_randomise(participant=participant, now=at)
    participant.refresh_from_db()
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
    extra = {k: v for k, v in {"schedule_key": schedule_key, "study_day": study_day}.items() if v is not None}
    return SurveyInstanceFactory(
        participant=participant, slug=slug, opens_at=opens_at, window=window, grace=grace, **extra
    )
