"""Admin for the shared models: trials, protocol versions, sites, role grants, staff sign-in events.

Only system admins (superusers) change trials, sites and role grants; staff see the trials and the sites
they work at, and the sign-in events and outbox messages of those trials (rows of no trial: system admins
only). Protocol versions are loaded from YAML (`load_protocol`) and never edited here.
"""

from django.contrib import admin
from django.db.models import Exists, OuterRef

from . import roles as R
from .admin_scoping import ScopedAdmin, has_any_role
from .models import OutboxMessage, ProtocolVersion, RoleGrant, Site, StaffLoginEvent, Trial


class WhenFilter(admin.DateFieldListFilter):
    """The date filter of `at`, titled "when" (the sidebar read "By at")."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.title = "when"


class SuperuserWritesAdmin(ScopedAdmin):
    def has_add_permission(self, request, *args):
        return request.user.is_superuser

    def has_change_permission(self, request, obj=None):
        return request.user.is_superuser


@admin.register(Trial)
class TrialAdmin(SuperuserWritesAdmin):
    trial_field = "pk"
    list_display = ["slug", "title", "created_at"]
    readonly_fields = ["uuid", "created_at"]
    filter_horizontal = ["sites"]
    search_fields = ["slug", "title"]


@admin.register(ProtocolVersion)
class ProtocolVersionAdmin(ScopedAdmin):
    """Protocol versions are immutable: loaded from YAML with `load_protocol`, never edited here."""

    trial_field = "trial"
    list_display = ["trial", "version", "sha256", "loaded_at", "source_path"]
    list_select_related = ["trial"]
    exclude = ["definition", "source"]
    readonly_fields = ["trial", "version", "sha256", "source_path", "loaded_at", "loaded_by"]


@admin.register(Site)
class SiteAdmin(SuperuserWritesAdmin):
    site_field = "pk"
    list_display = ["code", "name", "timezone"]
    readonly_fields = ["uuid"]
    search_fields = ["code", "name"]


@admin.register(RoleGrant)
class RoleGrantAdmin(ScopedAdmin):
    """Granting roles is the system admin's job; trial managers may see who holds which role."""

    view_roles = (R.TRIAL_MANAGER, R.MONITOR)
    trial_field = "trial"
    list_display = ["user", "role", "trial", "site", "granted_at"]
    list_filter = ["role", "trial", "site"]
    list_select_related = ["user", "trial", "site"]
    autocomplete_fields = ["user"]
    actions = ["revoke"]

    def has_add_permission(self, request, *args):
        return request.user.is_superuser

    def has_change_permission(self, request, obj=None):
        return request.user.is_superuser and obj is None  # a grant is never edited: revoke it and grant anew

    def save_model(self, request, obj, form, change):
        from django.core.exceptions import ValidationError

        from .services import role_grant

        try:  # through the service: the trial is checked and the derived groups follow
            grant = role_grant(user=obj.user, role=obj.role, trial=obj.trial, site=obj.site)
        except ValidationError as exc:
            self.message_user(request, "; ".join(exc.messages), level="ERROR")
            return
        obj.pk = grant.pk

    @admin.action(description="Revoke the selected grants")
    def revoke(self, request, queryset):
        from .services import role_revoke

        if not request.user.is_superuser:
            return
        for grant in queryset:
            role_revoke(grant=grant)
        self.message_user(request, "Revoked.")


@admin.register(StaffLoginEvent)
class StaffLoginEventAdmin(ScopedAdmin):
    """Sign-ins, sign-outs, failures and lock-outs (append-only)."""

    view_roles = (R.TRIAL_MANAGER, R.MONITOR, R.DATA_MANAGER)
    list_display = ["at", "kind", "username", "user", "ip_address", "path"]
    list_filter = ["kind", ("at", WhenFilter)]
    list_select_related = ["user"]
    search_fields = ["username"]
    date_hierarchy = "at"

    def has_view_permission(self, request, obj=None):
        return has_any_role(request.user, self.view_roles)

    def get_queryset(self, request):
        """A sign-in event belongs to the trials where its user holds a role: staff see the events of people who
        work in a trial where they hold one of the view roles. An event of no known user (a mistyped username)
        or of a user without grants (a system admin) belongs to no trial: system admins only."""
        queryset = super().get_queryset(request)
        trials = R.trial_ids(request.user, self.view_roles)
        if trials is None:  # a superuser
            return queryset
        in_trials = RoleGrant.objects.filter(user=OuterRef("user"), trial__in=trials)
        return queryset.filter(Exists(in_trials))

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]


@admin.register(OutboxMessage)
class OutboxMessageAdmin(ScopedAdmin):
    """Effects waiting for, or given up on by, the outbox (trialsite.outbox). Read-only: the sweep retries pending
    ones; a `failed` one needs a person (its last error says why)."""

    view_roles = (R.TRIAL_MANAGER, R.DATA_MANAGER)
    # A message belongs to the trial it is about (OutboxMessage.trial); one of no trial (system housekeeping, such
    # as the reminder sweep's checks) is shown to system admins only.
    trial_field = "trial"
    list_display = ["created_at", "kind", "trial", "status", "attempts", "next_attempt_at", "sent_at", "last_error"]
    list_filter = ["status", "kind"]
    search_fields = ["dedupe_key"]
    date_hierarchy = "created_at"
    exclude = ["payload"]  # may hold e-mail bodies and addresses; the kind and key say what it is
    list_select_related = ["trial"]

    def get_queryset(self, request):
        # The trials where the user holds one of the view roles (not any role: a coordinator of trial B who
        # manages trial A sees A's messages only).
        return R.filter_by_trial(super().get_queryset(request), request.user, "trial", roles=self.view_roles)

    def has_view_permission(self, request, obj=None):
        return has_any_role(request.user, self.view_roles)

    def has_add_permission(self, request, *args):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields if f.name != "payload"]
