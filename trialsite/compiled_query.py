"""Querysets compiled to SQL once per process, then run with each call's values: the phone API's fixed lookups
(the bearer token with its user and participant; the consent documents with a participant's signatures) pay
for the database round trip and for turning the row into model instances, not for Django's SQL compiler
building the same joins on every request (issue 14: it was the largest cost of GET /api/v1/me).

A `CompiledQuery` is made from a function that builds an ordinary queryset from its inputs. It is called once
per database alias with placeholder values (`placeholders=`, one per input: distinctive values of the input's
type); the placeholders are then found among the compiled query's parameters (the very objects: proof that the
ORM passed them to the driver unchanged) and each call puts its own values in their places. The SQL, the row
layout and the converters all come from the ORM, so they follow the models; rows become model instances (with
their select_related objects and annotations) the way the ORM's own iterator makes them.

Only for inputs the ORM hands to the driver as they are (str, int, aware datetimes): `compile` refuses a query
whose placeholders do not reach the parameters unchanged. Nothing about the rows is cached: every call runs
the query.

PostgreSQL plans it once per connection too (`PreparedStatement`, which also runs hand-written statements such as
the bearer-token lookup, trialsite.api.auth; a paged call runs the query with a parameterised LIMIT/OFFSET as a
statement of its own): the first call on a connection sends `PREPARE` and `EXECUTE` in one statement string
(one round trip, one query as Django counts them), later calls only `EXECUTE`; the server then skips parsing
and, once it settles on a generic plan, planning (the token lookup's five-table join spent more time being
planned than run). Not behind PgBouncer in transaction pooling (`DISABLE_SERVER_SIDE_CURSORS`, set by
DB_TRANSACTION_POOLING=1): a prepared statement lives on one server connection, which a pooled client does not keep.
"""

from __future__ import annotations

import itertools
import re
import weakref
from collections.abc import Callable
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from datetime import UTC
from typing import Any

from django.db import connections, router
from django.db.models import QuerySet
from django.db.models.query import get_related_populators
from psycopg import adapters as psycopg_adapters
from psycopg import pq
from psycopg.postgres import types as postgres_types


@dataclass(frozen=True)
class _Compiled:
    sql: str
    params: tuple  # the compiled parameters; a placeholder's positions are replaced per call
    slots: tuple[tuple[int, str], ...]  # (position, input name)
    model: type
    init_list: tuple[str, ...]
    model_slice: slice
    related_populators: tuple
    annotations: tuple[tuple[str, int], ...]
    converters: tuple[tuple[int, tuple, Any], ...]  # (column, converter functions, expression)
    col_count: int | None  # trim the row to it (extra select columns), or None
    sliceable: bool  # the queryset had no LIMIT/OFFSET of its own: a call may give them


_names = itertools.count(1)


def _numbered(sql: str) -> str:
    """Django's SQL as the body of a PREPARE: its `%s` parameters numbered `$1`, `$2`, ...; a literal `%%` stays
    escaped (the PREPARE is sent with the EXECUTE's parameters, through the driver's %-formatting)."""
    numbers = itertools.count(1)
    return re.sub(r"%[s%]", lambda m: f"${next(numbers)}" if m.group() == "%s" else "%%", sql)


class CompiledQuery:
    """`query(**values)` → the model instances of `build(**values)`, compiled once per database alias."""

    def __init__(self, build: Callable[..., QuerySet], *, placeholders: dict[str, Any]):
        self._build = build
        self._placeholders = placeholders
        self._compiled: dict[str, _Compiled] = {}
        self._model = None
        self._statements: dict[tuple[str, bool], PreparedStatement] = {}  # per alias, paged or not

    def compile(self, alias: str) -> _Compiled:
        compiled = self._compiled.get(alias)
        if compiled is None:
            compiled = self._compiled[alias] = self._compile(self._build(**self._placeholders).using(alias), alias)
        return compiled

    def _compile(self, queryset: QuerySet, alias: str) -> _Compiled:
        compiler = queryset.query.get_compiler(using=alias)
        sql, params = compiler.as_sql()  # also fills compiler.select, klass_info, annotation_col_map, col_count
        slots, found = [], set()
        for position, param in enumerate(params):
            for name, placeholder in self._placeholders.items():
                if param is placeholder:
                    slots.append((position, name))
                    found.add(name)
                elif type(param) is type(placeholder) and param == placeholder:
                    raise ValueError(f"placeholder {name!r} reached the SQL as a copy: the ORM prepared it")
        missing = set(self._placeholders) - found
        if missing:
            raise ValueError(f"placeholders not among the compiled parameters: {sorted(missing)}")
        select, klass_info = compiler.select, compiler.klass_info
        fields = klass_info["select_fields"]
        converters = compiler.get_converters([s[0] for s in select[: compiler.col_count]])
        return _Compiled(
            sql=sql,
            params=tuple(params),
            slots=tuple(slots),
            model=klass_info["model"],
            init_list=tuple(f[0].target.attname for f in select[fields[0] : fields[-1] + 1]),
            model_slice=slice(fields[0], fields[-1] + 1),
            related_populators=tuple(get_related_populators(klass_info, select, alias)),
            annotations=tuple((compiler.annotation_col_map or {}).items()),
            converters=tuple((column, tuple(fns), expression) for column, (fns, expression) in converters.items()),
            col_count=compiler.col_count if compiler.has_extra_select else None,
            sliceable=not queryset.query.is_sliced,
        )

    def __call__(self, *, offset: int = 0, limit: int | None = None, **values) -> list:
        """The rows for these values; `limit`/`offset` page them (a LIMIT/OFFSET with parameters, so one
        compiled query serves every page) when the built queryset is not sliced itself."""
        if self._model is None:
            self._model = self._build(**self._placeholders).model
        alias = router.db_for_read(self._model) or "default"
        compiled = self.compile(alias)
        params = list(compiled.params)
        for position, name in compiled.slots:
            params[position] = values[name]
        paged = limit is not None or bool(offset)
        if paged:
            if not compiled.sliceable:
                raise ValueError("the built queryset is sliced already")
            params += [limit, offset]  # LIMIT NULL: no limit
        connection = connections[alias]
        rows = self._statement(alias, compiled, paged=paged).rows(connection, params)
        objects = []
        for raw in rows:
            row = list(raw[: compiled.col_count] if compiled.col_count is not None else raw)
            for column, fns, expression in compiled.converters:
                value = row[column]
                for fn in fns:
                    value = fn(value, expression, connection)
                row[column] = value
            obj = compiled.model.from_db(alias, compiled.init_list, row[compiled.model_slice])
            for populator in compiled.related_populators:
                populator.populate(row, obj)
            for name, column in compiled.annotations:
                setattr(obj, name, row[column])
            objects.append(obj)
        return objects

    def _statement(self, alias: str, compiled: _Compiled, *, paged: bool) -> PreparedStatement:
        # Paged: the same query with a parameterised LIMIT/OFFSET, a statement of its own (every page runs it).
        statement = self._statements.get((alias, paged))
        if statement is None:
            sql = f"{compiled.sql} LIMIT %s OFFSET %s" if paged else compiled.sql
            statement = self._statements[(alias, paged)] = PreparedStatement(sql)
        return statement


class PreparedStatement:
    """One SQL text (Django's `%s` parameters) run as a statement prepared once per driver connection: the first
    call on a connection sends `PREPARE` and `EXECUTE` in one string (one round trip, one query as Django counts
    them), later calls only `EXECUTE`. Plain queries behind a transaction pooler (`DISABLE_SERVER_SIDE_CURSORS`).
    A statement without parameters runs plainly too (nothing to gain). Runs on the connection given: the caller
    chooses the alias (a statement that writes must be given `default`). `audited`: it writes audited tables, so it
    keeps the audit context's statement wrapper (pghistory's set_config() in front of it), which reads go without.
    Its rows' timestamps are decoded by the driver's own loader where that gives Django's value
    (`_utc_timestamps_in_c`)."""

    def __init__(self, sql: str, *, audited: bool = False):
        self.sql = sql
        self.audited = audited
        self._body = _numbered(sql)
        # The driver connections this statement is prepared on, with its name there (a closed connection drops
        # out; a new one prepares).
        self._prepared: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    def rows(self, connection, params) -> list[tuple]:
        with connection.cursor() as cursor:
            _utc_timestamps_in_c(connection, cursor)
            if params and not connection.settings_dict.get("DISABLE_SERVER_SIDE_CURSORS"):
                self._execute_prepared(connection, cursor, params)
            else:
                cursor.execute(self.sql, params)
            return cursor.fetchall()

    def _execute_prepared(self, connection, cursor, params) -> None:
        arguments = ", ".join(["%s"] * len(params))
        raw = connection.connection  # the driver's connection, opened by connection.cursor()
        name = self._prepared.get(raw)
        with nullcontext() if self.audited else _without_audit_context(connection):
            if name is not None:
                cursor.execute(f"EXECUTE {name}({arguments})", params)
                return
            # A fresh name per attempt: PREPARE is not undone by a rollback, so after an EXECUTE that failed the
            # name may be taken on this connection, prepared or not.
            name = f"trialsite_compiled_{next(_names)}"
            # Both statements in one string (client-side binding sends it as one simple query): the rows are the
            # EXECUTE's, the last result set.
            cursor.execute(f"PREPARE {name} AS {self._body}; EXECUTE {name}({arguments})", params)
            while cursor.nextset():
                pass
        self._prepared[raw] = name


_TIMESTAMPTZ = postgres_types["timestamptz"].oid
# The driver's own text loader of `timestamptz` (written in C when psycopg's binary package is installed).
_DRIVER_TIMESTAMPTZ_LOADER = psycopg_adapters.get_loader(_TIMESTAMPTZ, pq.Format.TEXT)


def _utc_timestamps_in_c(connection, cursor) -> None:
    """Timestamps of this cursor decoded by the driver's own loader instead of Django's (a Python subclass of it,
    registered on every connection, that only replaces the result's tzinfo with the connection's zone): issue 14,
    Django's loader was the largest single cost of decoding the bearer-token row. Done only where both give the
    same value: Django wants UTC (`connection.timezone` is `datetime.UTC`) and the session's TimeZone is `UTC`,
    for which the driver's loader returns datetimes in `datetime.UTC` itself (psycopg._tz)."""
    raw = cursor.cursor
    if connection.timezone is UTC and raw.connection.pgconn.parameter_status(b"TimeZone") == b"UTC":
        raw.adapters.register_loader(_TIMESTAMPTZ, _DRIVER_TIMESTAMPTZ_LOADER)


@contextmanager
def _without_audit_context(connection):
    """Without the audit trail's statement wrapper: pghistory puts two set_config() calls in front of every
    statement of a request except those starting with SELECT (reads fire no trigger); an EXECUTE of a compiled
    query is such a read, under another first word."""
    from pghistory.runtime import _inject_history_context

    wrappers = connection.execute_wrappers
    if _inject_history_context not in wrappers:
        yield
        return
    connection.execute_wrappers = [w for w in wrappers if w is not _inject_history_context]
    try:
        yield
    finally:
        connection.execute_wrappers = wrappers
