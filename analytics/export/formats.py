"""Formats made from a table's CSV: Parquet (typed, streamed in record batches), SPSS and Stata (labelled).

Also the hashing writer every zip entry goes through (sha256 and size for the manifest, heartbeat ticks).
"""

from __future__ import annotations

import hashlib
import shutil
import zipfile
from collections.abc import Callable

from .columns import Column, Table
from .copy import TICK_BYTES


class _HashingWriter:
    """Wraps a zip entry: counts bytes and hashes them as they go in; calls `tick` every TICK_BYTES."""

    def __init__(self, raw, tee=None, tick: Callable[[], None] | None = None):
        self.raw = raw
        self.tee = tee
        self.tick = tick
        self.sha = hashlib.sha256()
        self.bytes = 0
        self._next_tick = TICK_BYTES

    def write(self, data) -> int:
        self.sha.update(data)
        self.bytes += len(data)
        self.raw.write(data)
        if self.tee is not None:
            self.tee.write(data)
        if self.tick is not None and self.bytes >= self._next_tick:
            self._next_tick = self.bytes + TICK_BYTES
            self.tick()
        return len(data)


def _zip_write_file(zf: zipfile.ZipFile, name: str, src_path: str) -> dict:
    with open(src_path, "rb") as src, zf.open(name, "w", force_zip64=True) as raw:
        w = _HashingWriter(raw)
        shutil.copyfileobj(src, w, 1 << 20)
    return {"name": name, "sha256": w.sha.hexdigest(), "bytes": w.bytes}


def _parquet_from_csv(table: Table, columns: list[Column], csv_path: str, out_path: str) -> int:
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    types = {
        "string": pa.string(),
        "integer": pa.int64(),
        "float": pa.float64(),
        "boolean": pa.bool_(),
        "timestamp": pa.timestamp("us", tz="UTC"),
        "date": pa.date32(),
        "time": pa.time64("us"),
    }
    column_types = {c.name: types[c.type] for c in columns}
    schema = pa.schema([pa.field(c.name, types[c.type], metadata={"label": c.label}) for c in columns])
    reader = pacsv.open_csv(
        csv_path,
        read_options=pacsv.ReadOptions(block_size=1 << 22),
        parse_options=pacsv.ParseOptions(newlines_in_values=True),
        convert_options=pacsv.ConvertOptions(
            column_types=column_types,
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
            true_values=["true"],
            false_values=["false"],
            timestamp_parsers=["%Y-%m-%dT%H:%M:%S.%fZ", pacsv.ISO8601],
        ),
    )
    rows = 0
    with pq.ParquetWriter(out_path, schema, compression="zstd") as writer:
        for batch in reader:
            batch = batch.cast(schema) if batch.schema != schema else batch
            writer.write_batch(batch)
            rows += batch.num_rows
    return rows


def _labelled_frame(columns: list[Column], csv_path: str):
    """The table as a DataFrame for SPSS/Stata: coded strings become integers with value labels."""
    import pandas as pd

    dtypes = {c.name: "string" for c in columns if c.type in ("string", "date", "time", "timestamp", "boolean")}
    df = pd.read_csv(csv_path, dtype=dtypes, keep_default_na=False, na_values={c.name: [""] for c in columns})
    value_labels: dict[str, dict] = {}
    for c in columns:
        if c.name not in df:
            continue
        if c.type == "timestamp":
            df[c.name] = pd.to_datetime(df[c.name], utc=True, format="ISO8601").dt.tz_localize(None)
        elif c.type == "date":
            df[c.name] = pd.to_datetime(df[c.name], format="%Y-%m-%d")
        elif c.values and c.type in ("string", "boolean"):
            codes = {v: i for i, v in enumerate(c.values, start=1)}
            df[c.name] = df[c.name].map(codes).astype("float64")
            value_labels[c.name] = {float(i): str(c.values[v]) for v, i in codes.items()}
        elif c.type in ("string", "time"):
            df[c.name] = df[c.name].fillna("").astype(object)
    return df, value_labels


def _write_spss(columns, csv_path, out_path) -> None:
    import pyreadstat

    df, value_labels = _labelled_frame(columns, csv_path)
    pyreadstat.write_sav(
        df,
        out_path,
        column_labels={c.name: c.label for c in columns},
        variable_value_labels=value_labels,
    )


def _write_stata(columns, csv_path, out_path) -> None:
    import pyreadstat

    df, value_labels = _labelled_frame(columns, csv_path)
    pyreadstat.write_dta(
        df,
        out_path,
        column_labels={c.name: c.label[:80] for c in columns},
        variable_value_labels={k: {int(code): lab[:80] for code, lab in v.items()} for k, v in value_labels.items()},
        version=15,
    )
