"""Fixed SQL texts of the submission path run as statements prepared once per database connection (issue 14).

The submission's two statements (surveys.services.submission) are fixed texts with `%(name)s` parameters. Sent as
plain text, PostgreSQL parses and plans them on every call: measured with log_parser/planner/executor_stats, that
was about 1.2 ms of the 2.8 ms a submission cost the server process (the locking read's four-way join spent longer
being planned than run). Prepared once per connection, each call only binds and runs them.

The first call on a connection sends `PREPARE` and `EXECUTE` in one statement string (one round trip, one query as
Django counts them, so the pinned query counts do not move); later calls send only `EXECUTE`. A failed first call
leaves its name unrecorded (PREPARE is not undone by a rollback, so the name may be taken): the next one prepares
under a fresh name. A statement that writes audited tables keeps pghistory's statement wrapper (its set_config()
of the audit context goes in front of the EXECUTE, as in front of any write); a read goes without it.

Not behind PgBouncer in transaction pooling (`DISABLE_SERVER_SIDE_CURSORS`, set by DB_TRANSACTION_POOLING=1): a
prepared statement lives on one server connection, which a pooled client does not keep; the text is sent as is.
"""

from __future__ import annotations

import itertools
import re
import weakref
from contextlib import contextmanager, nullcontext
from typing import Any

_names = itertools.count(1)
_PARAMETER = re.compile(r"%\((\w+)\)s")


class PreparedStatement:
    """`statement.execute(cursor, params)` runs `sql` (with `%(name)s` parameters) prepared on the cursor's
    connection. `audited`: the statement writes audited tables (keeps the audit context's statement wrapper)."""

    def __init__(self, sql: str, *, audited: bool) -> None:
        if "%%" in sql or "%s" in sql:
            raise ValueError("only %(name)s parameters")
        names: list[str] = []

        def number(match: re.Match) -> str:
            if match.group(1) not in names:
                names.append(match.group(1))
            return f"${names.index(match.group(1)) + 1}"

        self.sql = sql
        self.body = _PARAMETER.sub(number, sql)
        self.names = tuple(names)
        self.audited = audited
        # The driver connections this statement is prepared on, with its name there (a closed one drops out).
        self._prepared: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    def execute(self, cursor, params: dict[str, Any]) -> None:
        """Run it; the cursor is left on the statement's rows."""
        connection = cursor.db
        if connection.settings_dict.get("DISABLE_SERVER_SIDE_CURSORS"):
            cursor.execute(self.sql, params)
            return
        arguments = [params[name] for name in self.names]
        placeholders = ", ".join(["%s"] * len(arguments))
        raw = connection.connection  # the driver's connection, opened by connection.cursor()
        name = self._prepared.get(raw)
        with nullcontext() if self.audited else _without_audit_context(connection):
            if name is not None:
                cursor.execute(f"EXECUTE {name}({placeholders})", arguments)
                return
            name = f"trialsite_submission_{next(_names)}"
            # One string, sent as one simple query (client-side binding): the rows are the EXECUTE's, the last set.
            cursor.execute(f"PREPARE {name} AS {self.body}; EXECUTE {name}({placeholders})", arguments)
            while cursor.nextset():
                pass
        self._prepared[raw] = name


@contextmanager
def _without_audit_context(connection):
    """Without pghistory's statement wrapper, which puts two set_config() calls in front of every statement of a
    request except those starting with SELECT (reads fire no trigger); an EXECUTE of a read is such a read."""
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
