"""Parallel COPY on one exported snapshot.

Each worker thread opens its own connection, adopts the coordinator's exported snapshot (`adopt_snapshot`) and
takes tables from a queue, largest first (`Table.weight`). It writes each table, CSV and other formats, into a
part zip of its own: COPY, hashing and deflate run in the worker (psycopg and zlib release the GIL), so the
tables stream and compress side by side. The coordinator thread appends each part's entries to the bundle in
catalogue order as soon as the parts before it are there (a raw copy of the compressed entries, nothing is
re-compressed), and is the only thread that calls `progress` (the job's heartbeat, on its own connection).

If `progress` raises (a lost lease) or a worker fails, the other workers' queries are cancelled and every worker
is joined before the error propagates.
"""

from __future__ import annotations

import os
import queue
import struct
import threading
import zipfile
from collections.abc import Callable

from django.db import connections

from .copy import TICK_SECONDS
from .snapshot import adopt_snapshot

APPLICATION_NAME = "trialsite-export"
_DATA_DESCRIPTOR = 0x08


class ExportCancelled(Exception):
    """Raised in a worker when the coordinator stops the export."""


class _WorkerTick:
    """A worker's `tick`: tells the coordinator that bytes went by; stops the worker once cancelled."""

    def __init__(self, events: queue.Queue, cancel: threading.Event):
        self.events = events
        self.cancel = cancel

    def __call__(self) -> None:
        self.maybe()
        self.events.put(("tick",))

    def maybe(self) -> None:
        if self.cancel.is_set():
            raise ExportCancelled


def append_zip(dst: zipfile.ZipFile, src_path: str) -> None:
    """Append every entry of the zip at `src_path` to `dst` as it is (compressed bytes, CRC and sizes kept)."""
    with zipfile.ZipFile(src_path) as src, open(src_path, "rb") as fh:
        for info in src.infolist():
            if info.flag_bits & _DATA_DESCRIPTOR:
                raise ValueError(f"{info.filename}: entries with a data descriptor are not supported")
            fh.seek(info.header_offset)
            name_len, extra_len = struct.unpack("<HH", fh.read(30)[26:30])
            length = 30 + name_len + extra_len + info.compress_size
            fh.seek(info.header_offset)
            with dst._lock:
                dst.fp.seek(dst.start_dir)
                info.header_offset = dst.fp.tell()
                remaining = length
                while remaining:
                    chunk = fh.read(min(remaining, 1 << 20))
                    if not chunk:
                        raise ValueError(f"{info.filename}: part zip is truncated")
                    dst.fp.write(chunk)
                    remaining -= len(chunk)
                dst.start_dir = dst.fp.tell()
                dst.filelist.append(info)
                dst.NameToInfo[info.filename] = info
                dst._didModify = True


def copy_tables_parallel(
    zf: zipfile.ZipFile,
    jobs: list[tuple],
    *,
    write: Callable,
    snapshot_id: str,
    using: str,
    workers: int,
    tmpdir: str,
    progress: Callable[[float], None] | None,
    steps: int,
) -> list[dict]:
    """Copy `jobs` ([(table, sql)]) into `zf` on `workers` connections sharing `snapshot_id`; returns the files.

    `write(part_zf, table, sql, connection, tick)` writes one table into a zip and returns its file entries.
    """
    tasks: queue.Queue = queue.Queue()
    for i in sorted(range(len(jobs)), key=lambda i: (-jobs[i][0].weight, i)):
        tasks.put(i)
    events: queue.Queue = queue.Queue()
    cancel = threading.Event()
    pg_connections: list = []  # the workers' psycopg connections, so the coordinator can cancel their queries

    # The coordinator's own settings (a test mirror's too); each worker opens a connection of its own with them.
    source = connections[using]
    backend, settings_dict = type(source), source.settings_dict

    def work() -> None:
        conn = backend(dict(settings_dict), using)
        try:
            conn.ensure_connection()
            pg_connections.append(conn.connection)
            with conn.cursor() as cur:
                adopt_snapshot(cur, snapshot_id)
                cur.execute(f"SET LOCAL application_name = '{APPLICATION_NAME}'")  # transaction-scoped: poolers
            while not cancel.is_set():
                try:
                    i = tasks.get_nowait()
                except queue.Empty:
                    break
                table, sql = jobs[i]
                path = os.path.join(tmpdir, f"part-{i}.zip")
                with zipfile.ZipFile(path, "w", compression=zf.compression, compresslevel=zf.compresslevel) as part:
                    files = write(part, table, sql, conn, _WorkerTick(events, cancel))
                events.put(("done", i, path, files))
            with conn.cursor() as cur:
                cur.execute("COMMIT")
        except BaseException as exc:  # noqa: BLE001 - handed to the coordinator, which re-raises
            events.put(("error", exc))
        finally:
            conn.close()
            events.put(("exit",))

    threads = [threading.Thread(target=work, name=f"export-worker-{k}", daemon=True) for k in range(workers)]
    for t in threads:
        t.start()
    alive, done, merged = len(threads), 0, 0
    pending: dict[int, tuple[str, list[dict]]] = {}
    files: list[dict] = []
    failure: BaseException | None = None

    def stop() -> None:
        cancel.set()
        for pg in list(pg_connections):
            try:
                pg.cancel()
            except Exception:  # noqa: BLE001, S110 - the connection may already be closed
                pass

    try:
        while alive:
            try:
                event = events.get(timeout=TICK_SECONDS)
            except queue.Empty:
                event = ("tick",)
            kind = event[0]
            if kind == "exit":
                alive -= 1
                continue
            if kind == "error":
                if failure is None or isinstance(failure, ExportCancelled):
                    failure = event[1]
                stop()
                continue
            if kind == "done":
                pending[event[1]] = (event[2], event[3])
                done += 1
                while merged in pending:
                    path, part_files = pending.pop(merged)
                    append_zip(zf, path)
                    os.unlink(path)
                    files += part_files
                    merged += 1
            if progress is not None and failure is None:
                progress(done / steps)
    except BaseException:
        stop()
        while alive:  # every worker ends (cancelled) before the error propagates
            if events.get()[0] == "exit":
                alive -= 1
        raise
    finally:
        for t in threads:
            t.join()
    if failure is not None:
        raise failure
    if merged != len(jobs):
        raise RuntimeError(f"parallel export: {merged} of {len(jobs)} tables written")
    return files
