"""One snapshot for the whole bundle: every table and the codebook agree with each other."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC

from django.db import connection, transaction


def _snapshot_facts() -> dict:
    with connection.cursor() as cur:
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
def bundle_snapshot() -> Iterator[dict]:
    """Everything read inside sees one state of the database; yields the facts the manifest records.

    Outside a transaction (the worker, the command) this opens `REPEATABLE READ READ ONLY` and takes the
    snapshot with its first statement. Inside a caller's transaction (tests under pytest-django) the isolation
    can no longer be set: the bundle is read in that transaction and the manifest says which isolation it had.
    """
    if connection.in_atomic_block:
        yield _snapshot_facts()
        return
    with transaction.atomic():
        with connection.cursor() as cur:
            cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        yield _snapshot_facts()
