"""Roles are Django groups (created by a migration); site-scoped roles are granted per site (RoleGrant).

This module answers "who may do what where"; every queryset that staff reach is narrowed through it.
"""

from __future__ import annotations

from collections.abc import Iterable

COORDINATOR = "coordinator"
TRIAL_MANAGER = "trial_manager"
SAFETY_PHYSICIAN = "safety_physician"
DATA_MANAGER = "data_manager"
MONITOR = "monitor"
STATISTICIAN = "statistician"
UNBLINDED_STATISTICIAN = "unblinded_statistician"

ALL_ROLES = (
    COORDINATOR,
    TRIAL_MANAGER,
    SAFETY_PHYSICIAN,
    DATA_MANAGER,
    MONITOR,
    STATISTICIAN,
    UNBLINDED_STATISTICIAN,
)
ROLE_CHOICES = [(r, r.replace("_", " ")) for r in ALL_ROLES]

# Roles granted per site; a grant without a site means "all sites". The others are trial-wide.
SITE_SCOPED_ROLES = frozenset({COORDINATOR, SAFETY_PHYSICIAN})
# The only role that may ever read arm or dose-unit contents (besides an approved emergency unblinding).
UNBLINDED_ROLES = frozenset({UNBLINDED_STATISTICIAN})
STATISTICIAN_ROLES = frozenset({STATISTICIAN, UNBLINDED_STATISTICIAN})


def _grants(user):
    if not getattr(user, "is_authenticated", False):
        return []
    cache = getattr(user, "_trialsite_grants", None)
    if cache is None:
        from .models import RoleGrant

        cache = list(RoleGrant.objects.filter(user=user).values_list("role", "site_id"))
        user._trialsite_grants = cache
    return cache


def roles_of(user) -> set[str]:
    return {role for role, _ in _grants(user)}


def has_role(user, *roles: str) -> bool:
    return bool(roles_of(user) & set(roles))


def is_unblinded(user) -> bool:
    """True only for the unblinded statistician. Superusers are NOT unblinded by default."""
    return has_role(user, *UNBLINDED_ROLES)


def site_ids(user, roles: Iterable[str] | None = None) -> set[int] | None:
    """Site ids the user may reach through `roles` (any role when None).

    Returns None for "every site" (a trial-wide role, or a site-scoped role granted without a site, or a
    superuser); an empty set when the user reaches no site at all.
    """
    if getattr(user, "is_superuser", False):
        return None
    wanted = set(roles) if roles is not None else None
    ids: set[int] = set()
    for role, site_id in _grants(user):
        if wanted is not None and role not in wanted:
            continue
        if role not in SITE_SCOPED_ROLES or site_id is None:
            return None
        ids.add(site_id)
    return ids


def can_reach_site(user, site_id: int, roles: Iterable[str] | None = None) -> bool:
    ids = site_ids(user, roles)
    return ids is None or site_id in ids


def filter_by_site(queryset, user, site_field: str = "site", roles: Iterable[str] | None = None):
    """Narrow a queryset to the sites the user reaches; staff with no grant see nothing."""
    if not getattr(user, "is_authenticated", False):
        return queryset.none()
    if not getattr(user, "is_superuser", False) and not _grants(user):
        return queryset.none()
    ids = site_ids(user, roles)
    if ids is None:
        return queryset
    return queryset.filter(**{f"{site_field}__in": ids})
