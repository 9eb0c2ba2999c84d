"""Consent: electronic signature from the phone, paper consent recorded by staff. History is append-only."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from .. import providers
from ..models import ConsentDocument, ConsentSignature, Participant, ParticipantStatus
from ..selectors import consent_status
from .errors import Withdrawn, WorkflowError


@transaction.atomic
def consent_sign(
    *,
    participant: Participant,
    version: str,
    sha256: str,
    agree: bool,
    typed_name: str,
    device: dict | None = None,
    now=None,
) -> ConsentSignature:
    """Sign the version the participant must sign now, binding the signature to the hash of its exact text."""
    now = now or timezone.now()
    participant = Participant.objects.select_for_update().select_related("trial").get(pk=participant.pk)
    if participant.is_withdrawn:
        raise Withdrawn("You have withdrawn from the study.")
    if participant.status == ParticipantStatus.SCREEN_FAILED:
        raise WorkflowError("This participant did not pass screening.")
    errors = {}
    if agree is not True:
        errors["agree"] = ["You must agree to sign."]
    typed_name = (typed_name or "").strip()
    if not typed_name:
        errors["typed_name"] = ["Type your name to sign."]
    if errors:
        raise ValidationError(errors)
    status = consent_status(participant=participant, on=participant.local_date(now))
    document = status.current
    if document is None:
        raise WorkflowError("There is no consent document to sign.")
    if not status.needs_consent:
        raise WorkflowError(f"Consent version {document.version} is already signed.")
    if version != document.version or sha256 != document.sha256:
        raise WorkflowError(
            f"The consent you saw is not the current version ({document.version}); reload it and read it again."
        )
    signature = ConsentSignature(
        participant=participant,
        document=document,
        method=ConsentSignature.ELECTRONIC,
        sha256=document.sha256,
        typed_name=typed_name,
        signed_at=now,
        device=device or {},
    )
    signature.full_clean()
    signature.save()
    providers.schedule_provider().on_consented(participant=participant, document=document, now=now)
    return signature


@transaction.atomic
def consent_record_paper(
    *, participant: Participant, version: str, paper_reference: str, signed_at, user
) -> ConsentSignature:
    """Staff record a paper consent form (with the reference of the scanned copy)."""
    participant = Participant.objects.select_for_update().get(pk=participant.pk)
    if participant.status == ParticipantStatus.SCREEN_FAILED:
        raise WorkflowError("This participant did not pass screening.")
    document = ConsentDocument.objects.filter(trial=participant.trial, version=version).first()
    if document is None:
        raise ValidationError({"version": [f"No consent version {version!r} in this trial."]})
    if not (paper_reference or "").strip():
        raise ValidationError({"paper_reference": ["Give the reference of the scanned copy."]})
    if timezone.is_naive(signed_at):
        raise ValidationError({"signed_at": ["A time with a UTC offset."]})
    if ConsentSignature.objects.filter(participant=participant, document=document).exists():
        raise WorkflowError(f"Consent version {version} is already recorded.")
    signature = ConsentSignature(
        participant=participant,
        document=document,
        method=ConsentSignature.PAPER,
        sha256=document.sha256,
        signed_at=signed_at,
        paper_reference=paper_reference.strip(),
        recorded_by=user,
    )
    signature.full_clean()
    signature.save()
    providers.schedule_provider().on_consented(participant=participant, document=document)
    return signature
