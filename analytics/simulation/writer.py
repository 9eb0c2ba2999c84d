"""The simulator's only own part: its writer. Rows are collected per table in memory and COPYed (psycopg 3
`cursor.copy`, text format) in foreign-key order, one large COPY per table per batch; no ORM object per row.

The audit trail and bulk writes. The audit trail is pghistory's AFTER INSERT/UPDATE/DELETE row triggers, and they
fire for COPY too: with `audit=True` (the default: `simulate_trial`, `demo`, the tests) every synthetic row gets
its insert event, exactly as a row written by a service would, and the event tables roughly double the write
volume. With `audit=False` (bench/simulate.py, bench/scale.py) the *insert* triggers of the tables below are
skipped for the simulator's own transactions only, through pgtrigger's per-transaction switch
(`set_config('pgtrigger.ignore', …, true)`, i.e. SET LOCAL): update and delete triggers stay armed, every other
connection keeps auditing, and the rows the simulator still writes through the ORM (consent signatures,
allocations, the slots it takes, withdrawals, adverse events) are audited as usual under a pghistory context
whose metadata says `simulate_trial`. Synthetic rows are not clinical events: a trial simulated without insert
events is a demo or benchmark database, never evidence. The foreign-key triggers (deferred, checked at commit)
are never skipped.
"""

from __future__ import annotations

import time as clock
import uuid
from collections.abc import Iterable
from datetime import date, datetime, time

from django.db import connection

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
        ["uuid", "participant_id", "taken_at", "unit_code", "note", "study_day", "received_at", "idempotency_key"],
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


_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _text(v: str) -> str:
    if "\\" in v or "\t" in v or "\n" in v or "\r" in v:
        return v.translate(_ESCAPES)
    return v


# COPY text format of each Python type the simulator writes (type → formatter; exact types, no subclasses).
_FORMAT = {
    type(None): lambda v: "\\N",
    str: _text,
    bool: lambda v: "t" if v else "f",
    int: int.__repr__,
    float: float.__repr__,
    datetime: datetime.isoformat,
    date: date.isoformat,
    time: time.isoformat,
    uuid.UUID: uuid.UUID.__str__,
}


def copy_rows(table: str, columns: list[str], rows: Iterable) -> int:
    """One COPY … FROM STDIN of `rows` (tuples in `columns` order) into `table`, serialised here to the text
    format and sent in chunks of about 1 MB. Returns the row count."""
    q = connection.ops.quote_name
    fmt = _FORMAT
    n = 0
    lines: list[str] = []
    with connection.cursor() as cur, cur.copy(f"COPY {q(table)} ({', '.join(map(q, columns))}) FROM STDIN") as copy:  # noqa: S608
        for row in rows:
            lines.append("\t".join([fmt[type(v)](v) for v in row]))
            n += 1
            if len(lines) >= 5000:
                lines.append("")
                copy.write("\n".join(lines).encode())
                lines = []
        if lines:
            lines.append("")
            copy.write("\n".join(lines).encode())
    return n


def reserve_ids(model, n: int) -> range | list[int]:
    """Take n primary keys from the model's sequence in one round trip (ids need not be contiguous)."""
    if n <= 0:
        return []
    with connection.cursor() as cur:
        cur.execute(
            "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)",
            [model._meta.db_table, n],
        )
        return [r[0] for r in cur.fetchall()]


def insert_trigger_ids() -> list[str]:
    """pgtrigger's ids of the audit insert triggers on the simulator's tables (both spellings it accepts)."""
    import pgtrigger

    tables = {model._meta.db_table for model, _ in SPEC.values()}
    out = []
    for model, trigger in pgtrigger.registered():
        if model._meta.db_table in tables and trigger.name == "insert_insert":
            pgid = trigger.get_pgid(model)
            out += [pgid, f"{model._meta.db_table}:{pgid}"]
    return out


class BulkWriter:
    """Rows per table; `flush()` COPYs them in SPEC order inside the caller's transaction."""

    def __init__(self, *, audit: bool = True):
        self.audit = audit
        self.rows: dict[str, list] = {name: [] for name in SPEC}
        self.written: dict[str, int] = dict.fromkeys(SPEC, 0)
        self.seconds: dict[str, float] = dict.fromkeys(SPEC, 0.0)  # wall time of each table's COPYs
        self._ignore = None if audit else "{" + ",".join(insert_trigger_ids()) + "}"

    def add(self, name: str, row: tuple) -> None:
        self.rows[name].append(row)

    def flush(self) -> None:
        if self._ignore is not None:
            with connection.cursor() as cur:
                cur.execute("SELECT set_config('pgtrigger.ignore', %s, true)", [self._ignore])
        for name, (model, columns) in SPEC.items():
            rows = self.rows[name]
            if rows:
                started = clock.perf_counter()
                self.written[name] += copy_rows(model._meta.db_table, columns, rows)
                self.seconds[name] += clock.perf_counter() - started
                self.rows[name] = []
