"""Staff admin of survey data, and the participant dashboard.

The dashboard (participants changelist) extends participants.admin.ParticipantAdmin here, because its
columns come from survey instances and responses (surveys may import participants, never the reverse).
Every column is an annotation or subquery, so the changelist costs the same number of queries for 1 or
50 participants.
"""

from __future__ import annotations

from datetime import timedelta

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count, DateTimeField, F, FloatField, Max, Min, OuterRef, Subquery, Value
from django.db.models.functions import Cast, Coalesce, NullIf
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.html import format_html

from participants import admin as participants_admin
from participants.admin import ParticipantAdmin, error_text, intermediate
from participants.models import Participant
from trialsite import roles as R
from trialsite.admin_scoping import (
    ReadOnlyInline,
    ReasonRequiredAdmin,
    ScopedAdmin,
    has_any_role,
    site_filter,
)

from . import data_queries, definitions, selectors
from .models import (
    CoordinatorTask,
    CoordinatorTaskStatus,
    DataQuery,
    DataQueryMessage,
    DataQueryStatus,
    DoseLog,
    InstanceStatus,
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


def _per_participant(queryset, value):
    """A correlated subquery over the participant's rows (no join, no GROUP BY on the outer query)."""
    return Subquery(
        queryset.filter(participant=OuterRef("pk")).order_by().values("participant").annotate(v=value).values("v")[:1]
    )


def _instances(**filters):
    return SurveyInstance.objects.filter(**filters)


def dashboard_annotations(queryset, *, now=None):
    """Completion (last 7 days and overall), last answer, next due, open alerts, missed in a row: the
    definitions of surveys.definitions, as subqueries."""
    now = now or timezone.now()
    week = now - timedelta(days=7)
    due, answered = definitions.due_q(now), definitions.answered_q()
    recent = _instances(grace_until__gte=week)
    streak_instrument, missed_row = selectors.missed_in_a_row_annotation(now=now)
    zero = Value(0)
    queryset = queryset.annotate(
        done_all=Coalesce(_per_participant(_instances().filter(answered), Count("pk")), zero),
        due_all=Coalesce(_per_participant(_instances().filter(due), Count("pk")), zero),
        done_7=Coalesce(_per_participant(recent.filter(answered), Count("pk")), zero),
        due_7=Coalesce(_per_participant(recent.filter(due), Count("pk")), zero),
        last_answer=_per_participant(Response.objects.all(), Max("received_at")),
        next_due=_per_participant(
            _instances(status=InstanceStatus.SCHEDULED, closes_at__gt=now),
            Min("opens_at", output_field=DateTimeField()),
        ),
        missed_row_instrument=streak_instrument,
    ).annotate(missed_row=missed_row)
    return queryset.annotate(
        adherence_7=Cast(F("done_7"), FloatField()) * 100.0 / NullIf(Cast(F("due_7"), FloatField()), Value(0.0)),
    )


def _pct(done: int, due: int) -> str:
    return "—" if not due else f"{round(100 * done / due)}%"


class AdherenceFilter(admin.SimpleListFilter):
    title = "survey completion (last 7 days)"
    parameter_name = "adherence"

    def lookups(self, request, model_admin):
        return [("low", "below 50%"), ("mid", "50–79%"), ("high", "80% or more"), ("none", "nothing due")]

    def queryset(self, request, queryset):
        value = self.value()
        if value == "none":
            return queryset.filter(due_7=0)
        with_due = queryset.filter(due_7__gt=0)
        if value == "low":
            return with_due.filter(adherence_7__lt=50)
        if value == "mid":
            return with_due.filter(adherence_7__gte=50, adherence_7__lt=80)
        if value == "high":
            return with_due.filter(adherence_7__gte=80)
        return queryset


class MissedFilter(admin.SimpleListFilter):
    title = "missed in a row"
    parameter_name = "missed"

    def lookups(self, request, model_admin):
        return [("3", "3 or more")]

    def queryset(self, request, queryset):
        if self.value() == "3":
            return queryset.filter(missed_row__gte=3)
        return queryset


class ParticipantDashboardAdmin(ParticipantAdmin):
    list_display = [
        "study_id",
        "site",
        "status",
        "study_day_now",
        "adherence_7d",
        "adherence_all",
        "last_answer_col",
        "next_due_col",
        "open_alerts_col",
        "missed_row_col",
    ]
    list_filter = [
        site_filter("site"),
        "status",
        participants_admin.OpenAlertsFilter,
        AdherenceFilter,
        MissedFilter,
    ]

    def get_queryset(self, request):
        return dashboard_annotations(super().get_queryset(request))

    @admin.display(description="surveys answered, 7 d", ordering="adherence_7")
    def adherence_7d(self, obj):
        return _pct(obj.done_7, obj.due_7)

    @admin.display(description="surveys answered, all")
    def adherence_all(self, obj):
        return _pct(obj.done_all, obj.due_all)

    @admin.display(description="last answer", ordering="last_answer")
    def last_answer_col(self, obj):
        return obj.last_answer.strftime("%Y-%m-%d %H:%M") if obj.last_answer else "—"

    @admin.display(description="next due", ordering="next_due")
    def next_due_col(self, obj):
        return obj.next_due.strftime("%Y-%m-%d %H:%M") if obj.next_due else "—"

    @admin.display(description="missed in a row", ordering="missed_row")
    def missed_row_col(self, obj):
        return (
            format_html('<strong style="color:#ba2121">{}</strong>', obj.missed_row)
            if obj.missed_row >= 3
            else obj.missed_row
        )

    # --- change page: the participant's whole story, in a fixed number of queries ---------------------------
    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = extra_context or {}
        participant = self.get_object(request, object_id)
        if participant is not None:
            extra_context["dashboard_sections"] = self.sections(request, participant)
        return super().change_view(request, object_id, form_url, extra_context)

    def sections(self, request, participant) -> list[dict]:
        instances = list(
            SurveyInstance.objects.filter(participant=participant)
            .select_related("instrument", "response")
            .prefetch_related("reminders", "prompt_events", "response__scores")
            .order_by("opens_at", "id")
        )
        for instance in instances:
            response = getattr(instance, "response", None) if hasattr(instance, "response") else None
            instance.answer = response
            instance.score_list = list(response.scores.all()) if response else []
            instance.telemetry = {e.kind: e.at for e in instance.prompt_events.all()}
        doses = list(DoseLog.objects.filter(participant=participant).order_by("taken_at"))
        side_effects = list(SideEffect.objects.filter(participant=participant).order_by("reported_at"))
        context = {"participant": participant, "instances": instances, "doses": doses, "side_effects": side_effects}
        sections = [
            {
                "title": "Surveys, answers and scores",
                "html": render_to_string("admin/surveys/sections/instances.html", context),
            },
            {
                "title": "Reminders (planned → sent → delivered → opened → answered)",
                "html": render_to_string("admin/surveys/sections/reminders.html", context),
            },
            {"title": "Doses", "html": render_to_string("admin/surveys/sections/doses.html", context)},
            {
                "title": "Side effects (participant-reported)",
                "html": render_to_string("admin/surveys/sections/side_effects.html", context),
            },
        ]
        sections.append({"title": "Audit history", "html": self.audit_section(request, participant)})
        return sections

    def audit_section(self, request, participant) -> str:
        from pghistory.models import Events

        from trialsite.admin_audit import hidden_keys, visible_event_models

        events = list(
            Events.objects.across(*visible_event_models(request.user))
            .references(participant)
            .order_by("-pgh_created_at")[:200]
        )
        rows = []
        for event in events:
            hidden = hidden_keys(request.user, event.pgh_obj_model or "")
            diff = {k: v for k, v in (event.pgh_diff or {}).items() if k not in hidden}
            rows.append({"event": event, "diff": diff, "context": event.pgh_context or {}})
        return render_to_string("admin/surveys/sections/audit.html", {"rows": rows})


admin.site.unregister(Participant)
admin.site.register(Participant, ParticipantDashboardAdmin)


# --- survey data ---------------------------------------------------------------------------------------------


@admin.register(Instrument)
class InstrumentAdmin(ScopedAdmin):
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
        if not has_any_role(request.user, (R.DATA_MANAGER,)):
            actions.pop("raise_query", None)
            actions.pop("lock", None)
        return actions

    @admin.action(description="Raise a data query")
    def raise_query(self, request, queryset):
        def apply(response, data):
            data_queries.data_query_raise(
                response=response,
                user=request.user,
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
        for response in queryset:
            data_queries.response_lock(response=response, user=request.user)
        self.message_user(request, "Locked.", messages.SUCCESS)


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
        from .services.responses import item_answer_correct

        item_answer_correct(
            item_answer=obj,
            value=form.cleaned_data["value"],
            user=request.user,
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
        from .services.responses import item_answer_correction_check

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
        from .services.side_effects import CORRECTABLE_FIELDS, side_effect_correct

        side_effect_correct(
            side_effect=obj,
            user=request.user,
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
        from .reminders.services import coordinator_task_resolve

        try:
            coordinator_task_resolve(task_id=obj.pk, user=request.user, note=form.cleaned_data["resolution_note"])
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
                    data_queries.data_query_close(query=query, user=request.user, note=request.POST.get("body", ""))
                    self.message_user(request, "Query closed.", messages.SUCCESS)
                else:
                    data_queries.data_query_reply(query=query, user=request.user, body=request.POST.get("body", ""))
                    self.message_user(request, "Reply added.", messages.SUCCESS)
            except (ValidationError, PermissionDenied) as exc:
                self.message_user(request, error_text(exc), messages.ERROR)
            from django.http import HttpResponseRedirect

            return HttpResponseRedirect(request.path)
        if query is not None:
            extra_context["can_reply"] = data_queries.data_query_can_reply(query=query, user=request.user)
            extra_context["can_close"] = query.status != DataQueryStatus.CLOSED and R.has_role(
                request.user, R.DATA_MANAGER
            )
        return super().change_view(request, object_id, form_url, extra_context)


__all__ = ["ParticipantDashboardAdmin", "dashboard_annotations"]
