# ruff: noqa: S608 - SQL here is built from model table names and constants only; the trial id is cast to int.
"""The column catalogue: every table of the export bundle, declared as data (columns, labels, value labels, SQL).

To add a table: append a `Table(...)` to the list `tables()` returns (its `source` joins the participant as `p`
and the site as `s`, so `_WHO` and the trial filter apply), and add any new model's table to `T`. The COPY
engine, the codebook, the formats and the blinded/unblinded selection then pick it up without further code.
A column or table marked `unblinded_only` never reaches the blinded bundle (see the leak test).
"""

from __future__ import annotations

from participants.kit_models import KitEnvelope
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
from trialsite.models import Site
from trialsite.protocol.schema import Protocol

from .columns import Column, Table, _bool, _day, _ts

T = {
    "participant": Participant._meta.db_table,
    "site": Site._meta.db_table,
    "instance": SurveyInstance._meta.db_table,
    "kit": KitEnvelope._meta.db_table,
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
            weight=100,
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
            weight=8,
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
                    "dose_day",
                    _bool(
                        f"EXISTS (SELECT 1 FROM {T['dose']} dd WHERE dd.participant_id = i.participant_id "
                        "AND (dd.taken_at AT TIME ZONE i.timezone)::date = i.local_date)"
                    ),
                    "boolean",
                    "A dose was logged on this day (the instance's local date, in the participant's zone)",
                    _BOOL,
                ),
                Column(
                    "dose_id",
                    f"(SELECT dd.uuid FROM {T['dose']} dd WHERE dd.id = i.dose_id)",
                    "string",
                    "The logged dose that opened this instance (after_dose schedule entries)",
                    missing="empty: not dose-anchored",
                ),
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
            weight=60,
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
        Table(
            "kit_envelopes",
            "UNBLINDED: one row per self-blinding envelope, its condition and the period it was opened for",
            [
                *_WHO,
                Column("envelope_id", "k.uuid", "string", "Envelope id (UUID)"),
                Column("code", "k.code", "string", "Envelope code (as typed, without the dash)"),
                Column("label_set", "k.label_set", "integer", "Label set on the kit sheet (1: the allocated arm)"),
                Column("label_number", "k.number", "integer", "Label number within its set"),
                Column("condition", "arm.code", "string", "Condition of the envelope's capsules (arm code)"),
                Column("condition_name", "arm.name", "string", "Condition of the envelope's capsules (arm name)"),
                Column("period", "k.period", "integer", "Period it was opened for", missing="empty: not recorded"),
                Column(
                    "recorded_at",
                    _ts("k.recorded_at"),
                    "timestamp",
                    "Code recorded at, UTC",
                    missing="empty: not recorded",
                ),
                Column(
                    "recorded_study_day",
                    "k.recorded_study_day",
                    "integer",
                    "Study day the code was recorded (participant's zone)",
                    missing="empty: not recorded",
                ),
                Column(
                    "recorded_source",
                    "k.recorded_source",
                    "string",
                    "Recorded through: api (kit screen), response (a kit_code item), sync or kit",
                    missing="empty: not recorded",
                ),
            ],
            f"{T['kit']} k JOIN {T['arm']} arm ON arm.id = k.condition_id JOIN {pf} ON p.id = k.participant_id",
            "p.study_id, k.label_set, k.number",
            unblinded_only=True,
        ),
        *_design_tables(protocol=protocol, pf=pf),
    ]


def _design_tables(*, protocol: Protocol | None, pf: str) -> list[Table]:
    """Covariates, blinding guesses by treatment, crossover treatment days (analytics.export_design)."""
    from ..export_design import design_tables

    return design_tables(
        protocol=protocol, Column=Column, Table=Table, T=T, who=_WHO, participant_from=pf, ts=_ts, boolean=_bool
    )


def bundle_tables(*, protocol: Protocol | None, blinded: bool) -> list[Table]:
    return [t for t in tables(protocol=protocol) if not (blinded and t.unblinded_only)]
