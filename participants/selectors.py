"""Reads of participant data. Other apps read participants through these functions."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import F, FilteredRelation, Q
from django.utils import timezone

from trialsite.compiled_query import CompiledQuery

from .models import ConsentDocument, ConsentSignature, Participant, PushSubscription


@dataclass(frozen=True)
class ConsentStatus:
    current: ConsentDocument | None  # the version the participant must have signed now
    signed: ConsentSignature | None  # their signature of `current`, if any
    last_signed: ConsentSignature | None  # their latest signature of any version

    @property
    def needs_consent(self) -> bool:
        """True when new survey instances must be blocked until the participant signs `current`."""
        return self.current is not None and self.signed is None

    @property
    def has_consented(self) -> bool:
        return self.last_signed is not None


def consent_document_current(*, trial, on=None) -> ConsentDocument | None:
    """The version in force today: valid on that date, and among those the latest to start."""
    on = on or timezone.now().date()
    return (
        ConsentDocument.objects.filter(trial=trial, valid_from__lte=on)
        .exclude(valid_to__lt=on)
        .order_by("-valid_from", "-id")
        .first()
    )


def consent_status(*, participant: Participant, on=None) -> ConsentStatus:
    """What the participant must sign. A newer version blocks only when it requires re-consent, or when the
    participant never signed anything.

    One query: the trial's consent documents (a handful per trial), each with this participant's signature of it
    (at most one: a constraint) joined in. Signatures are only ever of the participant's own trial's documents
    (consent_sign and consent_record_paper take the document from the participant's trial).
    """
    on = on or participant.local_date()  # the consent in force on the participant's own date, not the UTC one
    documents = _documents_with_signatures(trial_id=participant.trial_id, participant_id=participant.pk)
    signatures = []
    for document in documents:
        values = [getattr(document, f"_sig_{name}") for name in _SIGNATURE_COLUMNS]
        if values[0] is not None:
            signature = ConsentSignature.from_db(ConsentDocument.objects.db, _SIGNATURE_COLUMNS, values)
            signature.document = document
            signatures.append(signature)
    return consent_status_of(documents=documents, signatures=signatures, on=on)


def consent_statuses(*, participants, on_of) -> dict[int, ConsentStatus]:
    """consent_status of many participants at once (the end-of-study sweep's batches): two queries in all, the
    participants' trials' documents and their signatures of them, then consent_status_of's one rule for each,
    on the date `on_of(participant)`."""
    participants = list(participants)
    trial_ids = {p.trial_id for p in participants}
    documents: dict[int, list[ConsentDocument]] = {t: [] for t in trial_ids}
    by_pk = {}
    for document in ConsentDocument.objects.filter(trial_id__in=trial_ids).order_by().defer("body"):
        documents[document.trial_id].append(document)
        by_pk[document.pk] = document
    signatures: dict[int, list[ConsentSignature]] = {p.pk: [] for p in participants}
    for signature in ConsentSignature.objects.filter(
        participant_id__in=list(signatures), document_id__in=list(by_pk)
    ).order_by():
        signature.document = by_pk[signature.document_id]
        signatures[signature.participant_id].append(signature)
    return {
        p.pk: consent_status_of(documents=documents[p.trial_id], signatures=signatures[p.pk], on=on_of(p))
        for p in participants
    }


def consent_status_of(*, documents, signatures, on) -> ConsentStatus:
    """consent_status's decision on rows already read (the trial's documents, the participant's signatures of
    them, each signature's `document` set): the one rule, for callers that read the rows in a query of their own
    (the survey submission reads them with the instance it locks)."""
    signatures = sorted(signatures, key=lambda s: (s.signed_at, s.pk))
    last = signatures[-1] if signatures else None
    in_force = [d for d in documents if d.valid_from <= on and not (d.valid_to is not None and d.valid_to < on)]
    # The version in force: valid on that date, and among those the latest to start (consent_document_current).
    current = max(in_force, key=lambda d: (d.valid_from, d.pk)) if in_force else None
    if current is None:
        return ConsentStatus(current=None, signed=None, last_signed=last)
    signed = next((s for s in signatures if s.document_id == current.pk), None)
    if signed is None and last is not None and not current.requires_reconsent:
        # An amendment that does not require re-consent: the earlier signature still covers the participant.
        return ConsentStatus(current=last.document, signed=last, last_signed=last)
    return ConsentStatus(current=current, signed=signed, last_signed=last)


# Every column of a signature, in the model's order (ConsentSignature.from_db builds the row from them).
_SIGNATURE_COLUMNS = tuple(f.attname for f in ConsentSignature._meta.concrete_fields)


def _documents_with_signatures_queryset(*, trial_id: int, participant_id: int):
    return (
        ConsentDocument.objects.filter(trial_id=trial_id)
        .order_by()  # sorted by the caller; the model's ordering would join the trial for its slug
        # The consent text (pages, in a real trial) is read only where it is shown: GET /api/v1/consent loads it
        # then (one query); /me and every submission need versions, dates and hashes.
        .defer("body")
        .annotate(_signature=FilteredRelation("signatures", condition=Q(signatures__participant_id=participant_id)))
        .annotate(**{f"_sig_{name}": F(f"_signature__{name}") for name in _SIGNATURE_COLUMNS})
    )


# Compiled to SQL once per process (it is on every phone request that checks consent); run on every call.
_documents_with_signatures = CompiledQuery(
    _documents_with_signatures_queryset, placeholders={"trial_id": -7_340_021, "participant_id": -7_340_023}
)


def participant_for_user(user) -> Participant | None:
    """The participant a phone token authenticates as, or None for staff."""
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    try:
        if type(user).participant.is_cached(user):
            # Read with the bearer token in its one statement (participants.token_join).
            return user.participant
        return Participant.objects.select_related("trial", "site").get(user=user)
    except Participant.DoesNotExist:
        return None


def user_is_participant(user) -> bool:
    """True when the user is a participant's (a phone's) user: never staff."""
    return Participant.objects.filter(user=user).exists()


# --- Web Push ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PushTarget:
    """What the push channel needs to reach one device (system use only: never shown or logged)."""

    id: int
    endpoint: str
    p256dh: str
    auth: str


def push_subscriptions_for_delivery(*, participant_id: int) -> list[PushTarget]:
    return [
        PushTarget(*row)
        for row in PushSubscription.objects.filter(participant_id=participant_id)
        .order_by("created_at", "pk")
        .values_list("pk", "endpoint", "p256dh", "auth")
    ]


def participant_has_push(*, participant: Participant) -> bool:
    """The push channel has somewhere to go: a Web Push subscription (or a legacy device push token)."""
    return bool(participant.push_token) or PushSubscription.objects.filter(participant=participant).exists()


def kit_periods(*, participant) -> list[dict]:
    """Self-blinding periods of a participant for any staff user: {period, recorded, recorded_at} per period of
    the protocol, never the condition nor which envelope (its label set) was used."""
    from trialsite.protocol.services import protocol_current

    from .kit_models import KitEnvelope

    sb = protocol_current(participant.trial).self_blinding
    if sb is None:
        return []
    recorded = dict(
        KitEnvelope.objects.filter(participant=participant, period__isnull=False).values_list("period", "recorded_at")
    )
    return [{"period": n, "recorded": n in recorded, "recorded_at": recorded.get(n)} for n in range(1, sb.periods + 1)]
