"""Bearer tokens (hashed, expiring, revocable) for participants' phones and staff scripts.

Every request with a token runs one statement (`token_lookup`), prepared once per database connection
(trialsite.compiled_query.PreparedStatement): the token by the hash of its key, live (not revoked, not expired)
and of an active user, with that user, with what the apps read with every token (the participants app: the
phone's participant, trial, site and consent rows, see `principals.register_token_join`), and the refresh of the
token's `last_used_at` when it is older than `LAST_USED_REFRESH` (a data-modifying CTE of the same statement).
Nothing about a token or a user is cached: a token revoked or expired, or a user deactivated, is refused on the
very next request.
"""

from __future__ import annotations

import inspect
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache

from django.contrib.auth import get_user_model
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import Model
from django.db.models.base import ModelState
from django.db.models.fields.related_descriptors import ForeignKeyDeferredAttribute
from django.db.models.query_utils import DeferredAttribute
from django.db.models.signals import post_init, pre_init
from django.utils import timezone
from rest_framework import authentication, exceptions

from trialsite import audit, principals
from trialsite.compiled_query import PreparedStatement
from trialsite.models import ApiToken

# How stale `last_used_at` may get: the lookup writes it only when older (at most one write a minute per token,
# not one per request). It tells staff when a phone was last seen; nothing decides on it.
LAST_USED_REFRESH = timedelta(minutes=1)


def token_issue(*, user, kind: str, ttl: timedelta, device: dict | None = None) -> tuple[str, ApiToken]:
    """Create a token; returns the secret (shown once) and the stored row (which keeps only its hash)."""
    key = secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        user=user,
        kind=kind,
        key_hash=ApiToken.hash_key(key),
        expires_at=timezone.now() + ttl,
        device=device or {},
    )
    return key, token


def token_revoke(*, token: ApiToken) -> None:
    ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())


@dataclass
class TokenLookup:
    """A live token, its user (cached on `token.user`) and what the registered joins read with it."""

    token: ApiToken
    user: object
    joined: dict  # join name → what its `load` made of the row (None when the join found nothing)


class _Columns:
    """Every concrete column of a model, read from a row by position and turned into an instance the way the ORM's
    own iterator does (its converters, `Model.from_db`). The instance is made as `Model.__init__` would make it
    from positional values (its attributes, `_state`) without walking the fields one `setattr` at a time, where
    nothing could tell the difference: the model keeps Django's own `__init__` and `from_db`, no
    pre_init/post_init receiver listens to it, and no field's attribute has a descriptor that does more than store
    the value. Otherwise `Model.from_db` builds it. (The row's timestamps are decoded by the driver's own loader:
    trialsite.compiled_query.PreparedStatement.)"""

    def __init__(self, model, alias: str, connection, start: int):
        self.model = model
        fields = model._meta.concrete_fields
        self.attnames = [f.attname for f in fields]
        self.sql = [f"{alias}.{connection.ops.quote_name(f.column)}" for f in fields]
        converters = []
        for i, f in enumerate(fields):
            col = f.get_col(alias)
            fns = connection.ops.get_db_converters(col) + col.get_db_converters(connection)
            if fns:
                converters.append((i, tuple(fns), col))
        self.slice = slice(start, start + len(fields))
        self.converters = tuple(converters)
        self.pk_index = self.attnames.index(model._meta.pk.attname)
        self.plain = _plainly_made(model)

    def load(self, row: tuple, connection):
        values = row[self.slice]
        if values[self.pk_index] is None:
            return None  # an outer join that found nothing
        if self.converters:
            values = list(values)
            for i, fns, col in self.converters:
                value = values[i]
                for fn in fns:
                    value = fn(value, col, connection)
                values[i] = value
        if not self.plain:
            return self.model.from_db(DEFAULT_DB_ALIAS, self.attnames, values)
        instance = self.model.__new__(self.model)
        state = instance._state = ModelState()
        state.adding, state.db = False, DEFAULT_DB_ALIAS
        instance.__dict__.update(zip(self.attnames, values, strict=True))
        return instance


# Descriptors that only store what is assigned to a fresh instance (a foreign key's id attribute also forgets a
# cached related object, which a fresh instance does not have).
_STORING = (DeferredAttribute, ForeignKeyDeferredAttribute)


def _plainly_made(model) -> bool:
    if model.__init__ is not Model.__init__ or model.from_db.__func__ is not Model.from_db.__func__:
        return False
    if pre_init.has_listeners(model) or post_init.has_listeners(model):
        return False
    for f in model._meta.concrete_fields:
        descriptor = inspect.getattr_static(model, f.attname, None)
        if hasattr(type(descriptor), "__set__") and type(descriptor) not in _STORING:
            return False
    return True


@dataclass(frozen=True)
class _Statement:
    prepared: PreparedStatement
    token: _Columns
    user: _Columns
    joins: tuple  # (TokenJoin, its models' _Columns, the slice of its extra columns)


@cache
def _statement() -> _Statement:
    """Built once per process, after the apps registered their joins (AppConfig.ready)."""
    connection = connections[DEFAULT_DB_ALIAS]
    q = connection.ops.quote_name
    user_model = get_user_model()
    token = _Columns(ApiToken, "t", connection, 0)
    user = _Columns(user_model, "u", connection, len(token.attnames))
    # The CTE's columns are named c0, c1, ... (a token and a user both have an `id`).
    inner = [*token.sql, *user.sql]
    names = [f"c{i}" for i in range(len(inner))]
    cte_of = dict(zip(inner, names, strict=True))
    f = ApiToken._meta.get_field

    def token_column(name: str) -> str:
        return f"token.{cte_of['t.' + q(f(name).column)]}"

    user_id, token_id, last_used = token_column("user"), token_column("id"), token_column("last_used_at")
    position, select, joins_sql, joins = len(inner), list(names), [], []
    for join in principals.token_joins():
        columns = []
        for model, alias in join.models:
            c = _Columns(model, alias, connection, position)
            columns.append(c)
            select += c.sql
            position += len(c.sql)
        extra = slice(position, position + len(join.extra))
        select += list(join.extra)
        position += len(join.extra)
        joins_sql.append(join.sql.format(user_id=user_id))
        joins.append((join, tuple(columns), extra))
    table = q(ApiToken._meta.db_table)
    sql = f"""
WITH token AS (
    SELECT {", ".join(f"{expr} AS {name}" for expr, name in cte_of.items())}
      FROM {table} t
      JOIN {q(user_model._meta.db_table)} u ON u.{q(user_model._meta.pk.column)} = t.{q(f("user").column)}
     WHERE t.{q(f("key_hash").column)} = %s AND t.{q(f("revoked_at").column)} IS NULL
       AND t.{q(f("expires_at").column)} > %s AND u.{q(user_model._meta.get_field("is_active").column)}
), touched AS (
    UPDATE {table} SET {q(f("last_used_at").column)} = %s
      FROM token
     WHERE {table}.{q(ApiToken._meta.pk.column)} = {token_id} AND ({last_used} IS NULL OR {last_used} < %s)
)
SELECT {", ".join(select)}
  FROM token
{chr(10).join(joins_sql)}
"""  # noqa: S608 - the models' own table and column names, quoted; values are parameters
    return _Statement(prepared=PreparedStatement(sql), token=token, user=user, joins=tuple(joins))


def token_lookup(*, key: str, now: datetime) -> TokenLookup | None:
    """The live token of this key (None: unknown, revoked, expired, or of an inactive user), read with its user and
    the registered joins; refreshes its `last_used_at` to `now` when that is older than LAST_USED_REFRESH. One
    statement, on the primary (it writes)."""
    statement = _statement()
    connection = connections[DEFAULT_DB_ALIAS]
    rows = statement.prepared.rows(connection, [ApiToken.hash_key(key), now, now, now - LAST_USED_REFRESH])
    if not rows:
        return None
    row = rows[0]  # key_hash is unique, the joins are to-one
    token = statement.token.load(row, connection)
    user = statement.user.load(row, connection)
    ApiToken.user.field.set_cached_value(token, user)
    joined = {}
    for join, columns, extra in statement.joins:
        joined[join.name] = join.load(user, [c.load(row, connection) for c in columns], row[extra])
    return TokenLookup(token=token, user=user, joined=joined)


class BearerTokenAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Invalid Authorization header.")
        try:
            key = header[1].decode()
        except UnicodeError as exc:
            raise exceptions.AuthenticationFailed("Invalid token.") from exc
        found = token_lookup(key=key, now=timezone.now())
        if found is None:
            raise exceptions.AuthenticationFailed("Invalid or expired token.")
        # What the joins read (e.g. the phone's participant), for the permission classes and views.
        request.token_joined = found.joined
        audit.annotate(user=found.user.pk)
        return found.user, found.token

    def authenticate_header(self, request):
        return 'Bearer realm="api"'
