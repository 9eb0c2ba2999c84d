"""factory-boy factories of the spine: staff users holding roles (granted through trialsite.services.role_grant)."""

from __future__ import annotations

import factory
from django.contrib.auth import get_user_model

STAFF_PASSWORD = "correct-horse-battery-9"


class StaffFactory(factory.django.DjangoModelFactory):
    """StaffFactory(roles=["coordinator"], site=ldn) → an active staff user holding those roles (at that site for
    site-scoped roles), with a usable password (STAFF_PASSWORD unless given)."""

    class Meta:
        model = get_user_model()
        skip_postgeneration_save = True

    roles: tuple[str, ...] = ()
    site = None
    username = factory.Sequence(lambda n: f"staff{n}")
    email = factory.LazyAttribute(lambda o: f"{o.username}@example.org")
    password = STAFF_PASSWORD
    is_staff = True

    @classmethod
    def _create(cls, model_class, *, roles=(), site=None, password=STAFF_PASSWORD, **kwargs):
        from trialsite.services import role_grant

        user = model_class.objects.create_user(password=password, **kwargs)
        for role in roles:
            role_grant(user=user, role=role, site=site)
        return user
