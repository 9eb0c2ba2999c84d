"""The self-blinding demo trial (protocols/self-blinding.yaml) and randomised participants made through the real
services: consent, the baseline answered, the concealed allocation list, participant_randomise (which makes the
kit)."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path

from participants.services import allocation_list_generate, participant_randomise
from surveys.models import SurveyInstance
from surveys.services import survey_instances_plan, survey_response_submit

from .factories import make_participant, sign_consent

SELF_BLINDING = Path(__file__).resolve().parents[2] / "protocols" / "self-blinding.yaml"


def load_self_blinding_trial():
    from trialsite.models import Site, Trial
    from trialsite.protocol.services import protocol_load_file
    from trialsite.services import site_create

    result = protocol_load_file(path=SELF_BLINDING)
    trial = Trial.objects.get(pk=result.trial.pk)
    site = Site.objects.filter(code="SBL").first() or site_create(
        code="SBL", name="Online", timezone="Europe/London", trials=[trial]
    )
    allocation_list_generate(trial=trial, seed=11, per_stratum=16)
    return trial, site


def randomised_participant(*, trial, site, randomised_at):
    """A participant randomised at `randomised_at` (consented and baseline answered an hour before)."""
    participant, key = make_participant(trial=trial, site=site)
    consented = randomised_at - timedelta(hours=1)
    sign_consent(participant, at=consented, now=consented)
    baseline = SurveyInstance.objects.get(participant=participant, schedule_key="baseline")
    survey_response_submit(
        participant=participant,
        instance_id=baseline.uuid,
        idempotency_key=uuid.uuid4(),
        answers={"mood": 50, "anxiety": 40, "energy": 60},
        authored=consented + timedelta(minutes=5),
        now=consented + timedelta(minutes=5),
    )
    participant.refresh_from_db()
    participant.eligibility = {"adult": True}
    participant.save(update_fields=["eligibility"])
    participant_randomise(participant=participant, now=randomised_at)
    # The randomised hook plans from the wall clock; plan as of the randomisation instant (past occurrences too).
    survey_instances_plan(participant=participant, now=randomised_at)
    participant.refresh_from_db()
    return participant, key
