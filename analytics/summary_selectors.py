# ruff: noqa: S608 - SQL here is built from model table names; values are bound parameters.
"""The summary snapshot's dose adherence by site and study week in one SQL statement (issue 14, goal 4).

`analytics.selectors.adherence_groups` reads every participant and every logged dose day into Python and plans the
dose days with `surveys.definitions.dose_days`, seconds at 10,000 participants. `adherence_site_week_rows` gives
its "site_week" rows in the database: the same definition written in SQL, term for term —

- planned dose days: `dose_days` — days start_day, start_day + every_n_days, … up to the last of end_day, the
  participant's local today − day0, and the day before their local withdrawal date − day0
  (`participant_dose_days`: local dates in the participant's zone);
- a dose day is logged when a dose's study day (`definitions.dose_study_day`: the local date of `taken_at` in the
  participant's zone − day0) is that day;
- study week = day // 7 (dose days are never negative: the protocol's start_day >= 0).

analytics/tests/test_summary_snapshot.py holds it equal to `adherence_groups` and to a recount through the pure
functions on a trial with a dose across the spring-forward night, a withdrawal on a dose day and a participant
whose local date is behind UTC's.
"""

from __future__ import annotations

from datetime import datetime

from trialsite.models import Trial

from .export import T
from .selectors import _protocol, _rows


def adherence_site_week_rows(*, trial: Trial, now: datetime) -> list[dict]:
    """Rows (site, site_id, week, planned, logged) of every site and study week with a planned dose day by `now`,
    ordered by site code, site id and week: adherence_groups(by=("site_week",))'s rows without the rate."""
    protocol = _protocol(trial)
    dosing = protocol.dosing if protocol else None
    if dosing is None:
        return []
    return _rows(
        f"""
        WITH people AS (
          SELECT p.id, p.site_id, p.day0, p.timezone,
            LEAST(
              %(end)s,
              (timezone(p.timezone, %(now)s::timestamptz))::date - p.day0,
              COALESCE((timezone(p.timezone, p.withdrawn_at))::date - p.day0 - 1, %(end)s)
            ) AS last_day
          FROM {T["participant"]} p
          WHERE p.trial_id = %(trial)s AND p.day0 IS NOT NULL
        ),
        planned AS (
          SELECT pe.id, pe.site_id, d.day
          FROM people pe CROSS JOIN LATERAL generate_series(%(start)s, pe.last_day, %(every)s) AS d(day)
        ),
        logged AS (
          SELECT DISTINCT dl.participant_id AS id, (timezone(pe.timezone, dl.taken_at))::date - pe.day0 AS day
          FROM {T["dose"]} dl JOIN people pe ON pe.id = dl.participant_id
        )
        SELECT s.code AS site, pl.site_id, pl.day / 7 AS week, count(*) AS planned, count(lg.id) AS logged
        FROM planned pl JOIN {T["site"]} s ON s.id = pl.site_id
          LEFT JOIN logged lg ON lg.id = pl.id AND lg.day = pl.day
        GROUP BY s.code, pl.site_id, pl.day / 7
        ORDER BY s.code, pl.site_id, week
        """,
        {
            "trial": trial.pk,
            "now": now,
            "start": dosing.start_day,
            "end": dosing.end_day,
            "every": dosing.every_n_days,
        },
    )
