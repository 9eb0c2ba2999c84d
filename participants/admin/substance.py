"""What a participant's active units contain, when participants bring their own (self-blinding trials):
participants.services.substance. Not arm-bearing (a placebo unit is empty whatever the substance)."""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied, ValidationError

from trialsite import roles as R
from trialsite.admin_scoping import CLINICAL_WRITE_ROLES, ScopedAdmin, site_filter

from .. import models as m
from ..services.errors import WorkflowError
from ..services.substance import participant_substance_record
from .participants import SITE, error_text


class SubstanceRecordForm(forms.ModelForm):
    """`clean` records through the service, so a refusal (a site-dispensed trial, a bad amount) is a form error."""

    class Meta:
        model = m.SubstanceRecord
        fields = ["participant", "name", "amount_per_unit", "unit"]

    request = None  # set by the admin's get_form

    def validate_unique(self):
        """The service records (or corrects) the one row per participant in `clean`; nothing to check here."""

    def clean(self):
        data = super().clean()
        if self.errors or self.request is None:
            return data
        try:
            self.recorded = participant_substance_record(
                participant=data.get("participant") or self.instance.participant,
                name=data["name"],
                amount_per_unit=data["amount_per_unit"],
                unit=data["unit"],
                user=self.request.user,
            )
        except (ValidationError, PermissionDenied, WorkflowError) as exc:
            raise ValidationError(error_text(exc)) from exc
        return data


@admin.register(m.SubstanceRecord)
class SubstanceRecordAdmin(ScopedAdmin):
    """Coordinators record (and correct) the substance and amount per active unit a participant brings."""

    site_field = SITE
    add_roles = CLINICAL_WRITE_ROLES
    change_roles = CLINICAL_WRITE_ROLES
    form = SubstanceRecordForm
    list_display = ["participant", "name", "amount_per_unit", "unit", "recorded_at", "recorded_by"]
    list_filter = [site_filter(SITE), "unit"]
    list_select_related = ["participant", "recorded_by"]
    search_fields = ["participant__study_id", "name"]

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        return type(form.__name__, (form,), {"request": request})

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "participant":
            kwargs["queryset"] = R.filter_by_site(
                m.Participant.objects.order_by("study_id"), request.user, "site", roles=CLINICAL_WRITE_ROLES
            )
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def get_readonly_fields(self, request, obj=None):
        return ["participant"] if obj is not None else []

    def save_model(self, request, obj, form, change):
        obj.pk = form.recorded.pk  # recorded by the service in form.clean (same transaction)

    def save_related(self, request, form, formsets, change):
        return None
