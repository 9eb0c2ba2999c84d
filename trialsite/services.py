"""Writes of the shared models: sites and role grants."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.db import transaction

from .models import RoleGrant, Site, Trial
from .roles import ALL_ROLES, SITE_SCOPED_ROLES


@transaction.atomic
def site_create(*, code: str, name: str, timezone: str, trials: list[Trial] | None = None) -> Site:
    site, _ = Site.objects.get_or_create(code=code, defaults={"name": name, "timezone": timezone})
    site.full_clean()
    for trial in trials or []:
        trial.sites.add(site)
    return site


@transaction.atomic
def role_grant(*, user, role: str, site: Site | None = None) -> RoleGrant:
    """Give `user` the role (at one site for site-scoped roles; everywhere when site is None)."""
    if role not in ALL_ROLES:
        raise ValidationError({"role": [f"Unknown role {role!r}; choose from {', '.join(ALL_ROLES)}."]})
    if site is not None and role not in SITE_SCOPED_ROLES:
        raise ValidationError({"site": [f"{role} is a trial-wide role; it is not granted per site."]})
    grant, _ = RoleGrant.objects.get_or_create(user=user, role=role, site=site)
    # get_or_create: a transactional test (live server, worker) flushes the groups the migration created.
    user.groups.add(Group.objects.get_or_create(name=role)[0])
    if not user.is_staff:
        user.is_staff = True
        user.save(update_fields=["is_staff"])
    return grant


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
