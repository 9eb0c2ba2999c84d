"""Base classes for every staff admin: site scoping, role-based permissions, blinding, reasons for edits.

- Rows: `get_queryset` narrows to the user's trials and sites (trialsite.roles.filter_by_site, or
  filter_by_trial for trial-level models declaring `trial_field`); the change page, history, autocomplete,
  actions and related-object dropdowns all go through it.
- Decisions about clinical actions are the services' (trialsite.policy); admins only hide what the same
  policy would refuse.
- Permissions: granted in code from the user's roles (`view_roles`, `add_roles`, `change_roles`);
  nothing clinical is ever deleted from the admin.
- Blinding: models and fields the apps register (register_arm_bearing) (or declared on the admin with
  `arm_bearing` / `blinded_fields`) are shown only to the unblinded statistician. Superusers are blinded too.
- Submitted clinical data: changes need a reason (stored in the audit context); locked rows are read-only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.db.models import F

from . import policy
from . import roles as R
from .audit import audit_context, require_reason

STAFF_ROLES = R.ALL_ROLES
# Roles that read every participant's data (blinded): the brief's "monitors read everything".
READ_ALL_ROLES = (R.TRIAL_MANAGER, R.DATA_MANAGER, R.MONITOR, R.STATISTICIAN, R.UNBLINDED_STATISTICIAN)
CLINICAL_WRITE_ROLES = (R.COORDINATOR, R.TRIAL_MANAGER)
SAFETY_ROLES = (R.SAFETY_PHYSICIAN, R.TRIAL_MANAGER)


_arm_bearing_sources: dict[str, Callable[[], Any]] = {}
ROW_TRIAL = "_arms_row_trial"  # annotation: the trial of each row of a list with per-row arm columns


_arm_trial_paths: dict[str, Callable[[], Any]] = {}


def register_arm_bearing(app: str, source: Callable[[], Any], trial_paths: Callable[[], Any] | None = None) -> None:
    """An app's arm-bearing data, registered in its AppConfig.ready(): `source()` returns its registry (read
    at every call, so the app's own module stays the one place it is written); `trial_paths()` maps its model
    labels to the lookup path from a row to its trial (how a page mixing trials asks about each row's trial)."""
    _arm_bearing_sources[app] = source
    if trial_paths is not None:
        _arm_trial_paths[app] = trial_paths


def arm_trial_paths() -> dict[str, str]:
    """model label (lower case) → lookup path from a row to its trial, for the arm-bearing models that name one.
    A model without a path is shown on a page mixing trials to nobody (fails closed)."""
    result: dict[str, str] = {}
    for source in _arm_trial_paths.values():
        result.update({label.lower(): path for label, path in source().items()})
    return result


def blinding_registry() -> dict[str, set[str] | None]:
    """model label (lower case) → arm-bearing field names, or None when the whole model is arm-bearing.

    Reads what the apps registered (register_arm_bearing; participants.blinding.REGISTRY); each registry may
    map models (or labels) to field lists, or list whole models. Fails closed: no registered source, or
    an empty registry, raises (no admin page renders), never "nothing is arm-bearing".
    """
    from django.core.exceptions import ImproperlyConfigured

    if not _arm_bearing_sources:
        raise ImproperlyConfigured(
            "No blinding registry is registered (trialsite.admin_scoping.register_arm_bearing, called by the "
            "participants app's AppConfig.ready())."
        )
    result: dict[str, set[str] | None] = {}
    for app, source in _arm_bearing_sources.items():
        registry = source()
        if not registry:
            raise ImproperlyConfigured(f"The blinding registry of {app} is missing or empty.")
        items = registry.items() if isinstance(registry, dict) else ((entry, None) for entry in registry)
        for key, fields in items:
            label = key if isinstance(key, str) else key._meta.label
            if fields is not None and not isinstance(fields, (list, tuple, set, frozenset)):
                fields = getattr(fields, "fields", None)
            result[label.lower()] = None if not fields or "*" in fields else set(fields)
    return result


def arms_trial_ids(user) -> set[int]:
    """The trials whose arms the user may see: the policy (`ARMS_VIEW`) asked about each trial of their grants
    (superusers are blinded too: the action needs a real grant)."""
    candidates = {g.trial_id for g in R.grants_of(user)}
    return {pk for pk in candidates if policy.can(user, policy.ARMS_VIEW, policy.Where(pk))}


def user_is_unblinded(user, trial=None) -> bool:
    """May the user see arms in `trial` (a trial, its pk, or a record the policy can place)? Without a trial:
    in at least one trial (whether an arm-only page is listed at all; its rows are narrowed per trial)."""
    if trial is None:
        return bool(arms_trial_ids(user))
    return policy.can(user, policy.ARMS_VIEW, policy.Where(trial) if isinstance(trial, int) else trial)


def arms_in_every_reached_trial(user) -> bool:
    """Arms may be shown on a page mixing trials only when the user may see them in every trial they reach."""
    arms = arms_trial_ids(user)
    if not arms:
        return False
    reached = R.trial_ids(user)
    if reached is None:  # a superuser reaches every trial
        from .models import Trial

        reached = set(Trial.objects.values_list("pk", flat=True))
    return reached <= arms


BLINDED = "blinded"  # what a row of a trial where the user is blinded shows in an arm column


class Arms(NamedTuple):
    """Where the request's user may see arms: `trials` (the policy, `ARMS_VIEW`, asked once per trial of their
    grants) and `every` (true when that is every trial they reach: a page mixing trials shows arms as is)."""

    trials: frozenset[int]
    every: bool

    @property
    def mixed(self) -> bool:
        """Unblinded in some trial they reach, blinded in another: arm columns are shown row by row."""
        return bool(self.trials) and not self.every

    def shows(self, trial_id) -> bool:
        return trial_id in self.trials


def user_arms(user) -> Arms:
    """Where the user may see arms (the policy asked once per trial of their grants, which are cached: no query but
    a superuser's list of trials)."""
    trials = frozenset(arms_trial_ids(user))
    return Arms(trials, bool(trials) and arms_in_every_reached_trial(user))


def arms_of(request) -> Arms:
    """The request's `Arms`, asked of the policy once per request (not per row)."""
    cached = getattr(request, "_trialsite_arms", None)
    if cached is None:
        cached = request._trialsite_arms = user_arms(request.user)
    return cached


def per_row_arm_column(name: str, label: str, value: Callable[[Any], Any], arms: Arms, trial_attr: str):
    """A list column showing `value(row)` for rows of a trial where the user may see arms, BLINDED for the others.
    Not sortable (no ordering), so a mixed list is never ordered by an arm."""

    def column(obj):
        return value(obj) if arms.shows(getattr(obj, trial_attr, None)) else BLINDED

    column.short_description = label
    column.__name__ = name  # the cell keeps its class (field-<name>)
    return column


def has_any_role(user, roles) -> bool:
    if not getattr(user, "is_active", False) or not getattr(user, "is_staff", False):
        return False
    if getattr(user, "is_superuser", False):
        return True
    return R.has_role(user, *roles)


class ScopedSiteFilter(admin.SimpleListFilter):
    """Site filter listing only the sites the user reaches."""

    title = "site"
    parameter_name = "site"
    site_path = "site"

    def lookups(self, request, model_admin):
        from .models import Site

        return [(str(s.pk), s.code) for s in R.filter_by_site(Site.objects.order_by("code"), request.user, "pk")]

    def queryset(self, request, queryset):
        value = self.value()
        if value and value.isdigit():
            return queryset.filter(**{f"{self.site_path}_id": int(value)})
        return queryset


def site_filter(site_path: str) -> type[ScopedSiteFilter]:
    return type("ScopedSiteFilter_" + site_path.replace("__", "_"), (ScopedSiteFilter,), {"site_path": site_path})


class _PermissionMixin:
    """Role-based permissions and site scoping shared by ModelAdmins and inlines."""

    site_field: str | None = None  # lookup path from this model to trialsite.Site; None: not site-scoped
    trial_field: str | None = None  # for trial-level models without a site: lookup path to trialsite.Trial
    view_roles: tuple[str, ...] = STAFF_ROLES
    add_roles: tuple[str, ...] = ()
    change_roles: tuple[str, ...] = ()
    arm_bearing: bool = False  # the whole model reveals arms
    blinded_fields: tuple[str, ...] = ()  # fields that reveal arms or dose-unit contents
    # Arm-only admins (participants.admin.allocation): rows only of the trials whose arms the user may see.
    arms_rows_only: bool = False

    def _whole_arm_bearing(self) -> bool:
        label = self.model._meta.label.lower()
        registry = blinding_registry()
        return self.arm_bearing or (label in registry and registry[label] is None)

    def _blinded_out(self, request) -> bool:
        return (self._whole_arm_bearing() or self.arms_rows_only) and not user_is_unblinded(request.user)

    def arms_trial_path(self) -> str | None:
        """Lookup path from this model to its trial (trial_field, or the site path's participant's trial)."""
        if self.trial_field:
            return self.trial_field
        if self.site_field and self.site_field.endswith("site"):
            return self.site_field[: -len("site")] + "trial"
        return None

    def _trial_of(self, obj):
        path = self.arms_trial_path()
        if path == "pk":
            return obj.pk
        if path is None:
            return None
        return self.model._default_manager.filter(pk=obj.pk).values_list(path, flat=True).first()

    def hidden_fields(self, request, obj=None) -> set[str]:
        """Arm-bearing fields, unless the policy lets the user see arms in the trial of `obj` (a change page), in
        every trial of an arm-only admin's rows (narrowed to those trials), or in every trial they reach (a list
        mixing trials)."""
        user = request.user
        if obj is not None and obj.pk is not None:
            trial = self._trial_of(obj)
            if trial is not None and user_is_unblinded(user, trial):
                return set()
        elif self.arms_rows_only and arms_of(request).trials:
            return set()
        elif arms_of(request).every:
            return set()
        return self.arm_fields()

    def arm_fields(self) -> set[str]:
        """This admin's arm-bearing fields (its own `blinded_fields` and the blinding registry's)."""
        fields = set(self.blinded_fields)
        fields |= blinding_registry().get(self.model._meta.label.lower()) or set()
        return fields

    def per_row_arms(self, request) -> set[str]:
        """Arm fields shown row by row on this list: the user may see arms in some trial it mixes, not in all (their
        filters, search and ordering are dropped: they would group the other trials' rows by arm)."""
        if self.arms_rows_only or not arms_of(request).mixed or not self.arms_trial_path():
            return set()
        return self.arm_fields()

    def scope_queryset(self, request, queryset):
        if self._blinded_out(request):
            return queryset.none()
        if self._whole_arm_bearing() or self.arms_rows_only:
            path = self.arms_trial_path()
            queryset = queryset.filter(**{f"{path}__in": arms_trial_ids(request.user)}) if path else queryset.none()
        if self.site_field:
            return R.filter_by_site(queryset, request.user, self.site_field)
        if self.trial_field:
            return R.filter_by_trial(queryset, request.user, self.trial_field)
        return queryset

    def is_locked(self, obj) -> bool:
        return bool(obj is not None and getattr(obj, "locked", False))

    def has_view_permission(self, request, obj=None):
        return not self._blinded_out(request) and has_any_role(request.user, self.view_roles + self.change_roles)

    def has_add_permission(self, request, *args):
        return not self._blinded_out(request) and bool(self.add_roles) and has_any_role(request.user, self.add_roles)

    def has_change_permission(self, request, obj=None):
        if self._blinded_out(request) or self.is_locked(obj) or not self.change_roles:
            return False
        return has_any_role(request.user, self.change_roles)

    def has_delete_permission(self, request, obj=None):
        return False  # nothing clinical is deleted; withdrawal and cancellation are states

    def has_module_permission(self, request):
        return self.has_view_permission(request)


class ScopedAdmin(_PermissionMixin, admin.ModelAdmin):
    """Base ModelAdmin: every admin in trialsite derives from it."""

    list_per_page = 50
    show_full_result_count = False  # one COUNT less per changelist

    def get_queryset(self, request):
        queryset = self.scope_queryset(request, super().get_queryset(request))
        if self.per_row_arms(request):  # each row's trial, for its arm columns (no query per row)
            queryset = queryset.annotate(**{ROW_TRIAL: F(self.arms_trial_path())})
        return queryset

    def get_fields(self, request, obj=None):
        hidden = self.hidden_fields(request, obj)
        return [f for f in super().get_fields(request, obj) if f not in hidden]

    def get_fieldsets(self, request, obj=None):
        hidden = self.hidden_fields(request, obj)
        fieldsets = super().get_fieldsets(request, obj)
        if not hidden:
            return fieldsets
        return [(name, {**opts, "fields": [f for f in opts["fields"] if f not in hidden]}) for name, opts in fieldsets]

    def get_list_display(self, request):
        hidden = self.hidden_fields(request)
        per_row = self.per_row_arms(request)
        return [
            self._arm_column(request, f) if isinstance(f, str) and f in per_row else f
            for f in super().get_list_display(request)
            if not (isinstance(f, str) and f in hidden and f not in per_row)
        ]

    def _arm_column(self, request, name: str):
        from django.contrib.admin.utils import label_for_field, lookup_field

        def value(obj):
            return lookup_field(name, obj, self)[2]

        label = label_for_field(name, self.model, self)
        return per_row_arm_column(name, label, value, arms_of(request), ROW_TRIAL)

    def get_ordering(self, request):
        hidden = self.hidden_fields(request)
        return [o for o in super().get_ordering(request) or () if o.lstrip("-").split("__")[0] not in hidden]

    def get_sortable_by(self, request):
        hidden = self.hidden_fields(request)
        return [f for f in super().get_sortable_by(request) if not (isinstance(f, str) and f in hidden)]

    def lookup_allowed(self, lookup, value, request=None):
        """No filtering by an arm field where the user is blinded in a trial the list may show (`?arm=…`)."""
        if request is not None and lookup.split("__")[0] in self.hidden_fields(request):
            return False
        return super().lookup_allowed(lookup, value, request)

    def get_list_filter(self, request):
        hidden = self.hidden_fields(request)
        return [f for f in super().get_list_filter(request) if not (isinstance(f, str) and f in hidden)]

    def get_search_fields(self, request):
        hidden = self.hidden_fields(request)
        return [f for f in super().get_search_fields(request) if f.split("__")[0] not in hidden]

    def get_exclude(self, request, obj=None):
        return list(super().get_exclude(request, obj) or []) + sorted(self.hidden_fields(request, obj))

    def get_readonly_fields(self, request, obj=None):
        hidden = self.hidden_fields(request, obj)
        return [f for f in super().get_readonly_fields(request, obj) if f not in hidden]

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        # Dropdowns and raw-id lookups offer only rows the user may reach.
        related = self.admin_site._registry.get(db_field.related_model)
        if isinstance(related, _PermissionMixin) and "queryset" not in kwargs:
            # Scoped like the related admin, without its changelist annotations.
            kwargs["queryset"] = related.scope_queryset(request, db_field.related_model._default_manager.all())
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


class ScopedTabularInline(_PermissionMixin, admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = True

    def get_queryset(self, request):
        return self.scope_queryset(request, super().get_queryset(request))

    def get_fields(self, request, obj=None):
        hidden = self.hidden_fields(request)
        return [f for f in super().get_fields(request, obj) if f not in hidden]

    def get_readonly_fields(self, request, obj=None):
        hidden = self.hidden_fields(request)
        return [f for f in super().get_readonly_fields(request, obj) if f not in hidden]


class ReadOnlyInline(ScopedTabularInline):
    """A read-only table of related rows on a change page."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def get_readonly_fields(self, request, obj=None):
        return [f for f in self.get_fields(request, obj)]


class ReasonForm(forms.ModelForm):
    change_reason = forms.CharField(
        label="Reason for the change",
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Required when changing submitted data; stored in the audit trail.",
    )

    def clean(self):
        cleaned = super().clean()
        if self.instance.pk is not None:
            try:
                cleaned["change_reason"] = require_reason(cleaned.get("change_reason"), field="change_reason")
            except ValidationError as exc:
                raise ValidationError({"change_reason": exc.message_dict["change_reason"]}) from None
        return cleaned


class ReasonRequiredAdmin(ScopedAdmin):
    """Changes of submitted clinical data need a reason; it lands in the audit trail (pghistory context)."""

    form = ReasonForm

    def get_fields(self, request, obj=None):
        fields = [f for f in super().get_fields(request, obj) if f != "change_reason"]
        if obj is not None and self.has_change_permission(request, obj):
            fields.append("change_reason")
        return fields

    def save_model(self, request, obj, form, change):
        reason = form.cleaned_data.get("change_reason") if change else None
        with audit_context(user=request.user, reason=reason or None):
            obj.full_clean()
            super().save_model(request, obj, form, change)
