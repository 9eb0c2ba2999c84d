"""Withdrawals, and (for the unblinded statistician only, read-only) the allocation tables."""

from __future__ import annotations

from django.contrib import admin

from trialsite import roles as R
from trialsite.admin_scoping import ScopedAdmin, site_filter, user_is_unblinded

from .. import models as m
from .participants import SITE

# --- withdrawals and (unblinded only) the allocation -----------------------------------------------------------


class WhoWithdrewFilter(admin.BooleanFieldListFilter):
    """by_participant, titled so the sidebar does not read "By by participant"."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.title = "participant's own request"


@admin.register(m.Withdrawal)
class WithdrawalAdmin(ScopedAdmin):
    site_field = SITE
    list_display = ["participant", "scope", "withdrawn_at", "by_participant", "recorded_by"]
    list_filter = [site_filter(SITE), "scope", ("by_participant", WhoWithdrewFilter)]
    list_select_related = ["participant", "recorded_by"]

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]


class UnblindedOnlyAdmin(ScopedAdmin):
    """Arm-bearing tables, read-only: listed to whoever the policy lets see arms (`ARMS_VIEW`) in some trial, with
    the rows of those trials only; a row of another trial is not found."""

    view_roles = (R.UNBLINDED_STATISTICIAN,)
    arms_rows_only = True

    def has_view_permission(self, request, obj=None):
        if obj is None:
            return user_is_unblinded(request.user)
        return user_is_unblinded(request.user, self._trial_of(obj))

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]


@admin.register(m.Arm)
class ArmAdmin(UnblindedOnlyAdmin):
    arm_bearing = True
    trial_field = "trial"
    list_display = ["trial", "code", "name", "ratio"]


@admin.register(m.AllocationList)
class AllocationListAdmin(UnblindedOnlyAdmin):
    trial_field = "trial"
    list_display = ["trial", "source", "sha256", "created_at"]


@admin.register(m.AllocationSlot)
class AllocationSlotAdmin(UnblindedOnlyAdmin):
    trial_field = "allocation_list__trial"
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
    trial_field = "slot__allocation_list__trial"
    list_display = ["code", "number", "slot"]
    list_select_related = ["slot"]
    search_fields = ["code"]
