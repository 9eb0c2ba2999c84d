"""Withdrawal: from the intervention only, or from all further contact. Data collected so far stay."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from .. import providers
from ..models import EnrolmentCode, Participant, ParticipantStatus, Withdrawal, WithdrawalScope
from .errors import WorkflowError


@transaction.atomic
def participant_withdraw(
    *, participant: Participant, scope: str, reason: str = "", by_participant: bool, user=None, now=None
) -> Withdrawal:
    now = now or timezone.now()
    if scope not in WithdrawalScope.values:
        raise ValidationError({"scope": ["intervention or all."]})
    participant = Participant.objects.select_for_update().get(pk=participant.pk)
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
        recorded_by=user if (user is not None and not by_participant) else None,
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
