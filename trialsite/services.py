"""Writes of the shared models: sites and role grants."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.db import transaction

from .models import RoleGrant, Site, Trial
from .roles import ALL_ROLES, SITE_SCOPED_ROLES, forget


@transaction.atomic
def site_create(*, code: str, name: str, timezone: str, trials: list[Trial] | None = None) -> Site:
    site, _ = Site.objects.get_or_create(code=code, defaults={"name": name, "timezone": timezone})
    site.full_clean()
    for trial in trials or []:
        trial.sites.add(site)
    return site


def _trial_for_grant(*, trial: Trial | None, site: Site | None) -> Trial:
    if trial is not None:
        return trial
    trials = list(Trial.objects.order_by("pk")[:2])
    if len(trials) == 1:
        return trials[0]
    if site is not None:
        site_trials = list(site.trials.order_by("pk")[:2])
        if len(site_trials) == 1:
            return site_trials[0]
    if not trials:
        raise ValidationError({"trial": ["There is no trial yet: load a protocol first (manage.py load_protocol)."]})
    raise ValidationError({"trial": ["There is more than one trial: name the trial (--trial SLUG)."]})


def _groups_derive(user) -> None:
    """The Django groups named after the roles mirror the user's grants (derived, never read for decisions)."""
    held = set(RoleGrant.objects.filter(user=user, trial__isnull=False).values_list("role", flat=True))
    groups = {g.name: g for g in Group.objects.filter(name__in=ALL_ROLES)}
    for role in ALL_ROLES:
        group = groups.get(role)
        if role in held:
            # get_or_create: a transactional test (live server, worker) flushes the groups the migration created.
            user.groups.add(group or Group.objects.get_or_create(name=role)[0])
        elif group is not None:
            user.groups.remove(group)


@transaction.atomic
def role_grant(*, user, role: str, trial: Trial | None = None, site: Site | None = None) -> RoleGrant:
    """Give `user` the role in `trial` (implied when the database holds one trial, or the site belongs to
    one), at one site for site-scoped roles or at all the trial's sites when site is None."""
    if role not in ALL_ROLES:
        raise ValidationError({"role": [f"Unknown role {role!r}; choose from {', '.join(ALL_ROLES)}."]})
    if site is not None and role not in SITE_SCOPED_ROLES:
        raise ValidationError({"site": [f"{role} is a trial-wide role; it is not granted per site."]})
    trial = _trial_for_grant(trial=trial, site=site)
    if site is not None and not trial.sites.filter(pk=site.pk).exists():
        raise ValidationError({"site": [f"{site.code} is not a site of {trial.slug}."]})
    grant, _ = RoleGrant.objects.get_or_create(user=user, role=role, trial=trial, site=site)
    _groups_derive(user)
    if not user.is_staff:
        user.is_staff = True
        user.save(update_fields=["is_staff"])
    forget(user)
    return grant


@transaction.atomic
def role_revoke(*, grant: RoleGrant) -> None:
    """Remove one grant; the user's derived groups follow."""
    user = grant.user
    grant.delete()
    _groups_derive(user)
    forget(user)


@transaction.atomic
def staff_user_create(*, username: str, password: str, email: str = "") -> object:
    User = get_user_model()
    user = User(username=username, email=email, is_staff=True)
    from django.contrib.auth.password_validation import validate_password

    validate_password(password, user)
    user.set_password(password)
    user.full_clean()
    user.save()
    return user
