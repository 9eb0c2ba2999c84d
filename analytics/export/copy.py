"""The COPY engine: `COPY (SELECT …) TO STDOUT WITH CSV HEADER` streamed into a writer, memory flat."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable

from django.db import connection as default_connection

# While a large table streams, the progress callback (the job's heartbeat) is called every TICK_BYTES of CSV
# or TICK_SECONDS, whichever comes first, not only between tables.
TICK_BYTES = 8 << 20
TICK_SECONDS = 15.0


def copy_to(sql: str, sink, *, threaded: bool = True, tick: Callable[[], None] | None = None, connection=None) -> int:
    """COPY (sql) TO STDOUT WITH CSV HEADER into `sink.write`; returns the row count.

    With `threaded`, a reader thread drains the COPY stream while this thread compresses and hashes, so
    PostgreSQL, the network read and zlib (which releases the GIL) overlap. `tick` is called in this thread
    between chunks (a time-based heartbeat while a slow query has not produced TICK_BYTES yet). `connection`:
    a Django connection (default: the default alias), in whatever transaction it is in.
    """
    statement = f"COPY ({sql}) TO STDOUT WITH (FORMAT csv, HEADER true)"
    with (connection or default_connection).cursor() as cur:
        if not threaded:
            with cur.copy(statement) as copy:
                for data in copy:
                    sink.write(data)
            return cur.rowcount
        chunks: queue.Queue = queue.Queue(maxsize=2)  # bounded: at most ~0.4 MB in flight
        failure: list[BaseException] = []
        done = object()
        buffer_size = 1 << 17

        def pump() -> None:
            try:
                with cur.copy(statement) as copy:
                    pending: list[bytes] = []
                    size = 0
                    for data in copy:
                        pending.append(bytes(data))
                        size += len(data)
                        if size >= buffer_size:
                            chunks.put(b"".join(pending))
                            pending, size = [], 0
                    if pending:
                        chunks.put(b"".join(pending))
            except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
                failure.append(exc)
            finally:
                chunks.put(done)

        reader = threading.Thread(target=pump, name="export-copy", daemon=True)
        reader.start()
        try:
            while True:
                try:
                    item = chunks.get(timeout=TICK_SECONDS if tick else None)
                except queue.Empty:
                    tick()
                    continue
                if item is done:
                    break
                sink.write(item)
                if tick is not None:
                    tick()
        finally:
            # Keep draining if the sink failed so the reader can finish; then join it.
            while reader.is_alive():
                try:
                    chunks.get(timeout=0.1)
                except queue.Empty:
                    pass
            reader.join()
        if failure:
            raise failure[0]
        return cur.rowcount
