"""The participant dashboard's survey-derived columns, filters and change-page sections.

The dashboard is participants' ParticipantAdmin; surveys contributes through participants.dashboard (the
DashboardExtension below, registered in SurveysConfig.ready()), because the columns come from survey instances
and responses (surveys may import participants, never the reverse).
Every column is an annotation or subquery, so the changelist costs the same number of queries for 1 or
50 participants.
"""

from __future__ import annotations

from datetime import timedelta

from django.contrib import admin
from django.db.models import Count, DateTimeField, F, FloatField, Max, Min, OuterRef, Subquery, Value
from django.db.models.functions import Cast, Coalesce, NullIf
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.html import format_html

from participants.dashboard import DashboardExtension

from .. import definitions, selectors
from ..models import DoseLog, InstanceStatus, Response, SideEffect, SurveyInstance


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


# --- the columns, filters and change-page sections surveys adds to participants' dashboard ----------------


@admin.display(description="surveys answered, 7 d", ordering="adherence_7")
def adherence_7d(obj):
    return _pct(obj.done_7, obj.due_7)


@admin.display(description="surveys answered, all")
def adherence_all(obj):
    return _pct(obj.done_all, obj.due_all)


@admin.display(description="last answer", ordering="last_answer")
def last_answer_col(obj):
    return obj.last_answer.strftime("%Y-%m-%d %H:%M") if obj.last_answer else "—"


@admin.display(description="next due", ordering="next_due")
def next_due_col(obj):
    return obj.next_due.strftime("%Y-%m-%d %H:%M") if obj.next_due else "—"


@admin.display(description="missed in a row", ordering="missed_row")
def missed_row_col(obj):
    return (
        format_html('<strong style="color:#ba2121">{}</strong>', obj.missed_row)
        if obj.missed_row >= 3
        else obj.missed_row
    )


# The change page: the participant's whole story, in a fixed number of queries.
def sections(request, participant) -> list[dict]:
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
    sections.append({"title": "Audit history", "html": audit_section(request, participant)})
    return sections


def audit_section(request, participant) -> str:
    from trialsite.admin_audit import hidden_keys, user_arms, visible_events

    events = list(visible_events(request.user).references(participant).order_by("-pgh_created_at")[:200])
    arms = user_arms(request.user)
    rows = []
    for event in events:
        hidden = hidden_keys(request.user, event.pgh_obj_model or "", event.pgh_data, arms)
        diff = {k: v for k, v in (event.pgh_diff or {}).items() if k not in hidden}
        rows.append({"event": event, "diff": diff, "context": event.pgh_context or {}})
    return render_to_string("admin/surveys/sections/audit.html", {"rows": rows})


# Registered in SurveysConfig.ready() (participants.dashboard.register_dashboard_extension).
DASHBOARD = DashboardExtension(
    annotate=dashboard_annotations,
    columns=(adherence_7d, adherence_all, last_answer_col, next_due_col),
    trailing_columns=(missed_row_col,),
    filters=(AdherenceFilter, MissedFilter),
    sections=sections,
)
