"""The simulator's only own part: its writer. Rows are collected per table in memory and COPYed (psycopg 3
`cursor.copy`, binary format) in foreign-key order, one large COPY per table per batch; no ORM object per row.

The audit trail and bulk writes. The audit trail is pghistory's AFTER INSERT/UPDATE/DELETE row triggers, and they
fire for COPY too: with `audit=True` (the default: `simulate_trial`, `demo`, the tests) every synthetic row gets
its insert event, exactly as a row written by a service would, and the event tables roughly double the write
volume. With `audit=False` (bench/simulate.py, bench/scale.py) the *insert* triggers of the tables below, and of
the allocation list, its slots and dose units when the simulator has production generate the list
(`insert_audit_skipped`), are skipped for the simulator's own transactions only, through pgtrigger's
per-transaction switch (`set_config('pgtrigger.ignore', …, true)`, i.e. SET LOCAL): update and delete triggers
stay armed, every other connection keeps auditing, and the rows the simulator still writes through the ORM
(consent signatures, allocations, the slots it takes, withdrawals, adverse events) are audited as usual under a
pghistory context whose metadata says `simulate_trial`. Synthetic rows are not clinical events: a trial simulated without insert
events is a demo or benchmark database, never evidence. The foreign keys are always checked: by PostgreSQL's
deferred triggers at commit, or — with `audit=False` and the privilege to set `session_replication_role` — by the
writer itself before commit (see BulkWriter).
"""

from __future__ import annotations

import time as clock
from collections.abc import Iterable
from operator import itemgetter

import psycopg
from django.db import IntegrityError, connection
from psycopg._copy_base import _binary_signature, _binary_trailer, format_row_binary  # pinned psycopg 3.3.9
from psycopg.adapt import PyFormat

from participants.models import Participant, SafetyAlert, StaffBlindingGuess
from surveys.models import DoseLog, ItemAnswer, PromptEvent, Reminder, Response, Score, SideEffect, SurveyInstance

# Table → (model, database columns), in the order the foreign keys need.
SPEC: dict[str, tuple[type, list[str]]] = {
    "participant": (
        Participant,
        [
            "id",
            "uuid",
            "study_id",
            "trial_id",
            "site_id",
            "user_id",
            "status",
            "timezone",
            "channels",
            "push_token",
            "eligibility",
            "eligible",
            "stratum",
            "registered_at",
            "enrolled_at",
            "randomised_at",
            "day0",
            "withdrawn_at",
            "withdrawal_scope",
            "locked",
            "completed_on",
        ],
    ),
    "instance": (
        SurveyInstance,
        [
            "id",
            "uuid",
            "participant_id",
            "instrument_id",
            "schedule_key",
            "study_day",
            "timezone",
            "local_date",
            "local_time",
            "opens_at",
            "closes_at",
            "grace_until",
            "status",
            "protocol_version_id",
            "created_at",
            "cancelled_at",
            "cancel_reason",
            "dose_id",
        ],
    ),
    "response": (
        Response,
        [
            "id",
            "uuid",
            "instance_id",
            "participant_id",
            "instrument_id",
            "idempotency_key",
            "request_hash",
            "answers",
            "authored_at",
            "authored_offset_minutes",
            "received_at",
            "late",
            "clock_skew",
            "study_day",
            "source",
            "locked",
        ],
    ),
    "item": (ItemAnswer, ["response_id", "item_key", "value", "value_numeric", "value_text"]),
    "score": (Score, ["response_id", "key", "value", "band", "scored", "items_missing"]),
    "reminder": (
        Reminder,
        [
            "uuid",
            "instance_id",
            "stage",
            "due_at",
            "status",
            "channel",
            "attempts",
            "queued_at",
            "sent_at",
            "provider_id",
            "skip_reason",
            "last_error",
        ],
    ),
    "event": (PromptEvent, ["instance_id", "kind", "at", "received_at"]),
    "dose": (
        DoseLog,
        [
            "id",
            "uuid",
            "participant_id",
            "taken_at",
            "unit_code",
            "note",
            "study_day",
            "received_at",
            "idempotency_key",
        ],
    ),
    "side_effect": (
        SideEffect,
        [
            "uuid",
            "participant_id",
            "started_on",
            "description",
            "severity",
            "serious",
            "ongoing",
            "reported_at",
            "study_day",
            "idempotency_key",
        ],
    ),
    "alert": (
        SafetyAlert,
        [
            "uuid",
            "participant_id",
            "rule",
            "title",
            "severity",
            "source_kind",
            "source_id",
            "details",
            "status",
            "raised_at",
            "study_day",
            "due_at",
            "notified_at",
            "escalated_at",
            "acknowledged_at",
            "acknowledged_by_id",
            "acknowledgement_note",
        ],
    ),
    "staff_guess": (
        StaffBlindingGuess,
        ["uuid", "participant_id", "rater_id", "time_point", "guess", "confidence", "recorded_at"],
    ),
}


CHUNK = 1 << 20
_BYTES_BINARY = psycopg.adapters.get_dumper(bytes, PyFormat.BINARY)
JSONB_VERSION = b"\x01"  # jsonb's binary format: a version byte, then the JSON text


def jsonb(text: str) -> bytes:
    """A JSON text in jsonb's binary COPY format (the server parses and validates it, as for a text COPY)."""
    return JSONB_VERSION + text.encode()


def column_types(table: str, columns: list[str]) -> list[int]:
    """The type oid of each column, as the binary COPY needs them; a jsonb or uuid column is declared `bytea` to
    psycopg so the rows' pre-formatted bytes (`jsonb()`, a uuid's 16 bytes: `model.new_uuid_bytes`) pass through
    unchanged (the server still reads the field with the column type's own input function: in a binary COPY the
    column's type decides, and a uuid field that is not 16 bytes is refused)."""
    with connection.cursor() as cur:
        cur.execute(
            "SELECT attname, CASE WHEN atttypid IN ('jsonb'::regtype, 'uuid'::regtype) THEN 'bytea'::regtype"
            " ELSE atttypid END::oid"
            " FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped",
            [table],
        )
        oids = dict(cur.fetchall())
    return [oids[c] for c in columns]


def copy_rows(table: str, columns: list[str], rows: Iterable, types: list[int]) -> int:
    """One binary COPY … FROM STDIN of `rows` (tuples in `columns` order, jsonb values as `jsonb()` bytes) into
    `table`. Each row is encoded by psycopg's compiled binary row formatter (each value by its column's type)
    into one buffer, sent in 1 MB chunks: no Python call per row beyond the formatter itself. The server then
    parses no text (uuids, timestamps and numbers arrive in their binary form)."""
    q = connection.ops.quote_name
    n = 0
    sql = f"COPY {q(table)} ({', '.join(map(q, columns))}) FROM STDIN (FORMAT BINARY)"  # noqa: S608
    with connection.cursor() as cur:
        cur.adapters.register_dumper(bytes, _BYTES_BINARY)  # this cursor: bytes as they are (the C dumper)
        with cur.copy(sql) as copy:
            copy.set_types(types)
            tx = copy.formatter.transformer
            buf = bytearray(_binary_signature)
            for row in rows:
                format_row_binary(row, tx, buf)
                n += 1
                if len(buf) > CHUNK:
                    copy.write(bytes(buf))
                    buf.clear()
            buf += _binary_trailer
            copy.write(bytes(buf))
    return n


def reserve_ids(model, n: int) -> range | list[int]:
    """Take n primary keys from the model's sequence in one round trip (ids need not be contiguous).

    The values are taken with nextval as usual; when nobody else took values from the sequence meanwhile they
    are contiguous and only their bounds travel back (a range), otherwise the array of them."""
    if n <= 0:
        return []
    with connection.cursor() as cur:
        cur.execute(
            "SELECT min(v), max(v), CASE WHEN max(v) - min(v) + 1 = count(*) THEN NULL ELSE array_agg(v) END"
            " FROM (SELECT nextval(pg_get_serial_sequence(%s, 'id')) AS v FROM generate_series(1, %s)) AS t",
            [model._meta.db_table, n],
        )
        lo, hi, values = cur.fetchone()
    return range(lo, hi + 1) if values is None else sorted(values)


def insert_trigger_ids(models: Iterable[type] | None = None) -> list[str]:
    """pgtrigger's ids of the audit insert triggers on the simulator's tables, or on `models`' tables (both
    spellings pgtrigger accepts)."""
    import pgtrigger

    tables = {model._meta.db_table for model in (models or (m for m, _ in SPEC.values()))}
    out = []
    for model, trigger in pgtrigger.registered():
        if model._meta.db_table in tables and trigger.name == "insert_insert":
            pgid = trigger.get_pgid(model)
            out += [pgid, f"{model._meta.db_table}:{pgid}"]
    return out


def insert_audit_skipped(models: Iterable[type]) -> None:
    """Skip the audit insert triggers of `models`' tables for the rest of the current transaction (SET LOCAL
    through pgtrigger's switch, as `BulkWriter(audit=False)` does for its own tables)."""
    with connection.cursor() as cur:
        cur.execute(
            "SELECT set_config('pgtrigger.ignore', %s, true)", ["{" + ",".join(insert_trigger_ids(models)) + "}"]
        )


def foreign_keys() -> dict[str, list[tuple[int, str, str]]]:
    """Per SPEC table: (column position, referenced table, referenced column) of each foreign key it writes."""
    out: dict[str, list[tuple[int, str, str]]] = {}
    for name, (model, columns) in SPEC.items():
        by_column = {f.column: f for f in model._meta.concrete_fields if f.is_relation and f.many_to_one}
        out[name] = [
            (i, by_column[c].related_model._meta.db_table, by_column[c].target_field.column)
            for i, c in enumerate(columns)
            if c in by_column
        ]
    return out


def may_skip_triggers() -> bool:
    """Whether this connection may set `session_replication_role` (a superuser, or granted SET on PostgreSQL
    15+); without it the writer keeps the foreign-key triggers and skips only the audit insert triggers."""
    with connection.cursor() as cur:
        cur.execute("SELECT has_parameter_privilege('session_replication_role', 'SET')")
        return bool(cur.fetchone()[0])


class BulkWriter:
    """Rows per table; `flush()` COPYs them in SPEC order inside the caller's transaction.

    With `audit=False` and the privilege, the COPYs run with `session_replication_role = replica`, set locally
    (SET LOCAL) around them and reset to `origin` right after: in replica mode PostgreSQL fires no ordinary
    trigger, so neither the audit insert triggers (skipped anyway with `audit=False`) nor the foreign-key
    triggers run for those rows (the tables have no other triggers; CHECK, NOT NULL and UNIQUE constraints are
    not triggers and stay enforced). The foreign keys are then checked by the writer itself, in the same
    transaction before commit: every distinct key the rows reference is looked up in its table with
    `FOR KEY SHARE` (the lock PostgreSQL's own check takes), and a missing one raises IntegrityError, which rolls
    the batch back — the same guarantee as the deferred check, one query per referenced table instead of one
    lookup per row. A key of a row this same flush has just COPYed (a response's instance, an item answer's
    response) is not looked up: the COPY put it there, and no other transaction can see it, let alone delete it,
    before this one commits (which is also why PostgreSQL's own check needs no lock on it to be right). The ORM
    writes between flushes run with the role back at `origin`, audited as usual.
    """

    def __init__(self, *, audit: bool = True):
        self.audit = audit
        self.rows: dict[str, list] = {name: [] for name in SPEC}
        self.written: dict[str, int] = dict.fromkeys(SPEC, 0)
        self.seconds: dict[str, float] = dict.fromkeys(SPEC, 0.0)  # wall time of each table's COPYs
        self._ignore = None if audit else "{" + ",".join(insert_trigger_ids()) + "}"
        self.replica = not audit and may_skip_triggers()
        self._fks = foreign_keys() if self.replica else {}
        self.types = {name: column_types(model._meta.db_table, columns) for name, (model, columns) in SPEC.items()}

    def add(self, name: str, row: tuple) -> None:
        self.rows[name].append(row)

    def appender(self, name: str):
        """The table's `list.append` (valid across flushes: a flush empties the list in place)."""
        return self.rows[name].append

    def flush(self) -> None:
        with connection.cursor() as cur:
            if self.replica:
                cur.execute("SELECT set_config('session_replication_role', 'replica', true)")
            elif self._ignore is not None:
                cur.execute("SELECT set_config('pgtrigger.ignore', %s, true)", [self._ignore])
        referenced: dict[tuple[str, str], set] = {}
        written: dict[tuple[str, str], set] = {}  # the ids this flush COPYs, per table
        try:
            for name, (model, columns) in SPEC.items():
                rows = self.rows[name]
                if rows:
                    for i, table, column in self._fks.get(name, ()):
                        referenced.setdefault((table, column), set()).update(map(itemgetter(i), rows))
                    if self.replica and columns[0] == "id":
                        written[model._meta.db_table, "id"] = set(map(itemgetter(0), rows))
                    started = clock.perf_counter()
                    self.written[name] += copy_rows(model._meta.db_table, columns, rows, self.types[name])
                    self.seconds[name] += clock.perf_counter() - started
                    rows.clear()
        finally:
            if self.replica:
                with connection.cursor() as cur:
                    cur.execute("SELECT set_config('session_replication_role', 'origin', true)")
        for key, keys in referenced.items():
            keys -= written.get(key, set())
        self.check_references(referenced)

    def check_references(self, referenced: dict[tuple[str, str], set]) -> None:
        """The foreign-key check the replica mode skipped: each referenced key exists (and is key-share locked)."""
        q = connection.ops.quote_name
        with connection.cursor() as cur:
            for (table, column), keys in referenced.items():
                keys.discard(None)
                if not keys:
                    continue
                cur.execute(
                    f"SELECT {q(column)} FROM {q(table)} WHERE {q(column)} = ANY(%s) FOR KEY SHARE",  # noqa: S608
                    [list(keys)],
                )
                missing = keys - {r[0] for r in cur.fetchall()}
                if missing:
                    raise IntegrityError(
                        f"simulated rows reference {len(missing)} missing {table}.{column} value(s), "
                        f"e.g. {sorted(missing, key=str)[:3]}"
                    )
