"""factory-boy factories of the participants app. Every write goes through the app's services, as a coordinator's
or a phone's would: registration (screening, study id, enrolment code), enrolment (the phone's token), consent."""

from __future__ import annotations

from datetime import datetime

import factory
from django.utils import timezone

from participants.models import ConsentDocument, ConsentSignature, Participant

ELIGIBLE = {
    "adult": True,
    "no_psychosis_history": True,
    "no_lithium_or_tramadol": True,
    "not_pregnant": True,
    "no_cardiac_condition": True,
}


class ParticipantFactory(factory.Factory):
    """ParticipantFactory(trial=..., site=...) → a participant registered by participants.services.
    participant_register; `participant.enrolment_code` is the code it returned (None when screening failed)."""

    class Meta:
        model = Participant

    trial = None
    site = None
    tz = factory.LazyAttribute(lambda o: o.site.timezone)
    eligibility = None  # every criterion of the trial's protocol true (ELIGIBLE for the demo trial)
    contact = None
    registered_by = None
    now = None

    @classmethod
    def _create(cls, model_class, *, trial, site, tz, eligibility, contact, registered_by, now):
        from participants.services import participant_register
        from trialsite.protocol.services import protocol_current

        if eligibility is None:
            eligibility = {criterion.key: True for criterion in protocol_current(trial).eligibility}
        participant, code = participant_register(
            trial=trial, site=site, tz=tz, eligibility=eligibility, contact=contact, user=registered_by, now=now
        )
        participant.enrolment_code = code
        return participant


class EnrolledParticipantFactory(ParticipantFactory):
    """A registered participant whose phone exchanged the enrolment code (participant_enrol): status enrolled;
    `participant.token` is the phone's bearer token."""

    @classmethod
    def _create(cls, model_class, **kwargs):
        from participants.services import participant_enrol

        registered = super()._create(model_class, **kwargs)
        participant, key = participant_enrol(code=registered.enrolment_code, now=kwargs["now"])
        participant.enrolment_code, participant.token = registered.enrolment_code, key
        return participant


class ConsentFactory(factory.Factory):
    """ConsentFactory(participant=p, at=...) → the participant's signature of the consent version in force, signed
    on the phone (consent_sign, bound to the text's hash); with paper_reference=..., recorded from paper by the
    staff user `by` (consent_record_paper)."""

    class Meta:
        model = ConsentSignature

    participant = None
    at = None
    version = None
    typed_name = "Test Person"
    paper_reference = ""
    by = None

    @classmethod
    def _create(cls, model_class, *, participant, at, version, typed_name, paper_reference, by):
        from participants.services import consent_record_paper, consent_sign

        at = at or timezone.now()
        document = consent_document(participant, at=at, version=version)
        if paper_reference:
            return consent_record_paper(
                participant=participant,
                version=document.version,
                paper_reference=paper_reference,
                signed_at=at,
                user=by or participant.registered_by,
            )
        return consent_sign(
            participant=participant,
            version=document.version,
            sha256=document.sha256,
            agree=True,
            typed_name=typed_name,
            now=at,
        )


def consent_document(participant: Participant, *, at: datetime, version: str | None = None) -> ConsentDocument:
    """The named version, else the latest version valid on the participant's local date `at`."""
    documents = ConsentDocument.objects.filter(trial=participant.trial)
    if version is not None:
        return documents.get(version=version)
    local = at.astimezone(participant.zone).date()
    return documents.filter(valid_from__lte=local).order_by("-valid_from").first() or documents.earliest("valid_from")
