"""One snapshot for the whole bundle: every table and the codebook agree with each other.

The coordinating connection opens `REPEATABLE READ READ ONLY` and takes the snapshot with its first statement.
For a parallel export it also exports that snapshot (`pg_export_snapshot()`); each worker connection then opens
its own `REPEATABLE READ READ ONLY` transaction and adopts it (`SET TRANSACTION SNAPSHOT`) before any query, so
all of them see exactly the same committed rows. The coordinator's transaction stays open until the workers
are done (an exported snapshot lives only as long as the transaction that exported it).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC

from django.db import DEFAULT_DB_ALIAS, connections, transaction

_SNAPSHOT_ID = re.compile(r"^[0-9A-Fa-f]+(-[0-9A-Fa-f]+)+$")


def _snapshot_facts(using: str) -> dict:
    with connections[using].cursor() as cur:
        cur.execute(
            "SELECT statement_timestamp(), current_setting('transaction_isolation'), "
            "current_setting('transaction_read_only'), pg_current_snapshot()::text, "
            "pg_snapshot_xmin(pg_current_snapshot())::text, pg_snapshot_xmax(pg_current_snapshot())::text"
        )
        taken_at, isolation, read_only, snap, xmin, xmax = cur.fetchone()
    return {
        "taken_at": taken_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "isolation": isolation,
        "read_only": read_only == "on",
        "pg_snapshot": snap,
        "xmin": int(xmin),
        "xmax": int(xmax),
    }


@contextmanager
def shared_snapshot(using: str = DEFAULT_DB_ALIAS, *, export: bool = True) -> Iterator[tuple[dict, str | None]]:
    """Yields (the facts the manifest records, the exported snapshot id or None).

    The id is None when `export` is false, or inside a caller's transaction (tests under pytest-django): the
    isolation can no longer be set there and other connections could not see its uncommitted rows, so the
    bundle is read serially in that transaction and the manifest says which isolation it had.
    """
    conn = connections[using]
    if conn.in_atomic_block:
        yield _snapshot_facts(using), None
        return
    with transaction.atomic(using=using):
        with conn.cursor() as cur:
            cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        facts = _snapshot_facts(using)  # the first statement: the snapshot is taken here
        snapshot_id = None
        if export:
            with conn.cursor() as cur:
                cur.execute("SELECT pg_export_snapshot()")
                snapshot_id = cur.fetchone()[0]
        yield facts, snapshot_id


@contextmanager
def bundle_snapshot(using: str = DEFAULT_DB_ALIAS) -> Iterator[dict]:
    """Everything read inside (on `using`) sees one state of the database; yields the facts for the manifest."""
    with shared_snapshot(using, export=False) as (facts, _):
        yield facts


def adopt_snapshot(cursor, snapshot_id: str) -> None:
    """Open a REPEATABLE READ READ ONLY transaction on `cursor`'s connection that sees `snapshot_id`."""
    if not _SNAPSHOT_ID.match(snapshot_id):
        raise ValueError(f"not a snapshot id: {snapshot_id!r}")
    cursor.execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
    cursor.execute(f"SET TRANSACTION SNAPSHOT '{snapshot_id}'")
