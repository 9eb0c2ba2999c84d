"""Who a signed-in user is, as far as the spine needs to know: a participant (a phone) or staff.

The spine does not import the apps: the participants app tells it how to find a user's participant, in its
AppConfig.ready() (`register_participant_lookup`). Fails closed: asked before anything is registered, it
raises instead of answering "staff".
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.core.exceptions import ImproperlyConfigured

_lookup: dict[str, Callable[[Any], Any]] = {}


def register_participant_lookup(*, participant_for_user: Callable[[Any], Any], is_participant: Callable[[Any], bool]):
    """participant_for_user(user) -> the participant or None; is_participant(user) -> bool (one cheap query)."""
    _lookup["participant_for_user"] = participant_for_user
    _lookup["is_participant"] = is_participant


def _get(name: str) -> Callable:
    fn = _lookup.get(name)
    if fn is None:
        raise ImproperlyConfigured(
            "No participant lookup is registered (trialsite.principals.register_participant_lookup, called by "
            "the participants app's AppConfig.ready())."
        )
    return fn


def participant_for_user(user):
    """The participant a user (a phone's token) is, or None for staff and anonymous users."""
    return _get("participant_for_user")(user)


def is_participant(user) -> bool:
    if user is None or not getattr(user, "is_authenticated", False) or not getattr(user, "pk", None):
        return False
    return bool(_get("is_participant")(user))
