"""Reads that may go to a replica: the `replica` database alias and its router.

When `DATABASE_REPLICA_URL` is set, settings add a `replica` alias (a streaming standby of the primary). Reads go
there only inside `replica_reads()` (exports, analytics figures: bulk reads that tolerate a little replication
lag); every other read, and every write, stays on `default`, so a request still reads its own writes. The
replica is never migrated. Without `DATABASE_REPLICA_URL` everything reads `default`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS

REPLICA = "replica"
_replica_reads: ContextVar[bool] = ContextVar("replica_reads", default=False)


def replica_alias() -> str:
    """The alias bulk reads use: `replica` when one is configured, else `default`."""
    return REPLICA if REPLICA in settings.DATABASES else DEFAULT_DB_ALIAS


@contextmanager
def replica_reads() -> Iterator[str]:
    """ORM reads inside go to the replica (when configured); yields the alias for raw SQL."""
    token = _replica_reads.set(True)
    try:
        yield replica_alias()
    finally:
        _replica_reads.reset(token)


class ReplicaRouter:
    """Reads inside `replica_reads()` → `replica`; all writes and migrations → `default`."""

    def db_for_read(self, model, **hints):
        return replica_alias() if _replica_reads.get() else None  # None: Django's usual choice

    def db_for_write(self, model, **hints):
        return DEFAULT_DB_ALIAS

    def allow_relation(self, obj1, obj2, **hints):
        return True  # one database, two views of it

    def allow_migrate(self, db, app_label, model_name=None, **hints):
        return db == DEFAULT_DB_ALIAS
