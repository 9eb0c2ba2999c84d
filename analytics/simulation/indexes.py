"""Bulk loads without the secondary indexes (opt-in: `simulate_trial(..., defer_indexes=True)`, for the benches).

Each row COPYed into a table also goes into every index of the table; a survey instance has eleven. Building an
index once over the loaded rows (a sort) costs far less than inserting into it row by row, so a large load may
drop the tables' *secondary* indexes first and build them again afterwards from their own definitions
(`pg_get_indexdef`). Only indexes that enforce nothing are dropped: primary keys, unique indexes (partial ones
too) and indexes behind a constraint stay, so uniqueness is still checked on every row as it is loaded, and
foreign keys are checked as the writer always checks them. The indexes are rebuilt even when the load fails.

Dropping an index takes an exclusive lock on its table until the dropping transaction ends and leaves the table
unindexed until the rebuild, so this is for a database nobody else is using (a benchmark's, a fresh demo), never
a live trial's.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from queue import Empty, SimpleQueue

from django.db import connection, connections, transaction

from .writer import SPEC


def secondary_indexes(tables: list[str]) -> list[tuple[str, str]]:
    """(name, CREATE INDEX statement) of each index of `tables` that enforces nothing."""
    with connection.cursor() as cur:
        cur.execute(
            "SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid) FROM pg_index i"
            " WHERE i.indrelid = ANY(%s::regclass[]) AND NOT i.indisunique AND NOT i.indisprimary"
            " AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)"
            " ORDER BY 1",
            [tables],
        )
        return cur.fetchall()


@contextmanager
def indexes_deferred():
    """Drop the secondary indexes of the simulator's tables for the duration of the block; rebuild them after."""
    tables = sorted({model._meta.db_table for model, _ in SPEC.values()})
    dropped = secondary_indexes(tables)
    with transaction.atomic(), connection.cursor() as cur:
        for name, _ in dropped:
            cur.execute(f"DROP INDEX {name}")  # regclass text: already quoted as needed
    try:
        yield dropped
    finally:
        rebuild([d for _, d in dropped])


def rebuild(definitions: list[str], *, parallel: int = 2) -> None:
    """Build the indexes again: on `parallel` connections at once, each taking the next index (largest tables
    first) until none is left, or on this connection when it is inside a transaction (other connections could not
    see its tables). Each builder opens one connection for all its indexes."""
    if connection.in_atomic_block or parallel < 2:
        with connection.cursor() as cur:
            for definition in definitions:
                cur.execute(definition)
        return
    with connection.cursor() as cur:
        cur.execute(
            "SELECT d FROM unnest(%s::text[]) AS d ORDER BY"
            " pg_relation_size(substring(d FROM ' ON (\\S+) USING')::regclass) DESC",
            [definitions],
        )
        pending = SimpleQueue()
        for (definition,) in cur.fetchall():
            pending.put(definition)

    def build() -> None:
        try:
            with connections["default"].cursor() as cur:  # this thread's own connection
                while True:
                    try:
                        definition = pending.get_nowait()
                    except Empty:
                        return
                    cur.execute(definition)
        finally:
            connections["default"].close()

    with ThreadPoolExecutor(max_workers=parallel) as pool:
        for future in [pool.submit(build) for _ in range(parallel)]:
            future.result()
