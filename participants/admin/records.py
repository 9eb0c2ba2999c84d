"""Participant admin actions for data management and lost phones: lock the data, revoke the phone's tokens.

Each goes through its service (participants.services.records), which asks trialsite.policy and audits the change.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin

from trialsite import policy


class ActionReasonForm(forms.Form):
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), help_text="recorded in the audit trail")


# Participant admin actions and the policy action each one performs (to hide what the policy refuses everywhere).
ACTION_POLICY = {
    "issue_code": policy.ENROLMENT_CODE_ISSUE,
    "randomise": policy.PARTICIPANT_RANDOMISE,
    "withdraw": policy.PARTICIPANT_WITHDRAW,
    "record_paper_consent": policy.CONSENT_RECORD,
    "revoke_tokens": policy.TOKENS_REVOKE,
    "lock_data": policy.RECORD_LOCK,
}


@admin.action(description="Revoke the phone's tokens (a lost phone)")
def revoke_tokens(modeladmin, request, queryset):
    from ..services import participant_tokens_revoke
    from .participants import intermediate

    def apply(participant, data):
        participant_tokens_revoke(participant=participant, actor=request.user, reason=data["reason"])

    return intermediate(
        modeladmin,
        request,
        queryset,
        form_class=ActionReasonForm,
        title="Revoke the phone's tokens",
        action="revoke_tokens",
        apply=apply,
    )


@admin.action(description="Lock the participant's data")
def lock_data(modeladmin, request, queryset):
    from ..services import participant_lock
    from .participants import intermediate

    def apply(participant, data):
        participant_lock(participant=participant, actor=request.user, reason=data["reason"])

    return intermediate(
        modeladmin,
        request,
        queryset,
        form_class=ActionReasonForm,
        title="Lock the participants' data",
        action="lock_data",
        apply=apply,
    )
