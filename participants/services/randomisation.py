"""Randomising a participant: take the next free slot of their stratum in one transaction."""

from __future__ import annotations

import uuid

from django.db import transaction
from django.utils import timezone

from trialsite import policy, roles
from trialsite.outbox import mail_enqueue

from .. import providers
from ..models import Allocation, AllocationList, AllocationSlot, Participant, ParticipantStatus
from ..selectors import consent_status
from .allocation import participant_stratum
from .errors import NotConsented, StratumExhausted, Withdrawn, WorkflowError
from .kits import kit_envelopes_make


def participant_randomise(*, participant: Participant, actor, now=None) -> Allocation:
    """Randomise, or refuse (409) when not consented, not eligible, baseline missing, already randomised or
    withdrawn. An exhausted stratum also e-mails the trial managers."""
    try:
        return _randomise(participant=participant, actor=actor, now=now)
    except StratumExhausted as exc:
        allocation_exhausted_alert(trial=participant.trial, stratum=exc.stratum)
        raise


@transaction.atomic
def _randomise(*, participant: Participant, actor, now) -> Allocation:
    now = now or timezone.now()
    policy.require(actor, policy.PARTICIPANT_RANDOMISE, participant)
    # Lock the participant first: two clicks on "randomise" serialise here; the loser sees the allocation.
    participant = Participant.objects.select_for_update().select_related("trial", "site").get(pk=participant.pk)
    policy.require_unlocked(participant)
    if (
        participant.status == ParticipantStatus.RANDOMISED
        or Allocation.objects.filter(participant=participant).exists()
    ):
        raise WorkflowError(f"{participant.study_id} is already randomised.")
    if participant.status == ParticipantStatus.WITHDRAWN:
        raise Withdrawn(f"{participant.study_id} has withdrawn.")
    if participant.status == ParticipantStatus.SCREEN_FAILED or not participant.eligible:
        raise WorkflowError(f"{participant.study_id} is not eligible (screening failed).")
    if participant.status not in (ParticipantStatus.REGISTERED, ParticipantStatus.ENROLLED):
        raise WorkflowError(f"{participant.study_id} cannot be randomised in status {participant.status}.")
    if not all(participant.eligibility.values()):
        raise WorkflowError(f"{participant.study_id}: the eligibility checklist is not all true.")
    status = consent_status(participant=participant, on=participant.local_date(now))
    if not status.has_consented or status.needs_consent:
        raise NotConsented(f"{participant.study_id} has not signed the current consent.")
    complete, missing = providers.schedule_provider().baseline_status(participant=participant)
    if not complete:
        raise WorkflowError(f"{participant.study_id}: baseline not complete ({'; '.join(missing)}).")
    stratum, missing = participant_stratum(participant=participant)
    if stratum is None:
        raise WorkflowError(f"{participant.study_id}: stratum unknown ({'; '.join(missing)}).")
    alist = AllocationList.objects.filter(trial=participant.trial).first()
    if alist is None:
        raise WorkflowError(f"{participant.trial.slug} has no allocation list yet (allocation_generate).")
    free = AllocationSlot.objects.filter(allocation_list=alist, stratum=stratum, taken=False).order_by("sequence")
    # Concurrent randomisations skip each other's locked slots. `taken` is on the locked row itself, so a slot
    # taken by a transaction that committed meanwhile is re-checked and passed over.
    slot = free.select_for_update(skip_locked=True).first()
    if slot is None:
        # Every free slot may be locked by transactions that will roll back: wait for them rather than report
        # a false exhaustion.
        slot = free.select_for_update().first()
    if slot is None:
        raise StratumExhausted(
            f"The allocation list has no free place left in stratum {stratum}; the trial managers have been told.",
            stratum=stratum,
        )
    slot.taken = True
    slot.save(update_fields=["taken"])
    allocation = Allocation(participant=participant, slot=slot, allocated_at=now, allocated_by=actor)
    allocation.full_clean(validate_unique=False)
    allocation.save()
    participant.status = ParticipantStatus.RANDOMISED
    participant.randomised_at = now
    participant.day0 = now.astimezone(participant.zone).date()
    participant.stratum = stratum
    participant.save(update_fields=["status", "randomised_at", "day0", "stratum"])
    kit_envelopes_make(participant=participant, allocation=allocation, now=now)  # self-blinding trials only
    providers.schedule_provider().on_randomised(participant=participant, now=now)
    return allocation


def _trial_manager_emails(trial) -> list[str]:
    """The trial managers of that trial only."""
    return roles.holders_emails([roles.TRIAL_MANAGER], trial=trial)


@transaction.atomic
def allocation_exhausted_alert(*, trial, stratum: str) -> None:
    """Record an e-mail to the trial managers that a stratum has no free slot (a worker sends it: the outbox).
    One per refused randomisation, as before. Names no arm."""
    to = _trial_manager_emails(trial)
    if not to:
        return
    subject = f"[trialsite] {trial.slug}: allocation list exhausted in stratum {stratum}"
    body = (
        f"A participant could not be randomised: stratum {stratum} of trial {trial.slug} has no free slot left.\n"
        "The unblinded statistician must extend the allocation list before more participants in this stratum "
        "can be randomised.\n"
    )
    mail_enqueue(
        dedupe_key=f"allocation_exhausted:{trial.pk}:{stratum}:{uuid.uuid4()}",
        subject=subject,
        body=body,
        to=to,
        trial=trial,
    )


def unit_codes_of(allocation: Allocation) -> list[str]:
    """Dose-unit labels of an allocation (labels, not contents: coordinators may see them)."""
    return list(allocation.slot.dose_units.order_by("number").values_list("code", flat=True))
