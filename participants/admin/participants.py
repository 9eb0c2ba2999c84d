"""Staff admin of participants: registration with the enrolment code (QR), consent, the safety queue,
adverse events, emergency unblinding and (for the unblinded statistician only) the allocation tables.

The participant dashboard's survey-derived columns (adherence, last answer, next due, missed in a row)
and the survey sections of the change page are added by surveys/admin.py, which subclasses
ParticipantAdmin: participants never imports surveys (dependency direction).
Every write goes through participants.services.
"""

from __future__ import annotations

import segno
from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count, OuterRef, Subquery, Value
from django.db.models.functions import Coalesce
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import mark_safe

from trialsite import roles as R
from trialsite.admin_scoping import (
    CLINICAL_WRITE_ROLES,
    SAFETY_ROLES,
    STAFF_ROLES,
    ReadOnlyInline,
    ReasonForm,
    ScopedAdmin,
    has_any_role,
    site_filter,
)
from trialsite.models import Site, Trial
from trialsite.protocol.services import protocol_current

from .. import models as m
from ..enrolment_link import enrolment_qr_svg
from ..services.errors import WorkflowError

SITE = "participant__site"


def service(name: str):
    """A participants service by name; a clear message (not a 500) when it is not installed."""
    from .. import services

    fn = getattr(services, name, None)
    if fn is None:
        import importlib

        for module in (
            "registration",
            "safety",
            "randomisation",
            "withdrawal",
            "consent",
            "adverse_events",
            "unblinding",
        ):
            try:
                fn = getattr(importlib.import_module(f"participants.services.{module}"), name, None)
            except ImportError:
                fn = None
            if fn is not None:
                break
    if fn is None:
        raise ValidationError(f"The operation {name} is not available yet.")
    return fn


def error_text(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(exc.messages)
    return str(exc)


def qr_svg(text: str) -> str:
    return segno.make(text, error="m").svg_inline(scale=6)


# --- forms ---------------------------------------------------------------------------------------------------


class RegisterForm(forms.Form):
    trial = forms.ModelChoiceField(queryset=Trial.objects.none())
    site = forms.ModelChoiceField(queryset=Site.objects.none())
    timezone = forms.CharField(max_length=64, help_text="the participant's IANA zone, e.g. Europe/London")
    name = forms.CharField(required=False, max_length=255)
    email = forms.EmailField(required=False)
    phone = forms.CharField(required=False, max_length=32)

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        sites = R.filter_by_site(Site.objects.order_by("code"), user, "pk", roles=CLINICAL_WRITE_ROLES)
        if user.is_superuser:
            sites = Site.objects.order_by("code")
        self.fields["site"].queryset = sites
        self.fields["trial"].queryset = (
            Trial.objects.filter(sites__in=sites, protocol_versions__isnull=False).distinct().order_by("slug")
        )
        trials = list(self.fields["trial"].queryset)
        if len(trials) == 1:
            self.fields["trial"].initial = trials[0].pk
        if len(sites) == 1:
            self.fields["site"].initial = sites[0].pk
            self.fields["timezone"].initial = sites[0].timezone
        self.criteria = []
        for trial in trials[:1]:
            for criterion in protocol_current(trial).eligibility:
                name = f"elig_{criterion.key}"
                self.fields[name] = forms.BooleanField(required=False, label=criterion.text)
                self.criteria.append((criterion.key, name))

    def eligibility(self) -> dict:
        return {key: bool(self.cleaned_data.get(name)) for key, name in self.criteria}


class ContactPurposeForm(forms.Form):
    purpose = forms.CharField(max_length=255, help_text="why you need them (recorded), e.g. safety follow-up call")


class WithdrawForm(forms.Form):
    scope = forms.ChoiceField(choices=m.WithdrawalScope.choices)
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}))


class PaperConsentForm(forms.Form):
    document = forms.ModelChoiceField(queryset=m.ConsentDocument.objects.order_by("-valid_from"))
    signed_on = forms.DateTimeField(help_text="when the paper form was signed (YYYY-MM-DD HH:MM, UTC)")
    paper_reference = forms.CharField(max_length=255, help_text="where the scanned copy is filed")


class NoteForm(forms.Form):
    note = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), label="what was done")


def intermediate(modeladmin, request, queryset, *, form_class, title, action, apply, form_kwargs=None):
    """Render a form for an action on the selected rows; on a valid POST call `apply(obj, data)` per row."""
    form_kwargs = form_kwargs or {}
    if "confirm" in request.POST:
        form = form_class(request.POST, **form_kwargs)
        if form.is_valid():
            done = 0
            for obj in queryset:
                try:
                    apply(obj, form.cleaned_data)
                    done += 1
                except (ValidationError, PermissionDenied, WorkflowError, ValueError) as exc:
                    modeladmin.message_user(request, f"{obj}: {error_text(exc)}", messages.ERROR)
            if done:
                modeladmin.message_user(request, f"{title}: {done} done.", messages.SUCCESS)
            return None
    else:
        form = form_class(**form_kwargs)
    context = {
        **modeladmin.admin_site.each_context(request),
        "title": title,
        "form": form,
        "objects": queryset,
        "action": action,
        "opts": modeladmin.model._meta,
        "selected": request.POST.getlist(admin.helpers.ACTION_CHECKBOX_NAME),
    }
    return TemplateResponse(request, "admin/participants/action_form.html", context)


# --- participants --------------------------------------------------------------------------------------------


class ConsentInline(ReadOnlyInline):
    model = m.ConsentSignature
    site_field = SITE
    fields = ["document", "method", "signed_at", "typed_name", "paper_reference", "recorded_by"]
    verbose_name_plural = "consent history"

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("document", "recorded_by", "document__trial")


class AlertInline(ReadOnlyInline):
    model = m.SafetyAlert
    site_field = SITE
    fields = ["title", "status", "raised_at", "due_at", "escalated_at", "acknowledged_at", "acknowledgement_note"]
    verbose_name_plural = "safety alerts"


class WithdrawalInline(ReadOnlyInline):
    model = m.Withdrawal
    site_field = SITE
    fields = ["scope", "reason", "withdrawn_at", "by_participant", "recorded_by"]


class AdverseEventInline(ReadOnlyInline):
    model = m.AdverseEvent
    site_field = SITE
    fields = ["onset", "description", "severity_grade", "serious", "relatedness", "outcome", "reported_at"]


class OpenAlertsFilter(admin.SimpleListFilter):
    title = "open safety alerts"
    parameter_name = "alerts"

    def lookups(self, request, model_admin):
        return [("open", "with open alerts"), ("none", "none open")]

    def queryset(self, request, queryset):
        if self.value() == "open":
            return queryset.filter(open_alerts__gt=0)
        if self.value() == "none":
            return queryset.filter(open_alerts=0)
        return queryset


@admin.register(m.Participant)
class ParticipantAdmin(ScopedAdmin):
    site_field = "site"
    add_roles = CLINICAL_WRITE_ROLES
    change_roles = ()  # changes go through actions (services), never raw edits
    list_display = ["study_id", "site", "status", "study_day_now", "open_alerts_col"]
    list_filter = [site_filter("site"), "status", OpenAlertsFilter]
    list_select_related = ["site"]
    search_fields = ["study_id"]
    ordering = ["study_id"]
    change_form_template = "admin/participants/participant/change_form.html"
    readonly_fields = [
        "study_id",
        "trial",
        "site",
        "status",
        "study_day_now",
        "timezone",
        "eligibility",
        "eligible",
        "registered_at",
        "enrolled_at",
        "randomised_at",
        "day0",
        "withdrawn_at",
        "withdrawal_scope",
        "locked",
    ]
    fieldsets = [
        (None, {"fields": ["study_id", "trial", "site", "status", "study_day_now", "timezone", "locked"]}),
        ("Screening", {"fields": ["eligibility", "eligible", "registered_at"]}),
        ("Progress", {"fields": ["enrolled_at", "randomised_at", "day0", "withdrawn_at", "withdrawal_scope"]}),
    ]
    inlines = [ConsentInline, AlertInline, AdverseEventInline, WithdrawalInline]
    actions = ["issue_code", "randomise", "withdraw", "record_paper_consent"]

    def get_queryset(self, request):
        open_alerts = (
            m.SafetyAlert.objects.filter(
                participant=OuterRef("pk"), status__in=[m.AlertStatus.OPEN, m.AlertStatus.ESCALATED]
            )
            .order_by()
            .values("participant")
            .annotate(n=Count("pk"))
            .values("n")[:1]
        )
        return super().get_queryset(request).annotate(open_alerts=Coalesce(Subquery(open_alerts), Value(0)))

    @admin.display(description="study day")
    def study_day_now(self, obj):
        day = obj.study_day()
        return "—" if day is None else day

    @admin.display(description="open alerts", ordering="open_alerts")
    def open_alerts_col(self, obj):
        count = getattr(obj, "open_alerts", 0)
        return format_html('<strong style="color:#ba2121">{}</strong>', count) if count else "0"

    def get_actions(self, request):
        actions = super().get_actions(request)
        if not has_any_role(request.user, CLINICAL_WRITE_ROLES):
            for name in ["issue_code", "randomise", "withdraw", "record_paper_consent"]:
                actions.pop(name, None)
        return actions

    # --- registration and the enrolment code ------------------------------------------------------------------
    def get_urls(self):
        info = self.opts.app_label, self.opts.model_name
        return [
            path(
                "<int:pk>/enrolment-code/", self.admin_site.admin_view(self.code_view), name=f"{info[0]}_{info[1]}_code"
            ),
            path(
                "<int:pk>/contact/", self.admin_site.admin_view(self.contact_view), name=f"{info[0]}_{info[1]}_contact"
            ),
        ] + super().get_urls()

    def add_view(self, request, form_url="", extra_context=None):
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = RegisterForm(request.POST or None, user=request.user)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            if not request.user.is_superuser and not R.can_reach_site(
                request.user, data["site"].pk, roles=CLINICAL_WRITE_ROLES
            ):
                raise PermissionDenied
            try:
                participant, code = service("participant_register")(
                    trial=data["trial"],
                    site=data["site"],
                    tz=data["timezone"],
                    eligibility=form.eligibility(),
                    contact={"name": data["name"], "email": data["email"], "phone": data["phone"]},
                    user=request.user,
                )
            except ValidationError as exc:
                for field, errors in getattr(exc, "message_dict", {"__all__": exc.messages}).items():
                    target = field if field in form.fields else None
                    for error in errors:
                        form.add_error(target, error)
            else:
                if code is None:
                    self.message_user(request, f"{participant.study_id}: screen failure recorded.", messages.WARNING)
                    return HttpResponseRedirect(reverse("admin:participants_participant_change", args=[participant.pk]))
                self.message_user(request, f"{participant.study_id} registered.", messages.SUCCESS)
                return HttpResponseRedirect(reverse("admin:participants_participant_code", args=[participant.pk]))
        context = {
            **self.admin_site.each_context(request),
            "title": "Register a participant",
            "form": form,
            "opts": self.opts,
        }
        return TemplateResponse(request, "admin/participants/participant/register.html", context)

    def code_view(self, request, pk: int):
        participant = get_object_or_404(self.get_queryset(request), pk=pk)
        if not self.has_view_permission(request, participant):
            raise PermissionDenied
        code = None
        if request.method == "POST":
            if not has_any_role(request.user, CLINICAL_WRITE_ROLES):
                raise PermissionDenied
            try:
                code = service("enrolment_code_issue")(participant=participant, user=request.user)
            except Exception as exc:  # noqa: BLE001 - WorkflowError/ValidationError: shown to the user
                self.message_user(request, error_text(exc), messages.ERROR)
        if code is None:
            code = service("enrolment_code_live")(participant=participant)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Enrolment code for {participant.study_id}",
            "participant": participant,
            "code": code,
            "qr": mark_safe(enrolment_qr_svg(code)) if code else "",  # noqa: S308 - SVG generated by segno
            "opts": self.opts,
            "can_issue": has_any_role(request.user, CLINICAL_WRITE_ROLES)
            and participant.status == m.ParticipantStatus.REGISTERED,
        }
        return TemplateResponse(request, "admin/participants/participant/code.html", context)

    def contact_view(self, request, pk: int):
        """Contact details (PII): only for the site's coordinators and safety physicians, with a purpose that is
        recorded (participants.services.contact_view)."""
        participant = get_object_or_404(self.get_queryset(request), pk=pk)
        form = ContactPurposeForm(request.POST or None)
        details = None
        if request.method == "POST" and form.is_valid():
            try:
                details = service("contact_view")(
                    participant=participant, user=request.user, purpose=form.cleaned_data["purpose"]
                )
            except ValidationError as exc:
                form.add_error("purpose", error_text(exc))
        context = {
            **self.admin_site.each_context(request),
            "title": f"Contact details of {participant.study_id}",
            "participant": participant,
            "form": form,
            "details": details,
            "opts": self.opts,
        }
        return TemplateResponse(request, "admin/participants/participant/contact.html", context)

    # --- actions (each calls one service) ----------------------------------------------------------------------
    @admin.action(description="Issue / re-issue enrolment code")
    def issue_code(self, request, queryset):
        issued = []
        for participant in queryset:
            try:
                service("enrolment_code_issue")(participant=participant, user=request.user)
                issued.append(participant)
            except Exception as exc:  # noqa: BLE001 - WorkflowError/ValidationError: shown to the user
                self.message_user(request, f"{participant}: {error_text(exc)}", messages.ERROR)
        if len(issued) == 1:
            return HttpResponseRedirect(reverse("admin:participants_participant_code", args=[issued[0].pk]))
        if issued:
            self.message_user(request, f"{len(issued)} codes issued.", messages.SUCCESS)
        return None

    @admin.action(description="Randomise")
    def randomise(self, request, queryset):
        fn = None
        for participant in queryset:
            try:
                fn = fn or service("participant_randomise")
                fn(participant=participant, user=request.user)
                self.message_user(request, f"{participant}: randomised.", messages.SUCCESS)
            except Exception as exc:  # noqa: BLE001 - workflow refusals are shown, not raised
                self.message_user(request, f"{participant}: {error_text(exc)}", messages.ERROR)

    @admin.action(description="Withdraw (scope and reason)")
    def withdraw(self, request, queryset):
        def apply(participant, data):
            service("participant_withdraw")(
                participant=participant,
                scope=data["scope"],
                reason=data["reason"],
                by_participant=False,
                user=request.user,
            )

        return intermediate(
            self,
            request,
            queryset,
            form_class=WithdrawForm,
            title="Withdraw participants",
            action="withdraw",
            apply=apply,
        )

    @admin.action(description="Record paper consent")
    def record_paper_consent(self, request, queryset):
        def apply(participant, data):
            service("consent_record_paper")(
                participant=participant,
                version=data["document"].version,
                signed_at=data["signed_on"],
                paper_reference=data["paper_reference"],
                user=request.user,
            )

        return intermediate(
            self,
            request,
            queryset,
            form_class=PaperConsentForm,
            title="Record paper consent",
            action="record_paper_consent",
            apply=apply,
        )


@admin.register(m.ConsentDocument)
class ConsentDocumentAdmin(ScopedAdmin):
    list_display = ["trial", "version", "title", "valid_from", "valid_to", "requires_reconsent"]
    list_select_related = ["trial"]
    list_filter = ["trial", "requires_reconsent"]

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]


@admin.register(m.ConsentSignature)
class ConsentSignatureAdmin(ScopedAdmin):
    site_field = SITE
    list_display = ["participant", "document", "method", "signed_at", "recorded_by"]
    list_select_related = ["participant", "document", "document__trial", "recorded_by"]
    list_filter = [site_filter(SITE), "method"]
    search_fields = ["participant__study_id"]

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]


# --- the safety queue ----------------------------------------------------------------------------------------


class AlertStateFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return [("open", "needs acknowledgement"), ("overdue", "overdue"), ("done", "acknowledged"), ("all", "all")]

    def choices(self, changelist):
        value = self.value() or "open"
        for lookup, title in self.lookup_choices:
            yield {
                "selected": value == lookup,
                "query_string": changelist.get_query_string({self.parameter_name: lookup}),
                "display": title,
            }

    def queryset(self, request, queryset):
        value = self.value() or "open"
        waiting = [m.AlertStatus.OPEN, m.AlertStatus.ESCALATED]
        if value == "open":
            return queryset.filter(status__in=waiting)
        if value == "overdue":
            return queryset.filter(status__in=waiting, due_at__lt=timezone.now())
        if value == "done":
            return queryset.filter(status=m.AlertStatus.ACKNOWLEDGED)
        return queryset


@admin.register(m.SafetyAlert)
class SafetyAlertAdmin(ScopedAdmin):
    """The safety queue: open alerts by deadline; acknowledge with a note; escalations stand out."""

    site_field = SITE
    list_display = ["participant", "site_code", "title", "severity", "status", "raised_at", "due_col", "escalated_at"]
    list_filter = [AlertStateFilter, site_filter(SITE), "rule", "severity"]
    list_select_related = ["participant", "participant__site"]
    ordering = ["due_at"]
    search_fields = ["participant__study_id", "title"]
    actions = ["acknowledge"]

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]

    @admin.display(description="site")
    def site_code(self, obj):
        return obj.participant.site.code

    @admin.display(description="due", ordering="due_at")
    def due_col(self, obj):
        overdue = obj.status != m.AlertStatus.ACKNOWLEDGED and obj.due_at < timezone.now()
        text = obj.due_at.strftime("%Y-%m-%d %H:%M UTC")
        return format_html('<strong style="color:#ba2121">{} (overdue)</strong>', text) if overdue else text

    def get_actions(self, request):
        actions = super().get_actions(request)
        if not has_any_role(request.user, SAFETY_ROLES):
            actions.pop("acknowledge", None)
        return actions

    @admin.action(description="Acknowledge with a note")
    def acknowledge(self, request, queryset):
        from ..services import safety_alert_acknowledge

        def apply(alert, data):
            safety_alert_acknowledge(alert=alert, user=request.user, note=data["note"])

        return intermediate(
            self,
            request,
            queryset,
            form_class=NoteForm,
            title="Acknowledge safety alerts",
            action="acknowledge",
            apply=apply,
        )


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
            service("adverse_event_correct")(
                event=obj,
                user=request.user,
                reason=form.cleaned_data.get("change_reason") or "",
                **{k: v for k, v in form.cleaned_data.items() if k in CORRECTABLE_FIELDS},
            )
            return
        data = {k: v for k, v in form.cleaned_data.items() if k in CORRECTABLE_FIELDS}
        participant = form.cleaned_data["participant"]
        if not R.can_reach_site(request.user, participant.site_id) and not request.user.is_superuser:
            raise PermissionDenied
        created = service("adverse_event_create")(participant=participant, user=request.user, **data)
        obj.pk = created.pk

    def save_related(self, request, form, formsets, change):
        return None


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
            self.recorded = service("unblinding_request")(
                participant=data["participant"], user=self.request.user, reason=data.get("reason", "")
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
        if not has_any_role(request.user, (R.SAFETY_PHYSICIAN, R.TRIAL_MANAGER)):
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
            service("unblinding_decide")(request=req, user=request.user, approve=approve, note=data["note"])

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
                extra_context["revealed"] = service("unblinding_reveal")(request=obj, user=request.user)
            except (ValidationError, PermissionDenied, WorkflowError) as exc:
                self.message_user(request, error_text(exc), messages.ERROR)
            request.method = "GET"
        extra_context["can_reveal"] = (
            obj is not None and obj.requested_by_id == request.user.pk and obj.status == m.UnblindingStatus.APPROVED
        )
        return super().change_view(request, object_id, form_url, extra_context)


# --- withdrawals and (unblinded only) the allocation -----------------------------------------------------------


@admin.register(m.Withdrawal)
class WithdrawalAdmin(ScopedAdmin):
    site_field = SITE
    list_display = ["participant", "scope", "withdrawn_at", "by_participant", "recorded_by"]
    list_filter = [site_filter(SITE), "scope", "by_participant"]
    list_select_related = ["participant", "recorded_by"]

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]


class UnblindedOnlyAdmin(ScopedAdmin):
    """Arm-bearing tables: visible to the unblinded statistician only, read-only."""

    view_roles = (R.UNBLINDED_STATISTICIAN,)

    def has_view_permission(self, request, obj=None):
        return R.is_unblinded(request.user)

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]


@admin.register(m.Arm)
class ArmAdmin(UnblindedOnlyAdmin):
    arm_bearing = True
    list_display = ["trial", "code", "name", "ratio"]


@admin.register(m.AllocationList)
class AllocationListAdmin(UnblindedOnlyAdmin):
    list_display = ["trial", "source", "sha256", "created_at"]


@admin.register(m.AllocationSlot)
class AllocationSlotAdmin(UnblindedOnlyAdmin):
    list_display = ["allocation_list", "stratum", "sequence", "block_number", "block_size", "arm", "taken"]
    list_select_related = ["allocation_list", "arm"]
    list_filter = ["stratum", "taken"]


@admin.register(m.Allocation)
class AllocationAdmin(UnblindedOnlyAdmin):
    site_field = SITE
    list_display = ["participant", "slot", "allocated_at"]
    list_select_related = ["participant", "slot"]


@admin.register(m.DoseUnit)
class DoseUnitAdmin(UnblindedOnlyAdmin):
    list_display = ["code", "number", "slot"]
    list_select_related = ["slot"]
    search_fields = ["code"]


__all__ = ["ParticipantAdmin", "STAFF_ROLES", "qr_svg"]


@admin.register(m.ContactAccess)
class ContactAccessAdmin(ScopedAdmin):
    """Who viewed which participant's contact details, and why (append-only)."""

    site_field = SITE
    view_roles = (R.TRIAL_MANAGER, R.MONITOR, R.DATA_MANAGER)
    list_display = ["accessed_at", "participant", "user", "purpose"]
    list_select_related = ["participant", "user"]
    list_filter = [site_filter(SITE)]
    search_fields = ["participant__study_id", "user__username"]

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]


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
            self.recorded = service("staff_blinding_guess_record")(
                participant=data["participant"],
                user=self.request.user,
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
