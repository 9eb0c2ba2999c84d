"""Emergency unblinding: request, approve or reject, reveal (participants.services.unblinding)."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError

from trialsite import policy
from trialsite import roles as R
from trialsite.admin_scoping import ScopedAdmin

from .. import models as m
from .. import services
from ..services.errors import WorkflowError
from .participants import SITE, NoteForm, error_text, intermediate

# --- emergency unblinding -----------------------------------------------------------------------------------


class UnblindRequestForm(forms.ModelForm):
    """`clean` files the request through the service, so a refusal (reason too short, participant not
    randomised, no requesting role) is a form error rather than a 500 from save_model."""

    class Meta:
        model = m.UnblindingRequest
        fields = ["participant", "reason"]

    request = None  # set by the admin's get_form
    recorded = None

    def clean(self):
        data = super().clean()
        if self.errors or self.request is None or "participant" not in data:
            return data
        try:
            self.recorded = services.unblinding_request(
                participant=data["participant"], actor=self.request.user, reason=data.get("reason", "")
            )
        except (ValidationError, PermissionDenied, WorkflowError) as exc:
            raise ValidationError(error_text(exc)) from exc
        return data


@admin.register(m.UnblindingRequest)
class UnblindingRequestAdmin(ScopedAdmin):
    """Request (safety physician or trial manager, with a reason), approve or reject (the other role), then
    the requester reveals the arm of that one participant; every step audited and notified (services)."""

    site_field = SITE
    view_roles = (R.SAFETY_PHYSICIAN, R.TRIAL_MANAGER, R.MONITOR, R.UNBLINDED_STATISTICIAN)
    add_roles = (R.SAFETY_PHYSICIAN, R.TRIAL_MANAGER)
    form = UnblindRequestForm
    list_display = ["participant", "status", "requested_by", "requester_role", "requested_at", "decided_by"]
    list_filter = ["status"]
    list_select_related = ["participant", "requested_by", "decided_by"]
    actions = ["approve", "reject"]
    change_form_template = "admin/participants/unblindingrequest/change_form.html"

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        return [f.name for f in self.model._meta.fields]

    def get_actions(self, request):
        actions = super().get_actions(request)
        if not policy.may_ever(request.user, policy.UNBLINDING_DECIDE):
            actions.pop("approve", None)
            actions.pop("reject", None)
        return actions

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        return type(form.__name__, (form,), {"request": request})

    def save_model(self, request, obj, form, change):
        obj.pk = form.recorded.pk  # filed by the service in form.clean (same transaction)

    def save_related(self, request, form, formsets, change):
        return None

    @admin.action(description="Approve")
    def approve(self, request, queryset):
        return self._decide(request, queryset, approve=True)

    @admin.action(description="Reject")
    def reject(self, request, queryset):
        return self._decide(request, queryset, approve=False)

    def _decide(self, request, queryset, *, approve: bool):
        def apply(req, data):
            services.unblinding_decide(request=req, actor=request.user, approve=approve, note=data["note"])

        return intermediate(
            self,
            request,
            queryset,
            form_class=NoteForm,
            title="Approve unblinding" if approve else "Reject unblinding",
            action="approve" if approve else "reject",
            apply=apply,
        )

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = extra_context or {}
        obj = self.get_object(request, object_id)
        if obj is not None and request.method == "POST" and "_reveal" in request.POST:
            try:
                extra_context["revealed"] = services.unblinding_reveal(request=obj, actor=request.user)
            except (ValidationError, PermissionDenied, WorkflowError) as exc:
                self.message_user(request, error_text(exc), messages.ERROR)
            request.method = "GET"
        extra_context["can_reveal"] = (
            obj is not None
            and obj.status == m.UnblindingStatus.APPROVED
            and policy.can(request.user, policy.UNBLINDING_REVEAL, obj)
        )
        return super().change_view(request, object_id, form_url, extra_context)
