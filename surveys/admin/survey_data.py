"""Staff admin of survey data: instruments, instances, responses and their corrections, doses, side effects,
reminders, coordinator tasks, prompt events, and data queries. Every write goes through surveys' services.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError

from trialsite import policy
from trialsite import roles as R
from trialsite.admin_actions import error_text, intermediate
from trialsite.admin_scoping import ReadOnlyInline, ReasonRequiredAdmin, ScopedAdmin, site_filter

from .. import data_queries
from ..models import (
    CoordinatorTask,
    CoordinatorTaskStatus,
    DataQuery,
    DataQueryMessage,
    DataQueryStatus,
    DoseLog,
    Instrument,
    ItemAnswer,
    PromptEvent,
    Reminder,
    Response,
    Score,
    SideEffect,
    SurveyInstance,
)

SITE = "participant__site"


# --- survey data ---------------------------------------------------------------------------------------------


@admin.register(Instrument)
class InstrumentAdmin(ScopedAdmin):
    trial_field = "trial"
    list_display = ["slug", "version", "title", "trial"]
    list_select_related = ["trial"]
    list_filter = ["trial", "slug"]
    exclude = ["definition"]

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields if f.name != "definition"]


class ReminderInline(ReadOnlyInline):
    model = Reminder
    site_field = "instance__participant__site"
    fields = ["stage", "due_at", "status", "channel", "attempts", "queued_at", "sent_at", "skip_reason", "last_error"]


@admin.register(SurveyInstance)
class SurveyInstanceAdmin(ScopedAdmin):
    site_field = SITE
    list_display = [
        "participant",
        "instrument",
        "schedule_key",
        "study_day",
        "local_date",
        "opens_at",
        "closes_at",
        "status",
    ]
    list_select_related = ["participant", "instrument"]
    list_filter = [site_filter(SITE), "status", "schedule_key"]
    search_fields = ["participant__study_id"]
    date_hierarchy = "opens_at"
    inlines = [ReminderInline]

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]


class ItemAnswerInline(ReadOnlyInline):
    model = ItemAnswer
    site_field = "response__participant__site"
    fields = ["item_key", "value"]


class ScoreInline(ReadOnlyInline):
    model = Score
    site_field = "response__participant__site"
    fields = ["key", "value", "band", "scored", "items_missing"]
    show_change_link = False


class RaiseQueryForm(forms.Form):
    subject = forms.CharField(max_length=255)
    item_key = forms.CharField(max_length=64, required=False, help_text="empty: the whole response")
    message = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}))


@admin.register(Response)
class ResponseAdmin(ScopedAdmin):
    site_field = SITE
    list_display = ["participant", "instrument", "study_day", "authored_at", "received_at", "late", "locked"]
    list_select_related = ["participant", "instrument"]
    list_filter = [site_filter(SITE), "instrument__slug", "late", "locked"]
    search_fields = ["participant__study_id"]
    date_hierarchy = "received_at"
    inlines = [ItemAnswerInline, ScoreInline]
    exclude = ["answers", "request_hash", "idempotency_key"]
    actions = ["raise_query", "lock"]

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields if f.name not in self.exclude]

    def get_actions(self, request):
        actions = super().get_actions(request)
        if not policy.may_ever(request.user, policy.DATA_QUERY_RAISE):
            actions.pop("raise_query", None)
        if not policy.may_ever(request.user, policy.RECORD_LOCK):
            actions.pop("lock", None)
        return actions

    @admin.action(description="Raise a data query")
    def raise_query(self, request, queryset):
        def apply(response, data):
            data_queries.data_query_raise(
                response=response,
                actor=request.user,
                subject=data["subject"],
                message=data["message"],
                item_key=data["item_key"],
            )

        return intermediate(
            self,
            request,
            queryset,
            form_class=RaiseQueryForm,
            title="Raise a data query",
            action="raise_query",
            apply=apply,
        )

    @admin.action(description="Lock (no further edits)")
    def lock(self, request, queryset):
        done = 0
        for response in queryset:
            try:
                data_queries.response_lock(response=response, actor=request.user)
                done += 1
            except PermissionDenied as exc:
                self.message_user(request, f"{response}: {error_text(exc)}", messages.ERROR)
        if done:
            self.message_user(request, f"Locked: {done}.", messages.SUCCESS)


@admin.register(ItemAnswer)
class ItemAnswerAdmin(ReasonRequiredAdmin):
    """Corrections of single answers by data management: a reason is required; locked responses refuse."""

    site_field = "response__participant__site"
    change_roles = (R.DATA_MANAGER,)
    list_display = ["response", "participant_col", "item_key", "value"]
    list_select_related = ["response__participant"]
    search_fields = ["response__participant__study_id", "item_key"]
    fields = ["response", "item_key", "value"]
    readonly_fields = ["response", "item_key"]

    @admin.display(description="participant")
    def participant_col(self, obj):
        return obj.response.participant

    def is_locked(self, obj) -> bool:
        return obj is not None and (obj.response.locked or obj.response.participant.locked)

    def save_model(self, request, obj, form, change):
        # The correction service validates the value against the instrument, re-scores the response and
        # re-runs the safety rules, under the reason given here.
        from ..services.responses import item_answer_correct

        item_answer_correct(
            item_answer=obj,
            value=form.cleaned_data["value"],
            actor=request.user,
            reason=form.cleaned_data.get("change_reason") or "",
        )

    def get_form(self, request, obj=None, **kwargs):
        form = super().get_form(request, obj, **kwargs)
        admin_self = self

        class CorrectionForm(form):
            def clean(self):
                cleaned = super().clean()
                if self.instance.pk and "value" in cleaned and not self.errors:
                    problem = admin_self.correction_problem(self.instance, cleaned["value"])
                    if problem:
                        self.add_error("value", problem)
                return cleaned

        return CorrectionForm

    @staticmethod
    def correction_problem(item_answer, value) -> str | None:
        """The instrument's verdict on the corrected value (None when it is valid)."""
        from ..services.responses import item_answer_correction_check

        result = item_answer_correction_check(response=item_answer.response, item_key=item_answer.item_key, value=value)
        return "; ".join(m for messages in result.errors.values() for m in messages) or None


@admin.register(DoseLog)
class DoseLogAdmin(ScopedAdmin):
    site_field = SITE
    list_display = ["participant", "taken_at", "unit_code", "study_day", "received_at"]
    list_select_related = ["participant"]
    list_filter = [site_filter(SITE)]
    search_fields = ["participant__study_id"]

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]


@admin.register(SideEffect)
class SideEffectAdmin(ReasonRequiredAdmin):
    site_field = SITE
    change_roles = (R.DATA_MANAGER,)
    list_display = ["participant", "started_on", "severity", "serious", "ongoing", "reported_at"]
    list_select_related = ["participant"]
    list_filter = [site_filter(SITE), "severity", "serious", "ongoing"]
    search_fields = ["participant__study_id"]
    fields = ["participant", "started_on", "description", "severity", "serious", "ongoing", "reported_at"]
    readonly_fields = ["participant", "reported_at"]

    def is_locked(self, obj) -> bool:
        return obj is not None and obj.participant.locked

    def save_model(self, request, obj, form, change):
        # The correction service re-runs the protocol's side-effect safety rules (serious → alert) and
        # records the reason given here in the audit trail.
        from ..services.side_effects import CORRECTABLE_FIELDS, side_effect_correct

        side_effect_correct(
            side_effect=obj,
            actor=request.user,
            reason=form.cleaned_data.get("change_reason") or "",
            **{name: form.cleaned_data[name] for name in CORRECTABLE_FIELDS if name in form.cleaned_data},
        )


@admin.register(Reminder)
class ReminderAdmin(ScopedAdmin):
    site_field = "instance__participant__site"
    list_display = [
        "instance",
        "stage",
        "due_at",
        "status",
        "channel",
        "attempts",
        "sent_at",
        "skip_reason",
        "last_error",
    ]
    list_select_related = ["instance"]
    list_filter = [site_filter("instance__participant__site"), "status", "channel", "stage"]

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]


class CoordinatorTaskForm(forms.ModelForm):
    class Meta:
        model = CoordinatorTask
        fields = ["resolution_note"]
        widgets = {"resolution_note": forms.Textarea(attrs={"rows": 3})}

    def clean_resolution_note(self):
        note = (self.cleaned_data.get("resolution_note") or "").strip()
        if len(note) < 3:
            raise forms.ValidationError("Say what was done: a reason for closing the task is required.")
        return note


@admin.register(CoordinatorTask)
class CoordinatorTaskAdmin(ScopedAdmin):
    """The coordinator's to-do list (e.g. a participant who missed several surveys in a row)."""

    site_field = "participant__site"
    change_roles = (R.COORDINATOR, R.TRIAL_MANAGER)
    form = CoordinatorTaskForm
    list_display = ["participant", "title", "status", "created_at", "resolved_at", "resolved_by"]
    list_select_related = ["participant", "resolved_by"]
    list_filter = ["status", site_filter("participant__site"), "kind"]
    search_fields = ["participant__study_id"]
    readonly_fields = [
        "participant",
        "kind",
        "title",
        "details",
        "trigger_instance",
        "status",
        "created_at",
        "resolved_at",
        "resolved_by",
    ]
    fields = readonly_fields[:5] + ["resolution_note"] + readonly_fields[5:]

    def has_change_permission(self, request, obj=None):
        if obj is not None and obj.status == CoordinatorTaskStatus.DONE:
            return False
        return super().has_change_permission(request, obj)

    def save_model(self, request, obj, form, change):
        from ..reminders.services import coordinator_task_resolve

        try:
            coordinator_task_resolve(task_id=obj.pk, actor=request.user, note=form.cleaned_data["resolution_note"])
        except ValidationError as exc:
            self.message_user(request, "; ".join(exc.messages), level=messages.ERROR)
        else:
            self.message_user(request, "Task closed.")


@admin.register(PromptEvent)
class PromptEventAdmin(ScopedAdmin):
    site_field = "instance__participant__site"
    list_display = ["instance", "kind", "at", "received_at"]
    list_select_related = ["instance"]
    list_filter = ["kind"]

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]


# --- data queries --------------------------------------------------------------------------------------------


class MessageInline(ReadOnlyInline):
    model = DataQueryMessage
    site_field = "query__participant__site"
    fields = ["created_at", "author", "body"]
    show_change_link = False
    verbose_name_plural = "thread"

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("author")


@admin.register(DataQuery)
class DataQueryAdmin(ScopedAdmin):
    """Raised from the responses list (action); site staff answer here; only data managers close."""

    site_field = SITE
    list_display = ["subject", "participant", "item_key", "status", "raised_by", "raised_at", "closed_at"]
    list_select_related = ["participant", "raised_by"]
    list_filter = ["status", site_filter(SITE)]
    search_fields = ["participant__study_id", "subject"]
    inlines = [MessageInline]
    change_form_template = "admin/surveys/dataquery/change_form.html"

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = extra_context or {}
        query = self.get_object(request, object_id)
        if query is not None and request.method == "POST" and ("_reply" in request.POST or "_close" in request.POST):
            try:
                if "_close" in request.POST:
                    data_queries.data_query_close(query=query, actor=request.user, note=request.POST.get("body", ""))
                    self.message_user(request, "Query closed.", messages.SUCCESS)
                else:
                    data_queries.data_query_reply(query=query, actor=request.user, body=request.POST.get("body", ""))
                    self.message_user(request, "Reply added.", messages.SUCCESS)
            except (ValidationError, PermissionDenied) as exc:
                self.message_user(request, error_text(exc), messages.ERROR)
            from django.http import HttpResponseRedirect

            return HttpResponseRedirect(request.path)
        if query is not None:
            extra_context["can_reply"] = data_queries.data_query_can_reply(query=query, actor=request.user)
            extra_context["can_close"] = query.status != DataQueryStatus.CLOSED and policy.can(
                request.user, policy.DATA_QUERY_CLOSE, query
            )
        return super().change_view(request, object_id, form_url, extra_context)
