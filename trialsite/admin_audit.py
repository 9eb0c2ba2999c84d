"""The audit trail in the admin: pghistory events, scoped and blinded, filterable and exportable as CSV.

Filters: date (`pgh_created_at__gte` / `__lt`, also from the date list filter), user (`user=<id>`),
participant (`participant=<study id>`), table (`table=<app_label.model>`). Events of arm-bearing tables reach
only who may see arms in the trial of their row (the policy, `ARMS_VIEW`, asked once per trial per request; each row
placed by its trial in one subquery per table): a user unblinded in trial A and blinded in B sees A's and never B's.
Staff who reach part of the deployment (site-scoped, or not every trial) see the events that reference the
participants they reach, and the events of the trial-level arm tables (arms, slots, dose units) of the trials where
they may see arms (events_within_reach).
"""

from __future__ import annotations

import contextvars
import csv
import json
from typing import Any

from django.contrib import admin
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.db.models import Q, TextField
from django.db.models.functions import Cast
from django.http import StreamingHttpResponse
from django.urls import path
from django.utils.html import format_html_join
from pghistory import core as pgh_core
from pghistory.admin import EventsAdmin

from . import roles as R
from .admin_scoping import (
    STAFF_ROLES,
    Arms,
    arm_trial_paths,
    arms_of,
    blinding_registry,
    has_any_role,
    user_arms,
)

_current_request: contextvars.ContextVar = contextvars.ContextVar("audit_admin_request")

# The rows the audit trail is scoped by (site staff see events referencing those of their sites) and that
# `?participant=<key>` finds: registered by the participants app in its AppConfig.ready().
_subject: dict[str, Any] = {}


def register_audit_subject(*, model, key_field: str, site_field: str = "site") -> None:
    """model: the subject (a participant); key_field: what `?participant=` matches (the study id);
    site_field: the subject's site foreign key."""
    from .audit import SUBJECT

    if model._meta.label_lower != SUBJECT:  # the event tables index the copied keys of trialsite.audit.SUBJECT only
        raise ImproperlyConfigured(f"The audit subject is {SUBJECT}, not {model._meta.label_lower} (trialsite.audit)")
    _subject.update(model=model, key_field=key_field, site_field=site_field)


def audit_subject() -> dict[str, Any]:
    if not _subject:
        raise ImproperlyConfigured(
            "No audit subject is registered (trialsite.admin_audit.register_audit_subject, called by the "
            "participants app's AppConfig.ready()): the audit trail cannot be scoped to sites."
        )
    return _subject


AUDIT_ROLES = (R.TRIAL_MANAGER, R.DATA_MANAGER, R.MONITOR, R.UNBLINDED_STATISTICIAN, R.COORDINATOR, R.SAFETY_PHYSICIAN)


def visible_event_models(user, arms: Arms | None = None) -> list:
    """Event models whose tracked table the user may read."""
    registry = blinding_registry()
    arms = arms if arms is not None else user_arms(user)
    result = []
    for event_model in pgh_core.event_models():
        tracked = getattr(event_model, "pgh_tracked_model", None)
        label = tracked._meta.label.lower() if tracked is not None else ""
        # Blinded users see no event of any table in the blinding registry: even a field-level entry
        # (a slot's arm, an allocation's slot) would let rows be grouped by arm. Who may see arms in some trial
        # sees those tables' events of those trials only (arm_rows_of_unblinded_trials).
        if not arms.trials and label in registry:
            continue
        if not label or label.startswith("pghistory."):
            continue
        result.append(event_model)
    return result


def arm_rows_of_unblinded_trials(queryset, event_models, arms: Arms):
    """The trail mixes trials: events of arm-bearing tables only of the trials where the user may see arms, each row
    placed by its tracked row's trial (blinding.TRIAL_PATHS) in one subquery per table, not a query per row. A table
    without a trial path shows no event (fails closed)."""
    if arms.every:
        return queryset
    registry, paths = blinding_registry(), arm_trial_paths()
    arm_tables = [m.pgh_tracked_model for m in event_models if m.pgh_tracked_model._meta.label_lower in registry]
    keep = ~Q(pgh_obj_model__in=[t._meta.label for t in arm_tables])
    for tracked in arm_tables:
        path = paths.get(tracked._meta.label_lower)
        if path is None:
            continue
        rows = tracked._default_manager.filter(**{f"{path}__in": arms.trials})
        keep |= Q(pgh_obj_model=tracked._meta.label, pgh_obj_id__in=rows.values(key=Cast("pk", TextField())))
    return queryset.filter(keep)


def _subject_columns(event_model, subject) -> list[str]:
    """The event table's foreign keys to the audit subject (its own `pgh_obj` for the subject's table): what
    pghistory's `references()` matches."""
    return [f.name for f in event_model._meta.fields if getattr(f, "related_model", None) is subject]


def _trial_level_arm_rows(event_models, arms: Arms) -> list[tuple]:
    """(event model, its tracked rows in the trials where the user may see arms) for each arm-bearing table that
    references no audit subject (arms, allocation slots, dose units), placed by its trial (blinding.TRIAL_PATHS)."""
    if not arms.trials:
        return []
    subject = audit_subject()["model"]._meta.concrete_model
    registry, paths = blinding_registry(), arm_trial_paths()
    result = []
    for event_model in event_models:
        tracked = event_model.pgh_tracked_model
        path = paths.get(tracked._meta.label_lower)
        if tracked._meta.label_lower in registry and path and not _subject_columns(event_model, subject):
            result.append((event_model, tracked._default_manager.filter(**{f"{path}__in": arms.trials})))
    return result


def events_within_reach(queryset, event_models, user, arms: Arms):
    """For staff who reach part of the deployment (site-scoped, or not every trial): the events that reference the
    audit subjects (participants) they reach, and the events of the trial-level arm tables (which reference no
    participant) of the trials where they may see arms. pghistory cannot combine `references()` with anything else,
    so when there are such tables the references are written here as one subquery per table (the query count does
    not grow with the rows); otherwise pghistory narrows each table inside its own select."""
    subject = audit_subject()
    reached = R.filter_by_site(subject["model"].objects.all(), user, subject["site_field"])
    trial_level = _trial_level_arm_rows(event_models, arms)
    if not trial_level:
        return queryset.references(reached)
    model = subject["model"]._meta.concrete_model
    keep, kept = Q(), []
    for event_model in event_models:
        refers = Q()
        for column in _subject_columns(event_model, model):
            refers |= Q(**{f"{column}__in": reached.values("pk")})
        if refers:
            events = event_model._default_manager.filter(refers).values("pgh_id")
            keep |= Q(pgh_model=event_model._meta.label, pgh_id__in=events)
            kept.append(event_model)
    for event_model, rows in trial_level:
        keep |= Q(pgh_model=event_model._meta.label, pgh_obj_id__in=rows.values(key=Cast("pk", TextField())))
        kept.append(event_model)
    return queryset.across(*kept).filter(keep)


def visible_events(user):
    """The events the user may read (before site scoping): the base of the trail and of the participant page's
    audit section."""
    from pghistory.models import Events

    arms = user_arms(user)
    models = visible_event_models(user, arms)
    return arm_rows_of_unblinded_trials(Events.objects.across(*models), models, arms)


def hidden_keys(user, table_label: str, data: dict | None = None, arms: Arms | None = None) -> set[str]:
    """Keys of an event's data a user may not see. Rows of arm-bearing tables reach only who may see arms in their
    trial (visible_events), so they hide nothing; a protocol version's text names the arms: shown when the user may
    see arms in its trial (`data`: the event's row)."""
    arms = arms if arms is not None else user_arms(user)
    label = table_label.lower()
    fields = set(blinding_registry().get(label) or set())
    if arms.every or (fields and arms.trials):
        return set()
    if label == "trialsite.protocolversion":
        data = data or {}
        if arms.shows(data.get("trial_id", data.get("trial"))):
            return set()
        fields |= {"definition", "source"}  # the full protocol lists arm names; the admin never shows it either
    return fields | {f"{f}_id" for f in fields}


def _table_of(event) -> str:
    return event.pgh_obj_model or ""


class TableFilter(admin.SimpleListFilter):
    title = "table"
    parameter_name = "table"

    def lookups(self, request, model_admin):
        return sorted(
            {
                (m.pgh_tracked_model._meta.label_lower, m.pgh_tracked_model._meta.label)
                for m in model_admin._visible(request)
            }
        )

    def queryset(self, request, queryset):
        if self.value():
            wanted = [m for m in self.model_admin_visible if m.pgh_tracked_model._meta.label_lower == self.value()]
            return queryset.across(*wanted) if wanted else queryset.none()
        return queryset

    def __init__(self, request, params, model, model_admin):
        self.model_admin_visible = model_admin._visible(request)
        super().__init__(request, params, model, model_admin)


class UserFilter(admin.SimpleListFilter):
    title = "user"
    parameter_name = "user"

    def lookups(self, request, model_admin):
        from django.contrib.auth import get_user_model

        users = get_user_model().objects.filter(is_staff=True).order_by("username").values_list("pk", "username")
        return [(str(pk), name) for pk, name in users]

    def queryset(self, request, queryset):
        value = self.value()
        if value and value.isdigit():
            return queryset.filter(pgh_context__user=int(value))
        return queryset


class ParticipantFilter(admin.SimpleListFilter):
    """`?participant=<study id>`: events of the participant and of rows pointing at them."""

    title = "participant"
    parameter_name = "participant"

    def lookups(self, request, model_admin):
        value = self.value()
        return [(value, value)] if value else []

    def queryset(self, request, queryset):
        value = self.value()
        if not value:
            return queryset
        subject = audit_subject()
        found = list(
            R.filter_by_site(
                subject["model"].objects.filter(**{subject["key_field"]: value}), request.user, subject["site_field"]
            )
        )
        if not found:
            return queryset.none()
        return queryset.references(found)


class ObjectFilter(admin.SimpleListFilter):
    """`?obj=<app_label.Model>:<pk>[&method=tracks|references]`: the "Events" button of every change page."""

    title = "object"
    parameter_name = "obj"

    def lookups(self, request, model_admin):
        value = self.value()
        return [(value, value)] if value else []

    def queryset(self, request, queryset):
        value = self.value()
        if not value:
            return queryset
        from django.apps import apps

        label, _, pk = value.partition(":")
        try:
            model = apps.get_model(label)
        except (LookupError, ValueError):
            return queryset.none()
        owner = admin.site._registry.get(model)
        # The object must be one the user may open (site scoping and blinding of its own admin).
        if owner is None or not owner.has_view_permission(request):
            return queryset.none()
        try:
            obj = owner.get_queryset(request).filter(pk=pk).first()
        except (ValueError, ValidationError):  # a pk of the wrong type (?obj=trialsite.Trial:abc)
            return queryset.none()
        if obj is None:
            return queryset.none()
        if request.GET.get("method") == "references":
            return queryset.references(obj)
        return queryset.tracks(obj)


class _IgnoredParam(admin.SimpleListFilter):
    """Accept pghistory's navigation parameters (method, back) without filtering on them."""

    template = "pghistory_admin/hidden_filter.html"

    def lookups(self, request, model_admin):
        return []

    def queryset(self, request, queryset):
        return queryset


class MethodParam(_IgnoredParam):
    title = "method"
    parameter_name = "method"


class BackParam(_IgnoredParam):
    title = "back"
    parameter_name = "back"


class WhenFilter(admin.DateFieldListFilter):
    """The date filter of the event time, titled "when" (not the column's name, pgh_created_at)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.title = "when"


class AuditTrailAdmin(EventsAdmin):
    """Read-only; replaces pghistory's events admin (trialsite.admin_site.TrialsiteAdminSite.register)."""

    list_display = ["when", "table", "record", "event", "who", "reason", "changes"]
    list_per_page = 100
    show_full_result_count = False
    change_list_template = "admin/trialsite/audit_change_list.html"

    def _visible(self, request):
        cache = getattr(request, "_audit_visible", None)
        if cache is None:
            cache = visible_event_models(request.user, arms_of(request))
            request._audit_visible = cache
        return cache

    # --- permissions -------------------------------------------------------------------------------------
    def has_view_permission(self, request, obj=None):
        return has_any_role(request.user, AUDIT_ROLES)

    def has_module_permission(self, request):
        return self.has_view_permission(request)

    def has_change_permission(self, request, obj=None):
        return False

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def get_actions(self, request):
        return {}

    def get_list_display(self, request):
        return self.list_display

    def get_list_filter(self, request):
        return [
            ("pgh_created_at", WhenFilter),
            TableFilter,
            UserFilter,
            ParticipantFilter,
            ObjectFilter,
            MethodParam,
            BackParam,
        ]

    def get_queryset(self, request):
        from pghistory.models import Events

        visible = self._visible(request)
        queryset = Events.objects.order_by("-pgh_created_at", "-pgh_id").across(*visible)
        queryset = arm_rows_of_unblinded_trials(queryset, visible, arms_of(request))
        ids = R.site_ids(request.user)
        # ObjectFilter checks the object against its own admin's scoping, and pghistory cannot combine
        # tracks() with references(); every other view of site-scoped staff, or of staff who do not reach
        # every trial of the deployment, is narrowed here to the audit subjects (participants) they reach and the
        # trial-level arm tables of the trials where they may see arms.
        if not request.GET.get("obj") and (ids is not None or not self._reaches_every_trial(request.user)):
            queryset = events_within_reach(queryset, visible, request.user, arms_of(request))
        return queryset

    @staticmethod
    def _reaches_every_trial(user) -> bool:
        from .models import Trial

        reached = R.trial_ids(user)
        return reached is None or reached >= set(Trial.objects.values_list("pk", flat=True))

    def lookup_allowed(self, lookup, value, request=None):
        return lookup in {"pgh_created_at__gte", "pgh_created_at__lt"} or super().lookup_allowed(lookup, value, request)

    # --- columns ---------------------------------------------------------------------------------------------
    @admin.display(description="when", ordering="pgh_created_at")
    def when(self, event):
        return event.pgh_created_at

    @admin.display(description="record id")
    def record(self, event):
        return event.pgh_obj_id

    @admin.display(description="event")
    def event(self, event):
        return event.pgh_label

    @admin.display(description="table")
    def table(self, event):
        return _table_of(event)

    @admin.display(description="user")
    def who(self, event):
        context = event.pgh_context or {}
        return context.get("user") or "—"

    @admin.display(description="reason")
    def reason(self, event):
        return (event.pgh_context or {}).get("reason", "")

    def _clean_diff(self, request, event) -> dict:
        hidden = hidden_keys(request.user, _table_of(event), event.pgh_data, arms_of(request))
        diff = event.pgh_diff or {}
        if not diff and event.pgh_label == "insert":
            diff = {k: [None, v] for k, v in (event.pgh_data or {}).items()}
        return {k: v for k, v in diff.items() if k not in hidden}

    def changes(self, event):
        request = _current_request.get()
        diff = self._clean_diff(request, event)
        return format_html_join("", "<div><b>{}</b>: {} → {}</div>", ((k, v[0], v[1]) for k, v in diff.items()))

    def changelist_view(self, request, extra_context=None):
        _current_request.set(request)
        extra_context = {
            **(extra_context or {}),
            "title": "Audit trail",
            "export_query": request.GET.urlencode(),
        }
        # Not pghistory's changelist_view: it loads the ?obj= row unscoped to print it as a subtitle.
        return admin.ModelAdmin.changelist_view(self, request, extra_context=extra_context)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        from django.shortcuts import redirect

        return redirect(f"../../?{request.GET.urlencode()}")

    # --- CSV export ------------------------------------------------------------------------------------------
    def get_urls(self):
        info = self.opts.app_label, self.opts.model_name
        return [
            path("export.csv", self.admin_site.admin_view(self.export_csv), name=f"{info[0]}_{info[1]}_export")
        ] + super().get_urls()

    def export_csv(self, request):
        from django.core.exceptions import PermissionDenied

        if not self.has_view_permission(request):
            raise PermissionDenied
        _current_request.set(request)
        changelist = self.get_changelist_instance(request)
        queryset = changelist.get_queryset(request)

        class Echo:
            def write(self, value):
                return value

        writer = csv.writer(Echo())

        def rows():
            yield writer.writerow(["at", "table", "object_id", "label", "user", "reason", "request_id", "changes"])
            for event in queryset.iterator(chunk_size=2000):
                context = event.pgh_context or {}
                yield writer.writerow(
                    [
                        event.pgh_created_at.isoformat(),
                        _table_of(event),
                        event.pgh_obj_id,
                        event.pgh_label,
                        context.get("user", ""),
                        context.get("reason", ""),
                        context.get("request_id", ""),
                        json.dumps(self._clean_diff(request, event), default=str, sort_keys=True),
                    ]
                )

        response = StreamingHttpResponse(rows(), content_type="text/csv")
        response["Content-Disposition"] = 'attachment; filename="audit-trail.csv"'
        return response


__all__ = ["AuditTrailAdmin", "STAFF_ROLES"]
