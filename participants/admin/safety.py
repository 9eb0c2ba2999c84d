"""The safety queue: open alerts by deadline, acknowledged with a note (participants.services)."""

from __future__ import annotations

from django.contrib import admin
from django.utils import timezone
from django.utils.html import format_html

from trialsite import policy
from trialsite.admin_scoping import ScopedAdmin, site_filter

from .. import models as m
from .participants import SITE, NoteForm, intermediate

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
        if not policy.may_ever(request.user, policy.SAFETY_ALERT_ACKNOWLEDGE):
            actions.pop("acknowledge", None)
        return actions

    @admin.action(description="Acknowledge with a note")
    def acknowledge(self, request, queryset):
        from ..services import safety_alert_acknowledge

        def apply(alert, data):
            safety_alert_acknowledge(alert=alert, actor=request.user, note=data["note"])

        return intermediate(
            self,
            request,
            queryset,
            form_class=NoteForm,
            title="Acknowledge safety alerts",
            action="acknowledge",
            apply=apply,
        )
