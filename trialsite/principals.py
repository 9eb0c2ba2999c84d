"""Who a signed-in user is, as far as the spine needs to know: a participant (a phone) or staff.

The spine does not import the apps: the participants app tells it how to find a user's participant, in its
AppConfig.ready() (`register_participant_lookup`). Fails closed: asked before anything is registered, it
raises instead of answering "staff". The app also says what to read with every bearer token, in the token
lookup's one statement (`register_token_join`: the phone's participant).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
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


@dataclass(frozen=True)
class TokenJoin:
    """What an app reads with every bearer token, in the token lookup's one statement (trialsite.api.auth).

    `models`: (model, table alias) pairs whose every column is selected; `sql`: their JOINs (outer joins: a staff
    token has no participant), where `{user_id}` stands for the token's user id; `extra`: further select
    expressions. `load(user, instances, extra_values)` turns the row's part into what views read, as
    `request.token_joined[name]` (instances: one per model, None where the join found no row).
    """

    name: str
    models: tuple[tuple[Any, str], ...]
    sql: str
    extra: tuple[str, ...]
    load: Callable[[Any, list, tuple], Any]


_token_joins: dict[str, TokenJoin] = {}


def register_token_join(join: TokenJoin) -> None:
    """Called in an AppConfig.ready(), before the first request (the statement is built once per process)."""
    _token_joins[join.name] = join


def token_joins() -> tuple[TokenJoin, ...]:
    return tuple(_token_joins.values())
