"""The export bundle: one long table per kind of data, a codebook and a checksummed manifest, in a zip.

Tables are streamed from PostgreSQL with `COPY (SELECT …) TO STDOUT WITH CSV HEADER` straight into the zip
entry (zipfile streaming write), so memory stays flat however large the trial. Parquet is converted from the
same stream in record batches (pyarrow); SPSS/Stata files (pyreadstat) carry variable and value labels and
are built per table in memory, so ask for them only when needed.

Consistency: every COPY and the codebook are read in ONE snapshot, taken by a `REPEATABLE READ READ ONLY`
transaction and shared with the connections that copy tables in parallel (`pg_export_snapshot()` / `SET
TRANSACTION SNAPSHOT`), so the tables agree with each other even while answers are being submitted (a score never
lacks its item answers); the manifest records that snapshot (`snapshot`: its time, `pg_current_snapshot()` and
xmin/xmax). With a replica configured (`DATABASE_REPLICA_URL`, see trialsite.db) the bundle is read there.

Blinding: the blinded bundle (the default) never contains an arm, an allocation or a dose-unit code; only the
unblinded bundle adds `allocation` (and dose-unit codes on doses). No table holds a name, e-mail, phone,
address, IP address, device id or push token: participants appear by study id only.

The package: `columns` (what a table entry is), `catalogue` (the tables, declarative), `codebook`, `snapshot`
(one consistent read), `copy` (the COPY engine), `parallel` (workers on one snapshot), `formats` (Parquet, SPSS,
Stata) and `bundle` (the zip and its manifest).
"""

from .bundle import COMPRESS_LEVEL, COMPRESSION, FORMATS, BundleResult, write_bundle
from .catalogue import T, bundle_tables, tables
from .codebook import CODEBOOK_COLUMNS, codebook_rows
from .columns import Column, Table
from .copy import TICK_BYTES, TICK_SECONDS, copy_to
from .snapshot import bundle_snapshot

__all__ = [
    "CODEBOOK_COLUMNS",
    "COMPRESSION",
    "COMPRESS_LEVEL",
    "FORMATS",
    "TICK_BYTES",
    "TICK_SECONDS",
    "T",
    "BundleResult",
    "Column",
    "Table",
    "bundle_snapshot",
    "bundle_tables",
    "codebook_rows",
    "copy_to",
    "tables",
    "write_bundle",
]
