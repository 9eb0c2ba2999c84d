"""Withdrawal: from the intervention only, or from all further contact. Data collected so far stay."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from trialsite import policy

from .. import providers
from ..models import EnrolmentCode, Participant, ParticipantStatus, Withdrawal, WithdrawalScope
from .errors import WorkflowError


@transaction.atomic
def participant_withdraw(
    *, participant: Participant, scope: str, reason: str = "", by_participant: bool, actor, now=None
) -> Withdrawal:
    """Withdraw: `by_participant` when the participant asks (the actor is their own account), else staff of the
    participant's site or trial (trialsite.policy). Allowed on locked data: withdrawing changes no collected
    answer, it stops further contact, and a participant may always stop."""
    now = now or timezone.now()
    if scope not in WithdrawalScope.values:
        raise ValidationError({"scope": ["intervention or all."]})
    participant = Participant.objects.select_for_update().get(pk=participant.pk)
    if by_participant:
        if actor is None or participant.user_id is None or getattr(actor, "pk", None) != participant.user_id:
            raise PermissionDenied("Only the participant withdraws themselves.")
    else:
        policy.require(actor, policy.PARTICIPANT_WITHDRAW, participant)
    if participant.status == ParticipantStatus.SCREEN_FAILED:
        raise WorkflowError(f"{participant.study_id} failed screening and is not in the trial.")
    current = participant.withdrawal_scope if participant.status == ParticipantStatus.WITHDRAWN else ""
    if current == WithdrawalScope.ALL or current == scope:
        raise WorkflowError(f"{participant.study_id} has already withdrawn ({current}).")
    withdrawal = Withdrawal(
        participant=participant,
        scope=scope,
        reason=(reason or "").strip(),
        withdrawn_at=now,
        study_day=participant.study_day(now),
        by_participant=by_participant,
        recorded_by=None if by_participant else actor,
    )
    withdrawal.full_clean()
    withdrawal.save()
    participant.status = ParticipantStatus.WITHDRAWN
    participant.withdrawal_scope = scope
    participant.withdrawn_at = now
    participant.save(update_fields=["status", "withdrawal_scope", "withdrawn_at"])
    if scope == WithdrawalScope.ALL:
        EnrolmentCode.objects.filter(participant=participant, used_at__isnull=True, revoked_at__isnull=True).update(
            revoked_at=now, code_encrypted=""
        )
    providers.schedule_provider().on_withdrawn(participant=participant, scope=scope)
    return withdrawal
