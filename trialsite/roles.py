"""Who holds which role, in which trial, at which sites. The single source of truth is `RoleGrant`.

A grant names its trial (and, for the site-scoped roles, optionally one site: no site means every site of
that trial). A grant without a trial (left by the trial-scoping migration when it could not tell which
trial was meant) grants nothing until it is re-issued with `--trial`. Django groups of the same names
exist but are derived from the grants (trialsite.services.role_grant / role_revoke) and never read here.

The small API every interface uses:
- `roles_of(user, trial=None)`, `has_role(user, *roles, trial=None)`, `is_unblinded(user, trial=None)`
- `trial_ids(user, roles=None)`, `site_ids(user, roles=None, trial=None)`, `can_reach_site(...)`
- `filter_by_site(queryset, user, site_field, roles=None)`: narrows rows to the user's (trial, site) scope
- `filter_by_trial(queryset, user, trial_field, roles=None)`: narrows trial-level rows

Superusers reach every trial and site (they are still blinded: arms need the unblinded role).
Decisions ("may this user do X to that record?") live in trialsite.policy, which reads this module.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from django.db.models import Q

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

# Roles granted per site; a grant without a site means "all sites of the trial". The others are trial-wide.
SITE_SCOPED_ROLES = frozenset({COORDINATOR, SAFETY_PHYSICIAN})
# The only role that may ever read arm or dose-unit contents (besides an approved emergency unblinding).
UNBLINDED_ROLES = frozenset({UNBLINDED_STATISTICIAN})
STATISTICIAN_ROLES = frozenset({STATISTICIAN, UNBLINDED_STATISTICIAN})


class Grant(NamedTuple):
    role: str
    trial_id: int
    site_id: int | None  # None: every site of the trial


def _pk(obj) -> int | None:
    return obj if obj is None or isinstance(obj, int) else obj.pk


def grants_of(user) -> list[Grant]:
    """The user's effective grants (cached on the user object for the request)."""
    if not getattr(user, "is_authenticated", False) or not getattr(user, "is_active", True):
        return []
    cache = getattr(user, "_trialsite_grants", None)
    if cache is None:
        from .models import RoleGrant

        rows = RoleGrant.objects.filter(user=user, trial__isnull=False).values_list("role", "trial_id", "site_id")
        cache = [Grant(*row) for row in rows]
        user._trialsite_grants = cache
    return cache


def forget(user) -> None:
    """Drop the cached grants (after a grant or revocation within the same request or test)."""
    if hasattr(user, "_trialsite_grants"):
        del user._trialsite_grants


def _matching(user, roles: Iterable[str] | None = None, trial=None) -> list[Grant]:
    wanted = set(roles) if roles is not None else None
    trial_id = _pk(trial)
    return [
        g
        for g in grants_of(user)
        if (wanted is None or g.role in wanted) and (trial_id is None or g.trial_id == trial_id)
    ]


def roles_of(user, trial=None) -> set[str]:
    return {g.role for g in _matching(user, trial=trial)}


def has_role(user, *roles: str, trial=None) -> bool:
    """True when the user holds one of `roles` (in `trial`, or in any trial when None)."""
    return bool(_matching(user, roles, trial))


def is_unblinded(user, trial=None) -> bool:
    """True only for the unblinded statistician (of `trial`). Superusers are NOT unblinded by default."""
    return has_role(user, *UNBLINDED_ROLES, trial=trial)


def trial_ids(user, roles: Iterable[str] | None = None) -> set[int] | None:
    """Ids of the trials where the user holds one of `roles` (any role when None); None for a superuser."""
    if getattr(user, "is_superuser", False):
        return None
    return {g.trial_id for g in _matching(user, roles)}


def site_ids(user, roles: Iterable[str] | None = None, trial=None) -> set[int] | None:
    """Site ids the user may reach through `roles` (any role when None), within `trial` when given.

    Returns None for "every site" (a trial-wide role, or a site-scoped role granted without a site, or a
    superuser); an empty set when the user reaches no site at all. Without `trial`, "every site" is still
    bounded by the user's trials: querysets use filter_by_site, which scopes by trial as well.
    """
    if getattr(user, "is_superuser", False):
        return None
    ids: set[int] = set()
    for g in _matching(user, roles, trial):
        if g.role not in SITE_SCOPED_ROLES or g.site_id is None:
            return None
        ids.add(g.site_id)
    return ids


def can_reach(user, *, trial, site=None, roles: Iterable[str] | None = None) -> bool:
    """May the user reach (trial, site) through one of `roles`? The one test every scope check uses."""
    if getattr(user, "is_superuser", False):
        return True
    site_id = _pk(site)
    for g in _matching(user, roles, trial):
        if g.role not in SITE_SCOPED_ROLES or g.site_id is None or g.site_id == site_id:
            return True
    return False


def can_reach_site(user, site_id: int, roles: Iterable[str] | None = None, trial=None) -> bool:
    if trial is not None:
        return can_reach(user, trial=trial, site=site_id, roles=roles)
    ids = site_ids(user, roles)
    return ids is None or site_id in ids


def _trial_path(site_field: str) -> str:
    if site_field == "pk":
        return "trials"  # Site rows: the trials the site belongs to
    if site_field == "site":
        return "trial"
    if site_field.endswith("__site"):
        return site_field[: -len("site")] + "trial"
    raise ValueError(f"cannot derive the trial path from {site_field!r}; pass trial_field")


def scope_q(user, *, site_field: str | None, trial_field: str, roles: Iterable[str] | None = None) -> Q | None:
    """A Q narrowing rows to the user's grants; None means no narrowing (superuser)."""
    if getattr(user, "is_superuser", False):
        return None
    q = Q(pk__in=[])
    for g in _matching(user, roles):
        part = Q(**{trial_field: g.trial_id})
        if site_field and g.role in SITE_SCOPED_ROLES and g.site_id is not None:
            part &= Q(**{site_field: g.site_id})
        q |= part
    return q


def filter_by_site(
    queryset, user, site_field: str = "site", roles: Iterable[str] | None = None, trial_field: str | None = None
):
    """Narrow a queryset to the (trial, site) pairs the user reaches; staff with no grant see nothing."""
    if not getattr(user, "is_authenticated", False):
        return queryset.none()
    q = scope_q(user, site_field=site_field, trial_field=trial_field or _trial_path(site_field), roles=roles)
    if q is None:
        return queryset
    return queryset.filter(q).distinct() if site_field == "pk" else queryset.filter(q)


def filter_by_trial(queryset, user, trial_field: str = "trial", roles: Iterable[str] | None = None):
    """Narrow trial-level rows (protocols, allocation lists, exports) to the user's trials."""
    if not getattr(user, "is_authenticated", False):
        return queryset.none()
    ids = trial_ids(user, roles)
    if ids is None:
        return queryset
    return queryset.filter(**{f"{trial_field}__in": ids})


def holders_emails(role_names: Iterable[str], *, trial, site=None) -> list[str]:
    """E-mail addresses of active staff holding one of the roles in `trial` (for site-scoped roles: at `site`,
    or at all the trial's sites). Every notification recipient list is built here, so it is trial-scoped."""
    from .models import RoleGrant

    q = Q(role__in=list(role_names), trial_id=_pk(trial), user__is_active=True)
    site_q = Q(site__isnull=True) | ~Q(role__in=sorted(SITE_SCOPED_ROLES))
    if site is not None:
        site_q |= Q(site_id=_pk(site))
    emails = RoleGrant.objects.filter(q & site_q).exclude(user__email="").values_list("user__email", flat=True)
    return sorted(set(emails))
