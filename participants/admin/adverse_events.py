"""Adverse events entered and corrected by staff (participants.services.adverse_events)."""

from __future__ import annotations

from django import forms
from django.contrib import admin

from trialsite import roles as R
from trialsite.admin_scoping import ReasonForm, ScopedAdmin, site_filter

from .. import models as m
from .. import services
from .participants import SITE

# --- adverse events ------------------------------------------------------------------------------------------


class AdverseEventForm(ReasonForm):
    """Entry of a new report, or (with a reason for the change) its correction by data management or a
    safety physician; both go through the adverse-event services, which run the safety rules."""

    class Meta:
        model = m.AdverseEvent
        fields = [
            "participant",
            "onset",
            "description",
            "severity_grade",
            "serious",
            "seriousness_criteria",
            "relatedness",
            "action_taken",
            "outcome",
        ]

    seriousness_criteria = forms.MultipleChoiceField(
        choices=[(c, c.replace("_", " ")) for c in m.SERIOUSNESS_CRITERIA],
        required=False,
        widget=forms.CheckboxSelectMultiple,
    )


@admin.register(m.AdverseEvent)
class AdverseEventAdmin(ScopedAdmin):
    """Adverse events entered by staff; a serious one raises a safety alert at once (service)."""

    site_field = SITE
    add_roles = (R.SAFETY_PHYSICIAN, R.COORDINATOR, R.TRIAL_MANAGER)
    change_roles = (R.SAFETY_PHYSICIAN, R.DATA_MANAGER)
    form = AdverseEventForm
    list_display = ["participant", "onset", "severity_grade", "serious", "relatedness", "outcome", "reported_at"]
    list_filter = [site_filter(SITE), "serious", "relatedness", "outcome"]
    list_select_related = ["participant"]
    search_fields = ["participant__study_id"]

    def is_locked(self, obj) -> bool:
        return obj is not None and obj.participant.locked

    def get_fields(self, request, obj=None):
        fields = [f for f in super().get_fields(request, obj) if f != "change_reason"]
        if obj is not None and self.has_change_permission(request, obj):
            fields.append("change_reason")
        return fields

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        if self.has_change_permission(request, obj):
            return ["participant"]
        return [f.name for f in self.model._meta.fields]

    def save_model(self, request, obj, form, change):
        from ..services.adverse_events import CORRECTABLE_FIELDS

        if change:
            # Corrections re-run the safety rules (correcting an event to serious raises the alert).
            services.adverse_event_correct(
                event=obj,
                actor=request.user,
                reason=form.cleaned_data.get("change_reason") or "",
                **{k: v for k, v in form.cleaned_data.items() if k in CORRECTABLE_FIELDS},
            )
            return
        data = {k: v for k, v in form.cleaned_data.items() if k in CORRECTABLE_FIELDS}
        participant = form.cleaned_data["participant"]
        created = services.adverse_event_create(participant=participant, actor=request.user, **data)
        obj.pk = created.pk

    def save_related(self, request, form, formsets, change):
        return None
