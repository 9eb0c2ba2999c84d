"""Who viewed which participant's contact details, and why (append-only)."""

from __future__ import annotations

from django.contrib import admin

from trialsite import roles as R
from trialsite.admin_scoping import ScopedAdmin, site_filter

from .. import models as m
from .participants import SITE


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
