"""Coordinators' blinding guesses (participants.services.blinding_guesses)."""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied, ValidationError

from trialsite import roles as R
from trialsite.admin_scoping import CLINICAL_WRITE_ROLES, ScopedAdmin, site_filter
from trialsite.models import Trial
from trialsite.protocol.services import protocol_current

from .. import models as m
from .. import services
from ..services.errors import WorkflowError
from .participants import SITE, error_text

# --- coordinators' blinding guesses -------------------------------------------------------------------------


class StaffBlindingGuessForm(forms.ModelForm):
    """Participant, time point, guess and confidence; `clean` records the guess through the service, so a
    refusal (another site, not randomised, not reached yet, a different earlier guess) is a form error."""

    time_point = forms.ChoiceField(choices=())

    class Meta:
        model = m.StaffBlindingGuess
        fields = ["participant", "time_point", "guess", "confidence"]
        widgets = {"guess": forms.RadioSelect}

    request = None  # set by the admin's get_form

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        from ..services.blinding_guesses import blinding_time_points

        self.recorded = None
        if "time_point" not in self.fields:
            return  # the change page: every field is read-only
        points: list[str] = []
        for trial in Trial.objects.filter(participants__randomised_at__isnull=False).distinct().order_by("slug"):
            points += [p for p in blinding_time_points(protocol_current(trial)) if p not in points]
        self.fields["time_point"].choices = [(p, p.replace("_", " ")) for p in points]
        self.fields["confidence"].help_text = "0 (pure guess) to 100 (certain)"

    def clean(self):
        data = super().clean()
        if self.errors or self.request is None:
            return data
        try:
            self.recorded = services.staff_blinding_guess_record(
                participant=data["participant"],
                actor=self.request.user,
                time_point=data["time_point"],
                guess=data["guess"],
                confidence=data["confidence"],
            )
        except (ValidationError, PermissionDenied, WorkflowError) as exc:
            raise ValidationError(error_text(exc)) from exc
        return data


@admin.register(m.StaffBlindingGuess)
class StaffBlindingGuessAdmin(ScopedAdmin):
    """Coordinators (of the participant's site) and trial managers record their guess of a randomised
    participant's arm at the protocol's blinding-guess time points. A guess, never the arm; append-only."""

    site_field = SITE
    add_roles = CLINICAL_WRITE_ROLES
    change_roles = ()  # recorded once; a different guess is refused by the service
    form = StaffBlindingGuessForm
    list_display = ["participant", "time_point", "guess", "confidence", "rater", "recorded_at"]
    list_filter = [site_filter(SITE), "time_point", "guess"]
    list_select_related = ["participant", "rater"]
    search_fields = ["participant__study_id"]

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        return type(form.__name__, (form,), {"request": request})

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "participant":
            # Only randomised participants of the sites the user records guesses for.
            kwargs["queryset"] = R.filter_by_site(
                m.Participant.objects.filter(randomised_at__isnull=False).order_by("study_id"),
                request.user,
                "site",
                roles=CLINICAL_WRITE_ROLES,
            )
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        return [f.name for f in self.model._meta.fields]

    def save_model(self, request, obj, form, change):
        obj.pk = form.recorded.pk  # recorded by the service in form.clean (same transaction)
        obj.rater = form.recorded.rater

    def save_related(self, request, form, formsets, change):
        return None
