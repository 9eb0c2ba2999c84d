from django.contrib import admin

from .models import ProtocolVersion, RoleGrant, Site, Trial


@admin.register(Trial)
class TrialAdmin(admin.ModelAdmin):
    list_display = ["slug", "title", "created_at"]
    readonly_fields = ["uuid", "created_at"]
    filter_horizontal = ["sites"]

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(ProtocolVersion)
class ProtocolVersionAdmin(admin.ModelAdmin):
    """Protocol versions are immutable: loaded from YAML with `load_protocol`, never edited here."""

    list_display = ["trial", "version", "sha256", "loaded_at", "source_path"]
    list_select_related = ["trial"]
    exclude = ["definition", "source"]
    readonly_fields = ["trial", "version", "sha256", "source_path", "loaded_at", "loaded_by"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Site)
class SiteAdmin(admin.ModelAdmin):
    list_display = ["code", "name", "timezone"]
    readonly_fields = ["uuid"]

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(RoleGrant)
class RoleGrantAdmin(admin.ModelAdmin):
    list_display = ["user", "role", "site", "granted_at"]
    list_filter = ["role", "site"]
    list_select_related = ["user", "site"]
    autocomplete_fields = ["user"]
