"""Writing the bundle: every catalogue table COPYed into a zip entry (plus the other formats), the codebook and
a checksummed manifest, all read in one snapshot."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import shutil
import tempfile
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from django.conf import settings
from django.db import connections

from trialsite.db import replica_reads
from trialsite.models import Trial
from trialsite.protocol.services import protocol_of_version

from .catalogue import bundle_tables
from .codebook import CODEBOOK_COLUMNS, codebook_rows
from .columns import Table
from .copy import TICK_SECONDS, copy_to
from .formats import _HashingWriter, _parquet_from_csv, _write_spss, _write_stata, _zip_write_file
from .parallel import copy_tables_parallel
from .snapshot import shared_snapshot

FORMATS = ("csv", "parquet", "spss", "stata")
COMPRESSION = zipfile.ZIP_DEFLATED
COMPRESS_LEVEL = 1  # fast: the bundle keeps pace with COPY


@dataclass
class BundleResult:
    path: Path
    sha256: str
    size_bytes: int
    manifest: dict
    files: list[dict] = field(default_factory=list)


class _Ticker:
    """Rate-limits the progress callback during one table: at most every TICK_SECONDS, at least every TICK_BYTES."""

    def __init__(self, progress: Callable[[float], None] | None, value: float):
        self.progress = progress
        self.value = value
        self.last = time.monotonic()

    def __call__(self) -> None:
        if self.progress is not None:
            self.progress(self.value)
            self.last = time.monotonic()

    def maybe(self) -> None:
        if self.progress is not None and time.monotonic() - self.last >= TICK_SECONDS:
            self()


def write_bundle(
    *,
    trial: Trial,
    out: str | Path,
    blinded: bool = True,
    formats: list[str] | tuple[str, ...] = ("csv",),
    user=None,
    reason: str = "",
    export_id: str | None = None,
    progress: Callable[[float], None] | None = None,
    workers: int | None = None,
) -> BundleResult:
    """Write the export bundle (zip) to `out`. Callers check permissions (unblinded needs the role).

    The whole bundle is read in one snapshot, on the replica when one is configured (`trialsite.db`). With
    `workers` > 1 (default `settings.EXPORT_COPY_WORKERS`) the tables are copied in parallel on that many
    connections sharing the snapshot (`shared_snapshot`); inside a caller's transaction they are read serially
    in it. `progress(fraction)` is called after each table and, while tables stream, every TICK_BYTES /
    TICK_SECONDS: the job's heartbeat (only after each table when it has `shares_connection` set: it writes through
    the connection the bundle is read on). It may raise to abandon the export (a lost lease); the workers are then
    stopped and the partial file is left for the caller to remove.
    """
    workers = max(1, int(settings.EXPORT_COPY_WORKERS if workers is None else workers))
    with replica_reads() as using, shared_snapshot(using, export=workers > 1) as (snapshot, snapshot_id):
        return _write_bundle(
            trial=trial,
            out=out,
            blinded=blinded,
            formats=formats,
            user=user,
            reason=reason,
            export_id=export_id,
            progress=progress,
            snapshot=snapshot,
            using=using,
            snapshot_id=snapshot_id,
            workers=workers,
        )


def table_entries(zf: zipfile.ZipFile, table: Table, *, sql, blinded, formats, tmpdir, connection, tick) -> list[dict]:
    """Write one table into `zf`: its CSV (streamed by COPY on `connection`), then its other formats.

    `tick()` is called every TICK_BYTES of CSV and before each conversion; `tick.maybe()` between chunks.
    """
    columns = table.visible_columns(blinded)
    need_csv_copy = any(f != "csv" for f in formats)
    csv_tmp = os.path.join(tmpdir, f"{table.name}.csv")
    tee = open(csv_tmp, "wb") if need_csv_copy else None  # noqa: SIM115 - closed below
    try:
        with zf.open(f"{table.name}.csv", "w", force_zip64=True) as raw:
            w = _HashingWriter(raw, tee=tee, tick=tick)
            rows = copy_to(sql, w, tick=tick.maybe, connection=connection)
    finally:
        if tee is not None:
            tee.close()
    files = [
        {
            "name": f"{table.name}.csv",
            "table": table.name,
            "format": "csv",
            "rows": rows,
            "sha256": w.sha.hexdigest(),
            "bytes": w.bytes,
        }
    ]
    if "parquet" in formats:
        tick()
        pq_tmp = os.path.join(tmpdir, f"{table.name}.parquet")
        _parquet_from_csv(table, columns, csv_tmp, pq_tmp)
        files.append(
            {
                **_zip_write_file(zf, f"{table.name}.parquet", pq_tmp),
                "table": table.name,
                "format": "parquet",
                "rows": rows,
            }
        )
        os.unlink(pq_tmp)
    for fmt, ext, writer in (("spss", "sav", _write_spss), ("stata", "dta", _write_stata)):
        if fmt in formats:
            tick()
            tmp = os.path.join(tmpdir, f"{table.name}.{ext}")
            writer(columns, csv_tmp, tmp)
            files.append(
                {
                    **_zip_write_file(zf, f"{table.name}.{ext}", tmp),
                    "table": table.name,
                    "format": fmt,
                    "rows": rows,
                }
            )
            os.unlink(tmp)
    if need_csv_copy:
        os.unlink(csv_tmp)
    return files


def _write_bundle(
    *, trial, out, blinded, formats, user, reason, export_id, progress, snapshot, using, snapshot_id, workers
) -> BundleResult:
    formats = [f for f in FORMATS if f in set(formats) | {"csv"}]
    trial = Trial.objects.get(pk=trial.pk)  # read in the snapshot like everything else
    version = trial.current_protocol
    protocol = protocol_of_version(version) if version else None
    chosen = bundle_tables(protocol=protocol, blinded=blinded)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    files: list[dict] = []
    steps = len(chosen) + 1
    # Named after the bundle, so whoever cleans up after a killed run finds it (`.<bundle name>.tmp-*`).
    tmpdir = tempfile.mkdtemp(prefix=f"{'' if out.name.startswith('.') else '.'}{out.name}.tmp-", dir=out.parent)
    try:
        with zipfile.ZipFile(out, "w", compression=COMPRESSION, compresslevel=COMPRESS_LEVEL, allowZip64=True) as zf:
            jobs = [(table, table.sql(trial_id=trial.pk, blinded=blinded)) for table in chosen]
            if snapshot_id is not None and workers > 1:
                files += copy_tables_parallel(
                    zf,
                    jobs,
                    write=lambda part_zf, table, sql, connection, tick: table_entries(
                        part_zf,
                        table,
                        sql=sql,
                        blinded=blinded,
                        formats=formats,
                        tmpdir=tmpdir,
                        connection=connection,
                        tick=tick,
                    ),
                    snapshot_id=snapshot_id,
                    using=using,
                    workers=workers,
                    tmpdir=tmpdir,
                    progress=progress,
                    steps=steps,
                )
            else:
                # A progress callback that writes through the connection read here (`shares_connection`: a job run
                # inside a caller's transaction) is called between tables only: in the middle of one it would wait
                # for the COPY streaming on that connection, whose reader thread waits for this one to take its
                # chunks (a deadlock).
                mid_table = None if getattr(progress, "shares_connection", False) else progress
                for n, (table, sql) in enumerate(jobs):
                    ticker = _Ticker(mid_table, n / steps)
                    files += table_entries(
                        zf,
                        table,
                        sql=sql,
                        blinded=blinded,
                        formats=formats,
                        tmpdir=tmpdir,
                        connection=connections[using],
                        tick=ticker,
                    )
                    if progress:
                        progress((n + 1) / steps)
            # Codebook
            buf = io.StringIO()
            cw = csv.DictWriter(buf, fieldnames=CODEBOOK_COLUMNS, lineterminator="\n")
            cw.writeheader()
            cb_rows = codebook_rows(trial=trial, protocol=protocol, blinded=blinded)
            cw.writerows(cb_rows)
            data = buf.getvalue().encode("utf-8")
            zf.writestr("codebook.csv", data)
            files.append(
                {
                    "name": "codebook.csv",
                    "table": "codebook",
                    "format": "csv",
                    "rows": len(cb_rows),
                    "sha256": hashlib.sha256(data).hexdigest(),
                    "bytes": len(data),
                }
            )
            manifest = {
                "export_id": export_id,
                "trial": trial.slug,
                "trial_title": trial.title,
                "protocol_version": version.version if version else None,
                "protocol_sha256": version.sha256 if version else None,
                "software_version": settings.SOFTWARE_VERSION,
                "created_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
                "created_by": getattr(user, "username", None) or "",
                "reason": reason,
                "blinded": blinded,
                "formats": formats,
                "timestamps": "UTC (ISO 8601, Z); study_day counts local dates in the participant's zone from day 0",
                # The one database snapshot every file was read in: its time, isolation and transaction ids.
                "snapshot": snapshot,
                "files": files,
            }
            zf.writestr("manifest.json", json.dumps(manifest, indent=2, ensure_ascii=False))
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    sha = hashlib.sha256()
    with open(out, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            sha.update(chunk)
    if progress:
        progress(1.0)
    return BundleResult(path=out, sha256=sha.hexdigest(), size_bytes=out.stat().st_size, manifest=manifest, files=files)
