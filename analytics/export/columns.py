# ruff: noqa: S608 - SQL built from the catalogue's constants only; the trial id is cast to int.
"""What a catalogue entry is: a `Column` (SQL expression, type, label, value labels) and a `Table` (columns,
FROM clause, order), with the SQL helpers the catalogue's expressions use."""

from __future__ import annotations

from dataclasses import dataclass


def _ts(expr: str) -> str:
    """A timestamptz as ISO 8601 UTC text (…Z)."""
    return f"""to_char(({expr}) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')"""


def _day(expr: str) -> str:
    """Study day of an instant in the participant's CURRENT zone (day 0 = randomisation date).

    Rows store their study day when recorded (responses, doses, side effects, adverse events, safety alerts,
    withdrawals) and are exported as stored, so a later zone change never rewrites a past study day; this is
    the fallback for rows recorded before day 0 and for coordinators' guesses.
    """
    return f"((({expr}) AT TIME ZONE p.timezone)::date - p.day0)"


@dataclass(frozen=True)
class Column:
    name: str
    expr: str
    type: str  # string, integer, float, boolean, timestamp, date, time
    label: str
    values: dict | None = None  # allowed value → label
    unit: str = ""
    missing: str = ""
    unblinded_only: bool = False


@dataclass(frozen=True)
class Table:
    name: str
    label: str
    columns: list[Column]
    source: str  # FROM … (alias p for the participant, s for the site)
    order_by: str
    unblinded_only: bool = False
    where: str = ""
    weight: int = 1  # relative copy time (bench/export.py: responses ~ 100), for a parallel export: largest first

    def visible_columns(self, blinded: bool) -> list[Column]:
        return [c for c in self.columns if not (blinded and c.unblinded_only)]

    def sql(self, *, trial_id: int, blinded: bool) -> str:
        cols = ",\n  ".join(f'{c.expr} AS "{c.name}"' for c in self.visible_columns(blinded))
        where = f"p.trial_id = {int(trial_id)}" + (f" AND ({self.where})" if self.where else "")
        return f"SELECT\n  {cols}\nFROM {self.source}\nWHERE {where}\nORDER BY {self.order_by}"  # noqa: S608


def _bool(expr: str) -> str:
    return f"({expr})::text"
