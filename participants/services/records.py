"""Record locks and token revocation, both asked of trialsite.policy and audited (the participant is tracked)."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from trialsite import policy
from trialsite.audit import audit_context, require_reason
from trialsite.models import ApiToken

from ..models import Participant


@transaction.atomic
def participant_lock(*, participant: Participant, actor, reason: str) -> Participant:
    """Data management locks a participant's data: no path (admin, staff API, phone API, /sync, FHIR) changes
    them afterwards (trialsite.policy.require_unlocked). Idempotent; the reason lands in the audit trail."""
    reason = require_reason(reason)
    participant = Participant.objects.select_for_update().get(pk=participant.pk)
    policy.require(actor, policy.RECORD_LOCK, participant)
    if not participant.locked:
        with audit_context(user=actor, reason=reason):
            participant.locked = True
            participant.save(update_fields=["locked"])
    return participant


@transaction.atomic
def participant_tokens_revoke(*, participant: Participant, actor, reason: str, now=None) -> int:
    """Revoke every live token of the participant's phone(s) (a lost or stolen phone). The phone's next request
    is answered 401; the revocation (who, when, why) is in the participant's audit trail. Returns the count."""
    reason = require_reason(reason)
    now = now or timezone.now()
    participant = Participant.objects.select_for_update().get(pk=participant.pk)
    policy.require(actor, policy.TOKENS_REVOKE, participant)
    count = 0
    if participant.user_id is not None:
        count = ApiToken.objects.filter(
            user_id=participant.user_id, kind=ApiToken.PARTICIPANT, revoked_at__isnull=True
        ).update(revoked_at=now)
    with audit_context(user=actor, reason=reason, tokens_revoked=count):
        participant.tokens_revoked_at = now
        participant.save(update_fields=["tokens_revoked_at"])
    return count
