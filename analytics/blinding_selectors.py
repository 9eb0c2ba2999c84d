# ruff: noqa: S608 - SQL here is built from model table names and constants; values are bound parameters.
"""Blinding per time point, read from the database: the records `analytics.blinding_sessions` analyses.

A time point is one (schedule key, planned study day) of an instrument with a `guess` item: a dose-anchored or
planned session, or a period end. The treatment at that time point is the participant's arm, or in a crossover
trial the arm of the period the day falls in (a guess in a washout is about the period just ended).

The outcome (default: the change from baseline of the first scored instrument with a baseline event, e.g.
PHQ-9 total) is the participant's latest scored answer to a non-baseline event of that instrument within
`OUTCOME_WINDOW_DAYS` days up to the guess's day (in a crossover, in the same period), minus the
participant's baseline score of that instrument when there is one.

`blinding_session_figures` is UNBLINDED (arm-bearing): callers check `trialsite.roles.is_unblinded` first.
Blinded users get `selectors.blinding_guess_distribution` (overall counts only).
"""

from __future__ import annotations

from django.db import connection

from participants.models import Arm
from trialsite.models import Trial
from trialsite.protocol.schema import Protocol
from trialsite.protocol.services import ProtocolError, protocol_current

from .blinding_sessions import GuessRecord, session_figures
from .export import T

OUTCOME_WINDOW_DAYS = 7


def _rows(sql: str, params: list) -> list[dict]:
    with connection.cursor() as cur:
        cur.execute(sql, params)
        cols = [c.name for c in cur.description]
        return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]


def default_outcome(protocol: Protocol) -> tuple[str, str] | None:
    """(instrument slug, score key): the first instrument with a baseline event and a score of its own."""
    for event in protocol.schedule:
        if not event.baseline:
            continue
        inst = protocol.instrument(event.instrument)
        if inst.scoring and any(e.instrument == inst.slug and not e.baseline for e in protocol.schedule):
            return inst.slug, inst.scoring.scores[0].key
    return None


def parse_outcome(value: str | None, protocol: Protocol) -> tuple[str, str] | None:
    """'phq9.total' → ("phq9", "total"), checked against the protocol; ValueError names the problem."""
    if not value:
        return default_outcome(protocol)
    slug, _, score = value.partition(".")
    inst = next((i for i in protocol.instruments if i.slug == slug), None)
    if inst is None or not inst.scoring:
        raise ValueError(f"outcome: {slug!r} is not a scored instrument of this trial")
    keys = [s.key for s in inst.scoring.scores]
    score = score or keys[0]
    if score not in keys:
        raise ValueError(f"outcome: {slug} has no score {score!r} (scores: {', '.join(keys)})")
    return slug, score


def _guess_rows(trial: Trial, site_ids) -> list[dict]:
    extra, params = ("", []) if site_ids is None else (" AND p.site_id = ANY(%s)", [list(site_ids)])
    return _rows(
        f"""
        SELECT p.id AS pid, p.study_id, i.schedule_key, i.study_day, r.answers->>'guess' AS guess,
          CASE WHEN jsonb_typeof(r.answers->'confidence') = 'number' THEN (r.answers->>'confidence')::float END
            AS confidence,
          arm.code AS arm_code, sl.arm_sequence
        FROM {T["response"]} r JOIN {T["instance"]} i ON i.id = r.instance_id
          JOIN {T["participant"]} p ON p.id = r.participant_id
          JOIN {T["allocation"]} al ON al.participant_id = p.id
          JOIN {T["slot"]} sl ON sl.id = al.slot_id JOIN {T["arm"]} arm ON arm.id = sl.arm_id
        WHERE p.trial_id = %s{extra} AND r.answers ? 'guess'
        ORDER BY i.study_day, i.schedule_key, p.study_id
        """,
        [trial.pk, *params],
    )


def _outcome_rows(trial: Trial, site_ids, instrument: str, score: str) -> list[dict]:
    extra, params = ("", []) if site_ids is None else (" AND p.site_id = ANY(%s)", [list(site_ids)])
    return _rows(
        f"""
        SELECT r.participant_id AS pid, i.schedule_key, i.study_day, s.value
        FROM {T["score"]} s JOIN {T["response"]} r ON r.id = s.response_id
          JOIN {T["instance"]} i ON i.id = r.instance_id JOIN {T["instrument"]} ins ON ins.id = r.instrument_id
          JOIN {T["participant"]} p ON p.id = r.participant_id
        WHERE p.trial_id = %s{extra} AND ins.slug = %s AND s.key = %s AND s.scored AND s.value IS NOT NULL
        ORDER BY r.received_at
        """,
        [trial.pk, *params, instrument, score],
    )


def _envelope_conditions(trial: Trial) -> dict[tuple[int, int], str]:
    """Self-blinding: {(participant id, period): condition arm code} of the recorded envelopes (ARM-BEARING)."""
    from participants.kit_models import KitEnvelope

    rows = KitEnvelope.objects.filter(participant__trial=trial, period__isnull=False)
    return {
        (pid, period): code for pid, period, code in rows.values_list("participant_id", "period", "condition__code")
    }


def session_records(
    *, trial: Trial, site_ids=None, outcome: str | None = None
) -> tuple[dict[tuple[int, str], list[GuessRecord]], dict]:
    """UNBLINDED. {(planned day, schedule key): [GuessRecord]} and the analysis' description
    ({"arms", "outcome", "change_from_baseline", "crossover"}). Empty without a protocol or with other than two arms."""
    try:
        protocol = protocol_current(trial)
    except ProtocolError:
        return {}, {"arms": {}, "outcome": None, "change_from_baseline": False, "crossover": False}
    if len(protocol.arms) != 2:
        return {}, {
            "arms": {},
            "outcome": None,
            "change_from_baseline": False,
            "crossover": protocol.crossover is not None,
        }
    placebo = protocol.control_arm().code
    cx = protocol.crossover
    chosen = parse_outcome(outcome, protocol)
    baseline_keys = {e.key for e in protocol.schedule if e.baseline}
    baseline: dict[int, float] = {}
    follow_up: dict[int, list[tuple[int, float]]] = {}
    if chosen is not None:
        for row in _outcome_rows(trial, site_ids, *chosen):
            if row["schedule_key"] in baseline_keys:
                baseline.setdefault(row["pid"], row["value"])
            else:
                follow_up.setdefault(row["pid"], []).append((row["study_day"], row["value"]))
    points: dict[tuple[int, str], list[GuessRecord]] = {}
    seen: set[str] = set()
    starts = protocol.period_start_days()  # self-blinding: the treatment is the period's recorded envelope
    envelopes = _envelope_conditions(trial) if starts else {}
    for row in _guess_rows(trial, site_ids):
        day = row["study_day"]
        period = None
        if starts:
            code = envelopes.get((row["pid"], sum(1 for s in starts if s <= day)))
            if code is None:
                continue  # no envelope recorded for the period: its condition is unknown
        elif cx is not None and row["arm_sequence"]:
            period = cx.period_ending_by(day)
            if period is None:
                continue  # a guess before the first period is about nothing yet
            code = cx.sequence(row["arm_sequence"]).arms[period - 1]
        else:
            code = row["arm_code"]
        seen.add(code)
        value = None
        candidates = [
            (d, v)
            for d, v in follow_up.get(row["pid"], [])
            if day - OUTCOME_WINDOW_DAYS <= d <= day and (period is None or cx.period_ending_by(d) == period)
        ]
        if candidates:
            value = max(candidates, key=lambda dv: dv[0])[1]
            if row["pid"] in baseline:
                value -= baseline[row["pid"]]
        points.setdefault((day, row["schedule_key"]), []).append(
            GuessRecord(
                participant=row["study_id"],
                arm="placebo" if code == placebo else "active",
                guess=row["guess"] if row["guess"] in ("active", "placebo", "dont_know") else "dont_know",
                confidence=row["confidence"],
                outcome=value,
            )
        )
    names = dict(Arm.objects.filter(trial=trial, code__in=seen).values_list("code", "name"))
    about = {
        # The arms behind "active" and "placebo" in the figures below, as allocated (arm-bearing, like the figures).
        "arms": {
            label: [
                {"code": c, "name": names.get(c, "")} for c in sorted(seen) if (c == placebo) == (label == "placebo")
            ]
            for label in ("active", "placebo")
        },
        "outcome": f"{chosen[0]}.{chosen[1]}" if chosen else None,
        "change_from_baseline": bool(baseline),
        "crossover": cx is not None,
    }
    return points, about


def blinding_session_figures(
    *, trial: Trial, site_ids=None, outcome: str | None = None, conf: float = 0.95, cgrc_trials: int = 200
) -> dict:
    """UNBLINDED: per time point every figure of `analytics.blinding_sessions.session_figures`, and per period
    (crossover) the figures of each participant's last guess in that period.

    {"arms", "outcome", "change_from_baseline", "crossover", "time_points": [{"schedule_key", "planned_day", "period",
    "dose_number", ...figures}], "periods": [{"period", ...figures}]}."""
    points, about = session_records(trial=trial, site_ids=site_ids, outcome=outcome)
    protocol = protocol_current(trial) if points else None
    cx = protocol.crossover if protocol else None
    options = {"n_trials": cgrc_trials, "seed": trial.pk}
    out = []
    last_in_period: dict[int, dict[str, GuessRecord]] = {}
    for (day, key), records in sorted(points.items()):
        period = cx.period_ending_by(day) if cx else None
        out.append(
            {
                "schedule_key": key,
                "planned_day": day,
                "period": period,
                "dose_number": cx.dose_number(day) if cx else None,
                **session_figures(records, conf=conf, cgrc_options=options),
            }
        )
        if period is not None:
            last_in_period.setdefault(period, {}).update({r.participant: r for r in records})
    periods = [
        {"period": k, **session_figures(list(v.values()), conf=conf, cgrc_options=options)}
        for k, v in sorted(last_in_period.items())
    ]
    return {**about, "time_points": out, "periods": periods}
