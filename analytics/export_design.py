# ruff: noqa: S608 - SQL built from model table names and protocol values validated at load (quoted by _lit).
"""Export tables of the trial design (added to the catalogue by `analytics.export.tables`):

- `covariates` (blinded bundle too): per participant the baseline expectancy score (instrument `expectancy`,
  when the protocol has it) and the substance and amount per active unit (the participant's own record when
  they bring their own, else the protocol's) — the same whatever the arm, so not arm-bearing;
- `guess_treatment` (UNBLINDED): one row per participant guess with the treatment at that time point (in a
  crossover, the arm of the period; a guess in a washout is about the period just ended) and whether it was
  correct: the data behind the per-session correct-guess rates and the CGRC;
- `treatment_days` (UNBLINDED, crossover trials only): one row per participant and study day from day 0 to the
  last period's end: period (empty in a washout), sequence, treatment, planned dose day. Join any dated row
  (responses, scores, doses) on study_id and study day to get its period and treatment.
"""

from __future__ import annotations

from trialsite.protocol.schema import Protocol


def _lit(value: str) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def _period_sql(protocol: Protocol, day: str, *, ending_by: bool) -> str:
    """SQL for the crossover period of study day `day` (trialsite.protocol.crossover: period_of, or with
    `ending_by` period_ending_by)."""
    cx = protocol.crossover
    cycle = cx.period_days + cx.washout_days
    if ending_by:
        return f"(CASE WHEN ({day}) < 0 THEN NULL ELSE LEAST({cx.periods}, ({day}) / {cycle} + 1) END)"
    return (
        f"(CASE WHEN ({day}) < 0 OR ({day}) / {cycle} >= {cx.periods} OR ({day}) % {cycle} >= {cx.period_days} "
        f"THEN NULL ELSE ({day}) / {cycle} + 1 END)"
    )


def _treatment_sql(protocol: Protocol, period: str) -> str:
    whens = " ".join(
        f"WHEN {_lit(s.code)} THEN (ARRAY[{', '.join(_lit(a) for a in s.arms)}])[{period}]"
        for s in protocol.crossover.sequences
    )
    return f"(CASE sl.arm_sequence {whens} END)"


def design_tables(*, protocol: Protocol | None, Column, Table, T, who, participant_from, ts, boolean) -> list:
    if protocol is None:
        return []
    out = [_covariates(protocol, Column, Table, T, who, participant_from)]
    out.append(_guesses(protocol, Column, Table, T, who, ts, boolean))
    if protocol.crossover is not None:
        out.append(_treatment_days(protocol, Column, Table, T, who, participant_from, boolean))
    return out


def _covariates(protocol, Column, Table, T, who, pf):
    cols = [*who]
    if any(i.slug == "expectancy" and i.scoring for i in protocol.instruments):
        score = next(i for i in protocol.instruments if i.slug == "expectancy").scoring.scores[0].key
        cols.append(
            Column(
                "expectancy",
                f"(SELECT sc.value FROM {T['score']} sc JOIN {T['response']} r ON r.id = sc.response_id "
                f"JOIN {T['instrument']} ins ON ins.id = r.instrument_id WHERE r.participant_id = p.id "
                f"AND ins.slug = 'expectancy' AND sc.key = {_lit(score)} AND sc.scored "
                "ORDER BY r.authored_at, r.id LIMIT 1)",
                "float",
                f"Baseline expectancy ({score} of the expectancy instrument, 0-100)",
                unit="0-100",
                missing="empty: not answered",
            )
        )
    sub = protocol.substance
    if sub is not None:
        own = sub.provided_by == "participant"
        amount = "NULL::numeric" if sub.amount_per_unit is None else f"{float(sub.amount_per_unit)!r}::numeric"
        cols += [
            Column(
                "substance",
                f"coalesce(su.name, {_lit(sub.name)})" if own else _lit(sub.name),
                "string",
                "Substance of an active unit" + (" (the participant's own)" if own else ""),
            ),
            Column(
                "amount_per_unit",
                f"coalesce(su.amount_per_unit::float, {amount})" if own else f"{amount}::float",
                "float",
                "Amount of substance in one active unit (a placebo unit holds none)",
                missing="empty: not given",
            ),
            Column(
                "amount_unit",
                f"coalesce(su.unit, {_lit(sub.unit)})" if own else _lit(sub.unit),
                "string",
                "Unit of amount_per_unit",
                {"g": "gram", "mg": "milligram", "ug": "microgram"},
            ),
            Column(
                "substance_source",
                "CASE WHEN su.id IS NULL THEN 'protocol' ELSE 'participant' END" if own else "'protocol'",
                "string",
                "Where substance and amount come from",
                {
                    "protocol": "the protocol (site-dispensed or expected)",
                    "participant": "recorded for the participant",
                },
            ),
        ]
    source = pf + (
        f" LEFT JOIN {T['substance']} su ON su.participant_id = p.id"
        if sub and sub.provided_by == "participant"
        else ""
    )
    return Table(
        "covariates", "One row per participant: baseline covariates (expectancy, substance)", cols, source, "p.study_id"
    )


def _guesses(protocol, Column, Table, T, who, ts, boolean):
    placebo = protocol.control_arm().code
    crossover = protocol.crossover is not None
    period = _period_sql(protocol, "i.study_day", ending_by=True) if crossover else "NULL::integer"
    treatment = _treatment_sql(protocol, period) if crossover else "arm.code"
    cols = [
        *who,
        Column("schedule_key", "i.schedule_key", "string", "Schedule event of the protocol"),
        Column("planned_day", "i.study_day", "integer", "Planned study day"),
        Column("period", period, "integer", "Crossover period the guess is about", missing="empty: not a crossover"),
        Column(
            "sequence",
            "nullif(sl.arm_sequence, '')",
            "string",
            "Crossover arm sequence (e.g. AB)",
            missing="empty: not a crossover",
        ),
        Column("treatment", treatment, "string", "Arm code taken at that time point"),
        Column(
            "treatment_is_control",
            boolean(f"{treatment} = {_lit(placebo)}"),
            "boolean",
            "The treatment was the comparator (placebo)",
            {"true": "true", "false": "false"},
        ),
        Column(
            "guess",
            "r.answers->>'guess'",
            "string",
            "Participant's guess",
            {"active": "Active", "placebo": "Placebo", "dont_know": "I don't know"},
        ),
        Column(
            "confidence",
            "CASE WHEN jsonb_typeof(r.answers->'confidence') = 'number' THEN (r.answers->>'confidence')::float END",
            "float",
            "Confidence in the guess (0-100)",
            unit="0-100",
            missing="empty: not answered",
        ),
        Column(
            "correct",
            boolean(
                f"CASE WHEN r.answers->>'guess' = 'dont_know' THEN NULL ELSE r.answers->>'guess' = "
                f"(CASE WHEN {treatment} = {_lit(placebo)} THEN 'placebo' ELSE 'active' END) END"
            ),
            "boolean",
            "The guess matched the treatment",
            {"true": "true", "false": "false"},
            missing="empty: don't know",
        ),
        Column("authored_at", ts("r.authored_at"), "timestamp", "Answered at (participant's clock), UTC"),
    ]
    source = (
        f"{T['response']} r JOIN {T['instance']} i ON i.id = r.instance_id "
        f"JOIN {T['participant']} p ON p.id = r.participant_id JOIN {T['site']} s ON s.id = p.site_id "
        f"JOIN {T['allocation']} al ON al.participant_id = p.id JOIN {T['slot']} sl ON sl.id = al.slot_id "
        f"JOIN {T['arm']} arm ON arm.id = sl.arm_id"
    )
    return Table(
        "guess_treatment",
        "UNBLINDED: one row per participant guess with the treatment at that time point",
        cols,
        source,
        "p.study_id, i.study_day, i.schedule_key, r.id",
        unblinded_only=True,
        where="r.answers ? 'guess'",
    )


def _treatment_days(protocol, Column, Table, T, who, pf, boolean):
    cx = protocol.crossover
    period = _period_sql(protocol, "g.day", ending_by=False)
    dose_days = ", ".join(str(d) for d in cx.dose_days()) or "NULL"
    cols = [
        *who,
        Column("study_day", "g.day", "integer", "Study day (0 = randomisation)"),
        Column("date", "p.day0 + g.day", "date", "Local date of the study day"),
        Column("sequence", "sl.arm_sequence", "string", "Arm sequence (e.g. AB)"),
        Column("period", period, "integer", "Treatment period", missing="empty: washout"),
        Column(
            "treatment", _treatment_sql(protocol, period), "string", "Arm code of the day", missing="empty: washout"
        ),
        Column(
            "dose_day",
            boolean(f"g.day = ANY(ARRAY[{dose_days}]::integer[])"),
            "boolean",
            "A planned dose day",
            {"true": "true", "false": "false"},
        ),
    ]
    source = (
        f"{T['allocation']} al JOIN {T['slot']} sl ON sl.id = al.slot_id JOIN {pf} ON p.id = al.participant_id "
        f"CROSS JOIN generate_series(0, {cx.last_day}) AS g(day)"
    )
    return Table(
        "treatment_days",
        "UNBLINDED: one row per participant and study day of a crossover: period, sequence, treatment",
        cols,
        source,
        "p.study_id, g.day",
        unblinded_only=True,
        where="p.day0 IS NOT NULL",
    )
