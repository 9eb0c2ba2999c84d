"""Emergency unblinding of one participant: request (with reason) → approval by the OTHER role → reveal to the
requester only. Every step is audited (tracked model) and e-mailed to the trial managers."""

from __future__ import annotations

import uuid

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from trialsite import policy, roles
from trialsite.audit import audit_context
from trialsite.outbox import mail_enqueue

from ..models import Allocation, Participant, UnblindingRequest, UnblindingStatus
from .errors import WorkflowError
from .randomisation import _trial_manager_emails

# The role a request is made in: a safety physician of the site first, else a trial manager of the trial.
_REQUESTER_ROLES = (roles.SAFETY_PHYSICIAN, roles.TRIAL_MANAGER)


def _notify(key: str, subject: str, body: str, *, trial) -> None:
    """Record the e-mail to the trial's managers in the caller's transaction; a worker sends it (the outbox), so a
    mail server that is down never fails the step and the notice still goes out when it is back."""
    to = _trial_manager_emails(trial)
    mail_enqueue(dedupe_key=f"unblinding:{key}", subject=subject, body=body, to=to, trial=trial)


@transaction.atomic
def unblinding_request(*, participant: Participant, actor, reason: str) -> UnblindingRequest:
    policy.require(
        actor,
        policy.UNBLINDING_REQUEST,
        participant,
        "Only a safety physician of the site or a trial manager may request unblinding.",
    )
    role = policy.role_in(actor, participant, _REQUESTER_ROLES)
    reason = (reason or "").strip()
    if len(reason) < 10:
        raise ValidationError({"reason": ["Give the clinical reason for unblinding."]})
    if not Allocation.objects.filter(participant=participant).exists():
        raise WorkflowError(f"{participant.study_id} is not randomised.")
    req = UnblindingRequest(participant=participant, requested_by=actor, requester_role=role, reason=reason)
    req.full_clean()
    with audit_context(user=actor, reason=reason):
        req.save()
    _notify(
        f"{req.uuid}:requested",
        f"[trialsite] Emergency unblinding requested for {participant.study_id}",
        f"{actor.get_username()} ({role}) asked to unblind {participant.study_id}.\nReason: {reason}\n",
        trial=participant.trial_id,
    )
    return req


@transaction.atomic
def unblinding_decide(*, request: UnblindingRequest, actor, approve: bool, note: str = "") -> UnblindingRequest:
    """Approval (or rejection) by the other role than the requester's, never by the requester."""
    req = UnblindingRequest.objects.select_for_update().select_related("participant").get(pk=request.pk)
    if req.status != UnblindingStatus.REQUESTED:
        raise WorkflowError("This request has already been decided.")
    other = roles.TRIAL_MANAGER if req.requester_role == roles.SAFETY_PHYSICIAN else roles.SAFETY_PHYSICIAN
    policy.require(
        actor, policy.UNBLINDING_DECIDE, req, f"A {other.replace('_', ' ')} other than the requester must decide."
    )
    req.status = UnblindingStatus.APPROVED if approve else UnblindingStatus.REJECTED
    req.decided_by = actor
    req.decided_at = timezone.now()
    req.decision_note = (note or "").strip()
    req.full_clean()
    with audit_context(user=actor, reason=req.decision_note or None):
        req.save()
    _notify(
        f"{req.uuid}:{req.status}",
        f"[trialsite] Emergency unblinding {req.status} for {req.participant.study_id}",
        f"{actor.get_username()} {req.status} the request {req.uuid} to unblind {req.participant.study_id}.\n",
        trial=req.participant.trial_id,
    )
    return req


@transaction.atomic
def unblinding_reveal(*, request: UnblindingRequest, actor) -> dict:
    """The arm of that one participant, to the requester of an approved request, re-checking at reveal time that
    they still hold the role they requested in (trialsite.policy). Recorded; e-mailed."""
    req = UnblindingRequest.objects.select_for_update().select_related("participant").get(pk=request.pk)
    policy.require(actor, policy.UNBLINDING_REVEAL, req)
    if req.status not in (UnblindingStatus.APPROVED, UnblindingStatus.REVEALED):
        raise WorkflowError("The request has not been approved.")
    allocation = Allocation.objects.select_related("slot__arm").get(participant=req.participant)
    req.status = UnblindingStatus.REVEALED
    req.revealed_at = req.revealed_at or timezone.now()
    with audit_context(user=actor, reason=f"emergency unblinding {req.uuid}"):
        req.save(update_fields=["status", "revealed_at"])
    # Every reveal is a disclosure and is notified, a repeated one too (one key per reveal).
    _notify(
        f"{req.uuid}:revealed:{uuid.uuid4()}",
        f"[trialsite] Emergency unblinding performed for {req.participant.study_id}",
        f"The allocation of {req.participant.study_id} was revealed to {actor.get_username()} (request {req.uuid}).\n",
        trial=req.participant.trial_id,
    )
    return {"study_id": req.participant.study_id, "arm": allocation.slot.arm.name, "arm_code": allocation.slot.arm.code}
