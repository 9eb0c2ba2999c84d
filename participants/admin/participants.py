"""Staff admin of participants: registration with the enrolment code (QR), the participant list and change
page, consent, and the helpers the other areas share (service lookup, error text, intermediate action forms).

The other areas live beside this module (safety, adverse_events, unblinding, allocation, contact_access,
blinding_guesses); the package's __init__ imports them all so that every ModelAdmin is registered.
The participant dashboard's survey-derived columns (adherence, last answer, next due, missed in a row)
and the survey sections of the change page are added by surveys through participants.dashboard (a registry
surveys fills in its AppConfig.ready()): participants never imports surveys (dependency direction).
Every write goes through participants.services.
"""

from __future__ import annotations

import segno
from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Case, CharField, Count, OuterRef, Subquery, Value, When
from django.db.models.functions import Coalesce
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from trialsite import admin_actions, policy
from trialsite import roles as R
from trialsite.admin_actions import error_text
from trialsite.admin_scoping import CLINICAL_WRITE_ROLES, ReadOnlyInline, ScopedAdmin, arms_of, site_filter
from trialsite.models import Site, Trial
from trialsite.protocol.services import protocol_current

from .. import models as m
from .. import services
from ..dashboard import dashboard_extensions
from ..enrolment_link import enrolment_qr_svg
from ..services.errors import WorkflowError
from .kits import KitAdminMixin
from .records import ACTION_POLICY, lock_data, revoke_tokens

SITE = "participant__site"


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
        trials = Trial.objects.filter(sites__in=sites, protocol_versions__isnull=False)
        if not user.is_superuser:  # the trials the user registers in (a site may belong to several trials)
            trials = R.filter_by_trial(trials, user, "pk", roles=CLINICAL_WRITE_ROLES)
        self.fields["trial"].queryset = trials.distinct().order_by("slug")
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


REFUSALS = (*admin_actions.REFUSALS, WorkflowError)


def intermediate(modeladmin, request, queryset, **kwargs):
    """trialsite.admin_actions.intermediate, with participants' workflow refusals shown per row."""
    return admin_actions.intermediate(modeladmin, request, queryset, refusals=REFUSALS, **kwargs)


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
class ParticipantAdmin(KitAdminMixin, ScopedAdmin):
    site_field = "site"
    add_roles = CLINICAL_WRITE_ROLES
    change_roles = ()  # changes go through actions (services), never raw edits
    list_display = ["study_id", "site", "status", "study_day_now", "open_alerts_col", "arm"]
    # The arm column: shown to whoever the policy lets see arms, row by row on a list mixing trials ("blinded" in
    # the rows of a trial where they may not), and to nobody else (trialsite.admin_scoping).
    blinded_fields = ("arm",)
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
        "eligibility_answers",
        "eligible",
        "registered_at",
        "enrolled_at",
        "randomised_at",
        "day0",
        "withdrawn_at",
        "withdrawal_scope",
        "locked",
        "envelopes_recorded",  # self-blinding trials only (KitAdminMixin): yes/no per period, never a condition
    ]
    fieldsets = [
        (None, {"fields": ["study_id", "trial", "site", "status", "study_day_now", "timezone", "locked"]}),
        ("Screening", {"fields": ["eligibility_answers", "eligible", "registered_at"]}),
        ("Progress", {"fields": ["enrolled_at", "randomised_at", "day0", "withdrawn_at", "withdrawal_scope"]}),
    ]
    inlines = [ConsentInline, AlertInline, AdverseEventInline, WithdrawalInline]
    actions = ["issue_code", "randomise", "withdraw", "record_paper_consent", revoke_tokens, lock_data]

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
        queryset = super().get_queryset(request).annotate(open_alerts=Coalesce(Subquery(open_alerts), Value(0)))
        arms = arms_of(request)
        if arms.trials:  # the arm, read only for rows of the trials where the policy lets the user see arms
            arm = m.Allocation.objects.filter(participant=OuterRef("pk")).values("slot__arm__name")[:1]
            queryset = queryset.annotate(
                arm_name=Case(When(trial_id__in=arms.trials, then=Subquery(arm)), output_field=CharField())
            )
        for extension in dashboard_extensions():
            queryset = extension.annotate(queryset)
        return queryset

    # --- the dashboard: columns, filters and change-page sections other apps add (participants.dashboard) -------
    def get_list_display(self, request):
        extensions = dashboard_extensions()
        display = list(super().get_list_display(request))
        at = display.index("study_day_now") + 1
        display[at:at] = [column for ext in extensions for column in ext.columns]
        return display + [column for ext in extensions for column in ext.trailing_columns]

    def get_list_filter(self, request):
        return list(super().get_list_filter(request)) + [f for ext in dashboard_extensions() for f in ext.filters]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = extra_context or {}
        participant = self.get_object(request, object_id)
        if participant is not None:
            extra_context["dashboard_sections"] = [
                section
                for ext in dashboard_extensions()
                if ext.sections is not None
                for section in ext.sections(request, participant)
            ]
        return super().change_view(request, object_id, form_url, extra_context)

    @admin.display(description="eligibility")
    def eligibility_answers(self, obj):
        """The screening answers as the protocol's criteria read, each yes or no (not the stored JSON)."""
        if not obj.eligibility:
            return "—"
        criteria = [(c.key, c.text) for c in protocol_current(obj.trial_id).eligibility]
        criteria += [(k, k) for k in obj.eligibility if k not in dict(criteria)]  # answered under an older version
        answers = [("yes" if obj.eligibility[k] else "no", text) for k, text in criteria if k in obj.eligibility]
        return format_html(
            '<ul class="eligibility">{}</ul>', format_html_join("", "<li><strong>{}</strong> · {}</li>", answers)
        )

    @admin.display(description="arm", ordering="arm_name")
    def arm(self, obj):
        return getattr(obj, "arm_name", None) or "—"

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
        # Hidden when the policy would refuse them everywhere; the services still decide per participant.
        for name, action in ACTION_POLICY.items():
            if not policy.may_ever(request.user, action):
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
            *self.kit_urls(),
        ] + super().get_urls()

    def add_view(self, request, form_url="", extra_context=None):
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = RegisterForm(request.POST or None, user=request.user)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            try:
                participant, code = services.participant_register(
                    trial=data["trial"],
                    site=data["site"],
                    tz=data["timezone"],
                    eligibility=form.eligibility(),
                    contact={"name": data["name"], "email": data["email"], "phone": data["phone"]},
                    actor=request.user,
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
            try:
                code = services.enrolment_code_issue(participant=participant, actor=request.user)
            except Exception as exc:  # noqa: BLE001 - WorkflowError/ValidationError: shown to the user
                self.message_user(request, error_text(exc), messages.ERROR)
        if code is None:
            code = services.enrolment_code_live(participant=participant)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Enrolment code for {participant.study_id}",
            "participant": participant,
            "code": code,
            "qr": mark_safe(enrolment_qr_svg(code)) if code else "",  # noqa: S308 - SVG generated by segno
            "opts": self.opts,
            "can_issue": policy.can(request.user, policy.ENROLMENT_CODE_ISSUE, participant)
            and services.enrolment_code_issuable(participant),
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
                details = services.contact_view(
                    participant=participant, actor=request.user, purpose=form.cleaned_data["purpose"]
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
                services.enrolment_code_issue(participant=participant, actor=request.user)
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
        for participant in queryset:
            try:
                services.participant_randomise(participant=participant, actor=request.user)
                self.message_user(request, f"{participant}: randomised.", messages.SUCCESS)
            except Exception as exc:  # noqa: BLE001 - workflow refusals are shown, not raised
                self.message_user(request, f"{participant}: {error_text(exc)}", messages.ERROR)

    @admin.action(description="Withdraw (scope and reason)")
    def withdraw(self, request, queryset):
        def apply(participant, data):
            services.participant_withdraw(
                participant=participant,
                scope=data["scope"],
                reason=data["reason"],
                by_participant=False,
                actor=request.user,
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
            services.consent_record_paper(
                participant=participant,
                version=data["document"].version,
                signed_at=data["signed_on"],
                paper_reference=data["paper_reference"],
                actor=request.user,
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
    trial_field = "trial"
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
