# ruff: noqa: S608 - SQL here is built from model table names and constants only; the trial id is cast to int.
"""The export bundle: one long table per kind of data, a codebook and a checksummed manifest, in a zip.

Tables are streamed from PostgreSQL with `COPY (SELECT …) TO STDOUT WITH CSV HEADER` straight into the zip
entry (zipfile streaming write), so memory stays flat however large the trial. Parquet is converted from the
same stream in record batches (pyarrow); SPSS/Stata files (pyreadstat) carry variable and value labels and
are built per table in memory, so ask for them only when needed.

Consistency: every COPY and the codebook are read in ONE `REPEATABLE READ READ ONLY` transaction, so the
tables agree with each other even while answers are being submitted (a score never lacks its item answers);
the manifest records that snapshot (`snapshot`: its time, `pg_current_snapshot()` and xmin/xmax).

Blinding: the blinded bundle (the default) never contains an arm, an allocation or a dose-unit code; only the
unblinded bundle adds `allocation` (and dose-unit codes on doses). No table holds a name, e-mail, phone,
address, IP address, device id or push token: participants appear by study id only.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import queue
import shutil
import tempfile
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from django.conf import settings
from django.db import connection, transaction

from participants.models import (
    AdverseEvent,
    Allocation,
    AllocationSlot,
    Arm,
    ConsentDocument,
    ConsentSignature,
    DoseUnit,
    Participant,
    SafetyAlert,
    StaffBlindingGuess,
    SubstanceRecord,
    Withdrawal,
)
from surveys.models import (
    DoseLog,
    Instrument,
    ItemAnswer,
    PromptEvent,
    Reminder,
    Response,
    Score,
    SideEffect,
    SurveyInstance,
)
from trialsite.models import Site, Trial
from trialsite.protocol.schema import Protocol

FORMATS = ("csv", "parquet", "spss", "stata")
COMPRESSION = zipfile.ZIP_DEFLATED
COMPRESS_LEVEL = 1  # fast: the bundle keeps pace with COPY

T = {
    "participant": Participant._meta.db_table,
    "site": Site._meta.db_table,
    "instance": SurveyInstance._meta.db_table,
    "instrument": Instrument._meta.db_table,
    "response": Response._meta.db_table,
    "item": ItemAnswer._meta.db_table,
    "score": Score._meta.db_table,
    "dose": DoseLog._meta.db_table,
    "side_effect": SideEffect._meta.db_table,
    "ae": AdverseEvent._meta.db_table,
    "alert": SafetyAlert._meta.db_table,
    "withdrawal": Withdrawal._meta.db_table,
    "allocation": Allocation._meta.db_table,
    "slot": AllocationSlot._meta.db_table,
    "arm": Arm._meta.db_table,
    "unit": DoseUnit._meta.db_table,
    "signature": ConsentSignature._meta.db_table,
    "document": ConsentDocument._meta.db_table,
    "reminder": Reminder._meta.db_table,
    "event": PromptEvent._meta.db_table,
    "staff_guess": StaffBlindingGuess._meta.db_table,
    "substance": SubstanceRecord._meta.db_table,
}


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

    def visible_columns(self, blinded: bool) -> list[Column]:
        return [c for c in self.columns if not (blinded and c.unblinded_only)]

    def sql(self, *, trial_id: int, blinded: bool) -> str:
        cols = ",\n  ".join(f'{c.expr} AS "{c.name}"' for c in self.visible_columns(blinded))
        where = f"p.trial_id = {int(trial_id)}" + (f" AND ({self.where})" if self.where else "")
        return f"SELECT\n  {cols}\nFROM {self.source}\nWHERE {where}\nORDER BY {self.order_by}"  # noqa: S608


def _bool(expr: str) -> str:
    return f"({expr})::text"


_WHO = [
    Column("study_id", "p.study_id", "string", "Study id of the participant"),
    Column("site", "s.code", "string", "Site code"),
]
_MISSING_DAY = "empty: no study day 0 (not randomised)"
_STATUS = {
    "screen_failed": "screen failed",
    "registered": "registered (code issued)",
    "enrolled": "enrolled (phone linked)",
    "randomised": "randomised",
    "completed": "completed",
    "withdrawn": "withdrawn",
}
_INSTANCE_STATUS = {"scheduled": "scheduled", "completed": "completed", "missed": "missed", "cancelled": "cancelled"}
_SEVERITY = {"mild": "mild", "moderate": "moderate", "severe": "severe"}
_SCOPE = {"intervention": "stop intervention only", "all": "stop all further contact and data collection"}
_GUESS = {"active": "Active", "placebo": "Placebo", "dont_know": "I don't know"}
_RATER = {"participant": "participant", "coordinator": "coordinator (site coordinator or trial manager)"}
_BOOL = {"true": "true", "false": "false"}


def _participant_from() -> str:
    return f"{T['participant']} p JOIN {T['site']} s ON s.id = p.site_id"


def tables(*, protocol: Protocol | None) -> list[Table]:
    elig = [
        Column(
            f"elig_{c.key}",
            _bool(f"(p.eligibility->>'{c.key}')::boolean"),
            "boolean",
            f"Eligibility: {c.text}"[:250],
            _BOOL,
            missing="empty: not recorded",
        )
        for c in (protocol.eligibility if protocol else [])
        if c.key.replace("_", "").isalnum()
    ]
    pf = _participant_from()
    resp_from = (
        f"{T['response']} r JOIN {T['instance']} i ON i.id = r.instance_id "
        f"JOIN {T['instrument']} ins ON ins.id = r.instrument_id "
        f"JOIN {T['participant']} p ON p.id = r.participant_id JOIN {T['site']} s ON s.id = p.site_id"
    )
    instrument_cols = [
        Column("instrument", "ins.slug", "string", "Instrument slug"),
        Column("instrument_version", "ins.version", "integer", "Instrument version"),
        Column("schedule_key", "i.schedule_key", "string", "Schedule event of the protocol"),
        Column("planned_day", "i.study_day", "integer", "Planned study day (relative to the schedule anchor)"),
        Column("response_id", "r.uuid", "string", "Response id (UUID)"),
    ]
    authored = [
        Column("authored_at", _ts("r.authored_at"), "timestamp", "Answered at (participant's clock), UTC"),
        Column("received_at", _ts("r.received_at"), "timestamp", "Received by the server, UTC"),
        Column(
            "study_day",
            "r.study_day",
            "integer",
            "Study day answered (participant's zone when it was recorded)",
            missing=_MISSING_DAY,
        ),
        Column("late", _bool("r.late"), "boolean", "Answered after the window closed (within grace)", _BOOL),
    ]
    return [
        Table(
            "participants",
            "One row per participant (screened, enrolled or randomised)",
            [
                *_WHO,
                Column("status", "p.status", "string", "Participant status", _STATUS),
                Column("timezone", "p.timezone", "string", "IANA time zone the schedule is planned in"),
                Column("eligible", _bool("p.eligible"), "boolean", "All eligibility criteria met", _BOOL),
                *elig,
                Column("stratum", "p.stratum", "string", "Randomisation stratum", missing="empty: not randomised"),
                Column("registered_at", _ts("p.registered_at"), "timestamp", "Registered at, UTC"),
                Column(
                    "enrolled_at",
                    _ts("p.enrolled_at"),
                    "timestamp",
                    "Phone linked at, UTC",
                    missing="empty: never enrolled",
                ),
                Column(
                    "consent_version",
                    f"(SELECT d.version FROM {T['signature']} c JOIN {T['document']} d ON d.id = c.document_id "
                    "WHERE c.participant_id = p.id ORDER BY c.signed_at DESC, c.id DESC LIMIT 1)",
                    "string",
                    "Latest consent document version signed",
                    missing="empty: not consented",
                ),
                Column(
                    "consented_at",
                    _ts(f"(SELECT min(c.signed_at) FROM {T['signature']} c WHERE c.participant_id = p.id)"),
                    "timestamp",
                    "First consent signed at, UTC",
                    missing="empty: not consented",
                ),
                Column(
                    "randomised_at",
                    _ts("p.randomised_at"),
                    "timestamp",
                    "Randomised at, UTC",
                    missing="empty: not randomised",
                ),
                Column(
                    "day0",
                    "p.day0",
                    "date",
                    "Study day 0: local date of randomisation",
                    missing="empty: not randomised",
                ),
                Column(
                    "completed_on",
                    "p.completed_on",
                    "date",
                    "End of study: local date the schedule was complete",
                    missing="empty: not completed",
                ),
                Column(
                    "withdrawn_at",
                    _ts("p.withdrawn_at"),
                    "timestamp",
                    "Withdrawn at, UTC",
                    missing="empty: not withdrawn",
                ),
                Column(
                    "withdrawal_scope",
                    "p.withdrawal_scope",
                    "string",
                    "Withdrawal scope",
                    _SCOPE,
                    missing="empty: not withdrawn",
                ),
            ],
            pf,
            "p.study_id",
        ),
        Table(
            "responses",
            "One row per item answer",
            [
                *_WHO,
                *instrument_cols,
                Column("item", "a.item_key", "string", "Item key (see the item rows of this codebook)"),
                Column(
                    "value",
                    "a.value #>> '{}'",
                    "string",
                    "Answer as given (number, choice value, true/false or text)",
                    missing="empty: no answer",
                ),
                Column(
                    "value_numeric",
                    "a.value_numeric",
                    "float",
                    "Answer as a number where numeric",
                    missing="empty: not numeric",
                ),
                *authored,
            ],
            f"{T['item']} a JOIN {resp_from} ON r.id = a.response_id",
            "p.study_id, r.authored_at, r.id, a.id",
        ),
        Table(
            "scores",
            "One row per score of a scored response",
            [
                *_WHO,
                *instrument_cols,
                Column("score", "sc.key", "string", "Score key (e.g. total)"),
                Column("value", "sc.value", "float", "Score value", missing="empty: not scored (items missing)"),
                Column("band", "sc.band", "string", "Severity band of the score", missing="empty: no band"),
                Column("scored", _bool("sc.scored"), "boolean", "Score could be computed", _BOOL),
                Column("items_missing", "sc.items_missing", "integer", "Number of items missing"),
                *authored,
            ],
            f"{T['score']} sc JOIN {resp_from} ON r.id = sc.response_id",
            "p.study_id, r.authored_at, r.id, sc.key",
        ),
        Table(
            "schedule",
            "One row per planned survey instance: due, sent, delivered, opened, answered, latency, status",
            [
                *_WHO,
                Column("instance_id", "i.uuid", "string", "Survey instance id (UUID)"),
                Column("instrument", "ins.slug", "string", "Instrument slug"),
                Column("instrument_version", "ins.version", "integer", "Instrument version"),
                Column("schedule_key", "i.schedule_key", "string", "Schedule event of the protocol"),
                Column("planned_day", "i.study_day", "integer", "Planned study day (relative to the schedule anchor)"),
                Column("timezone", "i.timezone", "string", "IANA zone the instance was planned in"),
                Column("local_date", "i.local_date", "date", "Planned local date"),
                Column(
                    "local_time", "i.local_time", "time", "Planned local time", missing="empty: opens at the anchor"
                ),
                Column("due_at", _ts("i.opens_at"), "timestamp", "Opens (due) at, UTC"),
                Column("closes_at", _ts("i.closes_at"), "timestamp", "Closes at, UTC"),
                Column("grace_until", _ts("i.grace_until"), "timestamp", "Late answers accepted until, UTC"),
                Column(
                    "first_sent_at",
                    _ts("rm.first_sent"),
                    "timestamp",
                    "First reminder sent at, UTC",
                    missing="empty: none sent",
                ),
                Column("reminders_sent", "coalesce(rm.n_sent, 0)", "integer", "Reminders sent"),
                Column(
                    "delivered_at",
                    _ts("ev.delivered"),
                    "timestamp",
                    "Prompt delivered to the phone, UTC",
                    missing="empty: not reported",
                ),
                Column(
                    "opened_at",
                    _ts("ev.opened"),
                    "timestamp",
                    "Prompt opened on the phone, UTC",
                    missing="empty: not reported",
                ),
                Column(
                    "answered_at",
                    _ts("r.received_at"),
                    "timestamp",
                    "Answer received, UTC",
                    missing="empty: not answered",
                ),
                Column(
                    "authored_at",
                    _ts("r.authored_at"),
                    "timestamp",
                    "Answered at (participant's clock), UTC",
                    missing="empty: not answered",
                ),
                Column(
                    "latency_seconds",
                    "round(extract(epoch FROM (r.authored_at - i.opens_at))::numeric, 3)",
                    "float",
                    "Seconds from opening to answer",
                    unit="s",
                    missing="empty: not answered",
                ),
                Column(
                    "late",
                    _bool("r.late"),
                    "boolean",
                    "Answered after closing (within grace)",
                    _BOOL,
                    missing="empty: not answered",
                ),
                Column("status", "i.status", "string", "Instance status", _INSTANCE_STATUS),
                Column(
                    "cancel_reason",
                    "i.cancel_reason",
                    "string",
                    "Why the instance was cancelled",
                    missing="empty: not cancelled",
                ),
            ],
            f"{T['instance']} i JOIN {T['instrument']} ins ON ins.id = i.instrument_id "
            f"JOIN {T['participant']} p ON p.id = i.participant_id JOIN {T['site']} s ON s.id = p.site_id "
            f"LEFT JOIN {T['response']} r ON r.instance_id = i.id "
            f"LEFT JOIN (SELECT instance_id, min(sent_at) FILTER (WHERE status = 'sent') AS first_sent, "
            f"count(*) FILTER (WHERE status = 'sent') AS n_sent FROM {T['reminder']} GROUP BY instance_id) rm "
            "ON rm.instance_id = i.id "
            f"LEFT JOIN (SELECT instance_id, min(at) FILTER (WHERE kind = 'delivered') AS delivered, "
            f"min(at) FILTER (WHERE kind = 'opened') AS opened FROM {T['event']} GROUP BY instance_id) ev "
            "ON ev.instance_id = i.id",
            "p.study_id, i.opens_at, i.id",
        ),
        Table(
            "doses",
            "One row per dose logged by the participant",
            [
                *_WHO,
                Column("dose_id", "d.uuid", "string", "Dose log id (UUID)"),
                Column("taken_at", _ts("d.taken_at"), "timestamp", "Dose taken at, UTC"),
                Column(
                    "study_day",
                    "d.study_day",
                    "integer",
                    "Study day of the dose (participant's zone when it was recorded)",
                    missing=_MISSING_DAY,
                ),
                Column("received_at", _ts("d.received_at"), "timestamp", "Received by the server, UTC"),
                Column(
                    "unit_code",
                    "d.unit_code",
                    "string",
                    "Dose-unit label used",
                    missing="empty: not given",
                    unblinded_only=True,
                ),
                Column("note", "d.note", "string", "Participant's note", missing="empty: none"),
            ],
            f"{T['dose']} d JOIN {pf} ON p.id = d.participant_id",
            "p.study_id, d.taken_at, d.id",
        ),
        Table(
            "side_effects",
            "One row per side effect reported by the participant",
            [
                *_WHO,
                Column("side_effect_id", "se.uuid", "string", "Side effect report id (UUID)"),
                Column("started_on", "se.started_on", "date", "Started on (local date)"),
                Column("onset_day", "(se.started_on - p.day0)", "integer", "Study day of onset", missing=_MISSING_DAY),
                Column("description", "se.description", "string", "Description (participant's words)"),
                Column("severity", "se.severity", "string", "Severity", _SEVERITY),
                Column("serious", _bool("se.serious"), "boolean", "Reported as serious", _BOOL),
                Column("ongoing", _bool("se.ongoing"), "boolean", "Ongoing when reported", _BOOL),
                Column("reported_at", _ts("se.reported_at"), "timestamp", "Reported at, UTC"),
                Column(
                    "study_day",
                    "se.study_day",
                    "integer",
                    "Study day reported (participant's zone when it was recorded)",
                    missing=_MISSING_DAY,
                ),
            ],
            f"{T['side_effect']} se JOIN {pf} ON p.id = se.participant_id",
            "p.study_id, se.reported_at, se.id",
        ),
        Table(
            "adverse_events",
            "One row per adverse event report entered by staff (follow-ups point at the report they update)",
            [
                *_WHO,
                Column("ae_id", "ae.uuid", "string", "Adverse event report id (UUID)"),
                Column(
                    "follow_up_of",
                    f"(SELECT prev.uuid FROM {T['ae']} prev WHERE prev.id = ae.previous_id)",
                    "string",
                    "Report this one updates",
                    missing="empty: initial report",
                ),
                Column("onset", "ae.onset", "date", "Onset (local date)"),
                Column("onset_day", "(ae.onset - p.day0)", "integer", "Study day of onset", missing=_MISSING_DAY),
                Column("description", "ae.description", "string", "Description"),
                Column(
                    "severity_grade",
                    "ae.severity_grade",
                    "integer",
                    "Severity grade (CTCAE-style)",
                    {str(g): f"grade {g}" for g in range(1, 6)},
                ),
                Column("serious", _bool("ae.serious"), "boolean", "Serious adverse event", _BOOL),
                Column(
                    "seriousness_criteria",
                    "array_to_string(ARRAY(SELECT jsonb_array_elements_text(ae.seriousness_criteria)), ';')",
                    "string",
                    "Seriousness criteria (;-separated)",
                    missing="empty: not serious",
                ),
                Column(
                    "relatedness",
                    "ae.relatedness",
                    "string",
                    "Relatedness to the intervention",
                    {c: c.replace("_", " ") for c in ("not_related", "unlikely", "possible", "probable", "definite")},
                ),
                Column("action_taken", "ae.action_taken", "string", "Action taken with the intervention"),
                Column("outcome", "ae.outcome", "string", "Outcome"),
                Column("reported_at", _ts("ae.reported_at"), "timestamp", "Reported at, UTC"),
                Column(
                    "study_day",
                    f"coalesce(ae.study_day, {_day('ae.reported_at')})",
                    "integer",
                    "Study day reported (as recorded; computed for reports made before day 0)",
                    missing=_MISSING_DAY,
                ),
            ],
            f"{T['ae']} ae JOIN {pf} ON p.id = ae.participant_id",
            "p.study_id, ae.reported_at, ae.id",
        ),
        Table(
            "safety_alerts",
            "One row per safety alert raised by a protocol safety rule",
            [
                *_WHO,
                Column("alert_id", "sa.uuid", "string", "Alert id (UUID)"),
                Column("rule", "sa.rule", "string", "Protocol safety rule"),
                Column("title", "sa.title", "string", "Rule title"),
                Column(
                    "severity",
                    "sa.severity",
                    "string",
                    "Alert severity",
                    {"urgent": "urgent", "high": "high", "moderate": "moderate"},
                ),
                Column("source_kind", "sa.source_kind", "string", "Kind of triggering record"),
                Column("source_id", "sa.source_id", "string", "Id (UUID) of the triggering record"),
                Column(
                    "status",
                    "sa.status",
                    "string",
                    "Alert status",
                    {"open": "open", "escalated": "escalated", "acknowledged": "acknowledged"},
                ),
                Column("raised_at", _ts("sa.raised_at"), "timestamp", "Raised at, UTC"),
                Column(
                    "study_day",
                    f"coalesce(sa.study_day, {_day('sa.raised_at')})",
                    "integer",
                    "Study day raised (as recorded; computed for alerts raised before day 0)",
                    missing=_MISSING_DAY,
                ),
                Column("due_at", _ts("sa.due_at"), "timestamp", "Acknowledgement due at, UTC"),
                Column(
                    "escalated_at",
                    _ts("sa.escalated_at"),
                    "timestamp",
                    "Escalated at, UTC",
                    missing="empty: not escalated",
                ),
                Column(
                    "acknowledged_at",
                    _ts("sa.acknowledged_at"),
                    "timestamp",
                    "Acknowledged at, UTC",
                    missing="empty: not acknowledged",
                ),
                Column(
                    "hours_to_acknowledge",
                    "round((extract(epoch FROM (sa.acknowledged_at - sa.raised_at)) / 3600)::numeric, 3)",
                    "float",
                    "Hours from raising to acknowledgement",
                    unit="h",
                    missing="empty: not acknowledged",
                ),
            ],
            f"{T['alert']} sa JOIN {pf} ON p.id = sa.participant_id",
            "p.study_id, sa.raised_at, sa.id",
        ),
        Table(
            "blinding_guesses",
            "One row per blinding guess (which arm the rater believes): the participants' blinding-guess answers "
            "and the coordinators' guesses at the same time points",
            [
                *_WHO,
                Column(
                    "response_id",
                    "g.response_id",
                    "string",
                    "Id (UUID) of the participant's response or of the coordinator's guess",
                ),
                Column(
                    "schedule_key",
                    "g.schedule_key",
                    "string",
                    "Schedule event of the protocol",
                    missing="empty: coordinator guess (see time_point)",
                ),
                Column("planned_day", "g.planned_day", "integer", "Planned study day of the time point"),
                Column("time_point", "g.time_point", "string", "Blinding-guess time point: day_<planned study day>"),
                Column("rater", "g.rater", "string", "Who guessed", _RATER),
                Column(
                    "respondent", "g.rater", "string", "Who guessed (same as rater; kept for compatibility)", _RATER
                ),
                Column("guess", "g.guess", "string", "Guess", _GUESS),
                Column(
                    "confidence",
                    "g.confidence",
                    "float",
                    "Confidence in the guess",
                    unit="0-100",
                    missing="empty: not answered",
                ),
                Column(
                    "authored_at",
                    _ts("g.authored_at"),
                    "timestamp",
                    "Answered (participant) or recorded (coordinator) at, UTC",
                ),
                Column(
                    "study_day",
                    f"coalesce(g.study_day, {_day('g.authored_at')})",
                    "integer",
                    "Study day answered (participants: as recorded)",
                    missing=_MISSING_DAY,
                ),
            ],
            f"""(
              SELECT r.participant_id, r.id AS row_id, r.uuid AS response_id, i.schedule_key,
                i.study_day AS planned_day, 'day_' || i.study_day AS time_point, 'participant' AS rater,
                r.answers->>'guess' AS guess, (r.answers->>'confidence')::numeric AS confidence, r.authored_at,
                r.study_day
              FROM {T["response"]} r JOIN {T["instance"]} i ON i.id = r.instance_id
              WHERE r.answers ? 'guess'
              UNION ALL
              SELECT sg.participant_id, sg.id, sg.uuid, NULL,
                substr(sg.time_point, 5)::integer, sg.time_point, 'coordinator',
                sg.guess, sg.confidence::numeric, sg.recorded_at, NULL::integer
              FROM {T["staff_guess"]} sg
            ) g JOIN {pf} ON p.id = g.participant_id""",
            "p.study_id, g.authored_at, g.rater, g.row_id",
        ),
        Table(
            "withdrawals",
            "One row per withdrawal",
            [
                *_WHO,
                Column("withdrawal_id", "w.uuid", "string", "Withdrawal id (UUID)"),
                Column("scope", "w.scope", "string", "Scope", _SCOPE),
                Column("reason", "w.reason", "string", "Reason given", missing="empty: none given"),
                Column(
                    "by_participant",
                    _bool("w.by_participant"),
                    "boolean",
                    "Withdrawn by the participant (else staff)",
                    _BOOL,
                ),
                Column("withdrawn_at", _ts("w.withdrawn_at"), "timestamp", "Withdrawn at, UTC"),
                Column(
                    "study_day",
                    f"coalesce(w.study_day, {_day('w.withdrawn_at')})",
                    "integer",
                    "Study day of withdrawal (as recorded; computed for withdrawals before day 0)",
                    missing=_MISSING_DAY,
                ),
            ],
            f"{T['withdrawal']} w JOIN {pf} ON p.id = w.participant_id",
            "p.study_id, w.withdrawn_at, w.id",
        ),
        Table(
            "allocation",
            "UNBLINDED: one row per randomised participant with the arm allocated",
            [
                *_WHO,
                Column("stratum", "sl.stratum", "string", "Randomisation stratum"),
                Column("sequence", "sl.sequence", "integer", "Position in the stratum's list"),
                Column("block", "sl.block_number", "integer", "Block number"),
                Column("block_size", "sl.block_size", "integer", "Block size"),
                Column("arm", "arm.code", "string", "Arm code"),
                Column("arm_name", "arm.name", "string", "Arm name"),
                Column("allocated_at", _ts("al.allocated_at"), "timestamp", "Allocated at, UTC"),
                Column(
                    "unit_codes",
                    f"(SELECT string_agg(u.code, ';' ORDER BY u.number) FROM {T['unit']} u WHERE u.slot_id = sl.id)",
                    "string",
                    "Dose-unit labels of the allocation (;-separated)",
                ),
            ],
            f"{T['allocation']} al JOIN {T['slot']} sl ON sl.id = al.slot_id JOIN {T['arm']} arm ON arm.id = sl.arm_id "
            f"JOIN {pf} ON p.id = al.participant_id",
            "p.study_id",
            unblinded_only=True,
        ),
        *_design_tables(protocol=protocol, pf=pf),
    ]


def _design_tables(*, protocol: Protocol | None, pf: str) -> list[Table]:
    """Covariates, blinding guesses by treatment, crossover treatment days (analytics.export_design)."""
    from .export_design import design_tables

    return design_tables(
        protocol=protocol, Column=Column, Table=Table, T=T, who=_WHO, participant_from=pf, ts=_ts, boolean=_bool
    )


def bundle_tables(*, protocol: Protocol | None, blinded: bool) -> list[Table]:
    return [t for t in tables(protocol=protocol) if not (blinded and t.unblinded_only)]


# --- codebook ----------------------------------------------------------------------------------------------

CODEBOOK_COLUMNS = [
    "table",
    "variable",
    "item",
    "label",
    "type",
    "allowed_values",
    "value_labels",
    "unit",
    "instrument",
    "instrument_version",
    "missing",
]


def codebook_rows(*, trial: Trial, protocol: Protocol | None, blinded: bool) -> list[dict]:
    rows = []
    for table in bundle_tables(protocol=protocol, blinded=blinded):
        for c in table.visible_columns(blinded):
            rows.append(
                {
                    "table": table.name,
                    "variable": c.name,
                    "item": "",
                    "label": c.label,
                    "type": c.type,
                    "allowed_values": ";".join(c.values) if c.values else "",
                    "value_labels": ";".join(f"{k}={v}" for k, v in c.values.items()) if c.values else "",
                    "unit": c.unit,
                    "instrument": "",
                    "instrument_version": "",
                    "missing": c.missing,
                }
            )
    # Every item of every instrument version: what `responses.value` means for that item.
    for ins in Instrument.objects.filter(trial=trial).order_by("slug", "version"):
        d = ins.definition or {}
        choice_sets = d.get("choice_sets") or {}
        for item in d.get("items", []):
            choices = item.get("choices")
            if isinstance(choices, str):
                choices = choice_sets.get(choices, [])
            choices = choices or []
            if item.get("type") == "boolean":
                allowed, labels = "true;false", "true=yes;false=no"
            else:
                allowed = ";".join(str(c["value"]) for c in choices)
                labels = ";".join(f"{c['value']}={c['label']}" for c in choices)
            unit = ""
            if item.get("min") is not None or item.get("max") is not None:
                unit = f"{_num(item.get('min'))}-{_num(item.get('max'))}"
            rows.append(
                {
                    "table": "responses",
                    "variable": "value",
                    "item": item["key"],
                    "label": item.get("text", ""),
                    "type": {"choice": "choice", "slider": "integer", "boolean": "boolean"}.get(
                        item.get("type"), item.get("type", "")
                    ),
                    "allowed_values": allowed,
                    "value_labels": labels,
                    "unit": unit,
                    "instrument": ins.slug,
                    "instrument_version": str(ins.version),
                    "missing": "no row: not answered" + ("" if item.get("required", True) else " (optional item)"),
                }
            )
        for score in (d.get("scoring") or {}).get("scores", []):
            bands = score.get("bands") or []
            rows.append(
                {
                    "table": "scores",
                    "variable": "value",
                    "item": score["key"],
                    "label": f"{ins.title}: {score['method']} of {', '.join(score.get('items', []))}",
                    "type": "float",
                    "allowed_values": "",
                    "value_labels": ";".join(f"{_num(b['min'])}-{_num(b['max'])}={b['label']}" for b in bands),
                    "unit": "",
                    "instrument": ins.slug,
                    "instrument_version": str(ins.version),
                    "missing": f"empty: not scored ({score.get('missing', 'not_scored')})",
                }
            )
    return rows


def _num(v) -> str:
    if v is None:
        return ""
    return str(int(v)) if float(v).is_integer() else str(v)


# --- writing the bundle ------------------------------------------------------------------------------------


@dataclass
class BundleResult:
    path: Path
    sha256: str
    size_bytes: int
    manifest: dict
    files: list[dict] = field(default_factory=list)


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


# While a large table streams, the progress callback (the job's heartbeat) is called every TICK_BYTES of CSV
# or TICK_SECONDS, whichever comes first, not only between tables.
TICK_BYTES = 8 << 20
TICK_SECONDS = 15.0


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


# --- one snapshot for the whole bundle -------------------------------------------------------------------


def _snapshot_facts() -> dict:
    with connection.cursor() as cur:
        cur.execute(
            "SELECT statement_timestamp(), current_setting('transaction_isolation'), "
            "current_setting('transaction_read_only'), pg_current_snapshot()::text, "
            "pg_snapshot_xmin(pg_current_snapshot())::text, pg_snapshot_xmax(pg_current_snapshot())::text"
        )
        taken_at, isolation, read_only, snap, xmin, xmax = cur.fetchone()
    return {
        "taken_at": taken_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "isolation": isolation,
        "read_only": read_only == "on",
        "pg_snapshot": snap,
        "xmin": int(xmin),
        "xmax": int(xmax),
    }


@contextmanager
def bundle_snapshot() -> Iterator[dict]:
    """Everything read inside sees one state of the database; yields the facts the manifest records.

    Outside a transaction (the worker, the command) this opens `REPEATABLE READ READ ONLY` and takes the
    snapshot with its first statement. Inside a caller's transaction (tests under pytest-django) the isolation
    can no longer be set: the bundle is read in that transaction and the manifest says which isolation it had.
    """
    if connection.in_atomic_block:
        yield _snapshot_facts()
        return
    with transaction.atomic():
        with connection.cursor() as cur:
            cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        yield _snapshot_facts()


def copy_to(sql: str, sink, *, threaded: bool = True, tick: Callable[[], None] | None = None) -> int:
    """COPY (sql) TO STDOUT WITH CSV HEADER into `sink.write`; returns the row count.

    With `threaded`, a reader thread drains the COPY stream while this thread compresses and hashes, so
    PostgreSQL, the network read and zlib (which releases the GIL) overlap. `tick` is called in this thread
    between chunks (a time-based heartbeat while a slow query has not produced TICK_BYTES yet).
    """
    statement = f"COPY ({sql}) TO STDOUT WITH (FORMAT csv, HEADER true)"
    with connection.cursor() as cur:
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
) -> BundleResult:
    """Write the export bundle (zip) to `out`. Callers check permissions (unblinded needs the role).

    The whole bundle is read in one snapshot (`bundle_snapshot`). `progress(fraction)` is called after each
    table and, while a table streams, every TICK_BYTES / TICK_SECONDS: the job's heartbeat. It may raise to
    abandon the export (a lost lease); the partial file is then left for the caller to remove.
    """
    with bundle_snapshot() as snapshot:
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
        )


def _write_bundle(*, trial, out, blinded, formats, user, reason, export_id, progress, snapshot) -> BundleResult:
    formats = [f for f in FORMATS if f in set(formats) | {"csv"}]
    trial = Trial.objects.get(pk=trial.pk)  # read in the snapshot like everything else
    version = trial.current_protocol
    protocol = Protocol.model_validate(version.definition) if version else None
    chosen = bundle_tables(protocol=protocol, blinded=blinded)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    files: list[dict] = []
    steps = len(chosen) + 1
    # Named after the bundle, so whoever cleans up after a killed run finds it (`.<bundle name>.tmp-*`).
    tmpdir = tempfile.mkdtemp(prefix=f"{'' if out.name.startswith('.') else '.'}{out.name}.tmp-", dir=out.parent)
    try:
        with zipfile.ZipFile(out, "w", compression=COMPRESSION, compresslevel=COMPRESS_LEVEL, allowZip64=True) as zf:
            for n, table in enumerate(chosen):
                columns = table.visible_columns(blinded)
                sql = table.sql(trial_id=trial.pk, blinded=blinded)
                need_csv_copy = any(f != "csv" for f in formats)
                csv_tmp = os.path.join(tmpdir, f"{table.name}.csv")
                tee = open(csv_tmp, "wb") if need_csv_copy else None  # noqa: SIM115 - closed below
                ticker = _Ticker(progress, n / steps)
                try:
                    with zf.open(f"{table.name}.csv", "w", force_zip64=True) as raw:
                        w = _HashingWriter(raw, tee=tee, tick=ticker)
                        rows = copy_to(sql, w, tick=ticker.maybe)
                finally:
                    if tee is not None:
                        tee.close()
                files.append(
                    {
                        "name": f"{table.name}.csv",
                        "table": table.name,
                        "format": "csv",
                        "rows": rows,
                        "sha256": w.sha.hexdigest(),
                        "bytes": w.bytes,
                    }
                )
                if "parquet" in formats:
                    ticker()
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
                        ticker()
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
