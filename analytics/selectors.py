# ruff: noqa: S608 - SQL here is built from model table names and constants; values are bound parameters.
"""Reusable figures of a trial (admin dashboard and the summary API). Every function runs a fixed number of
queries whatever the trial's size, and takes `site_ids` (None = all sites) so callers can narrow to the sites
a user reaches.

Definitions:
- completion and dose adherence: surveys.definitions (one definition for every interface);
- study week = planned study day // 7 (baseline instances, anchored on consent, are week 0);
- latency = seconds from an instance's opening to the participant's answer.

Blinding: `blinding_guess_distribution` (participants) and `coordinator_guess_distribution` (coordinators) are
for everyone; `blinding_indices` and `coordinator_blinding_indices` read the allocation (arm) and must only be
called for unblinded users (`trialsite.roles.is_unblinded`).
"""

from __future__ import annotations

from datetime import datetime

from django.db import connections
from django.db.models import Case, Count, F, IntegerField, Q, Value, When
from django.db.models.functions import Greatest
from django.utils import timezone

from participants.models import Participant
from surveys import definitions
from surveys import selectors as survey_selectors
from surveys.models import SurveyInstance
from trialsite.db import replica_alias, replica_reads
from trialsite.models import Trial
from trialsite.protocol.schema import Protocol
from trialsite.protocol.services import ProtocolError, protocol_current

from .blinding import bang, guess_table, james
from .export import T


def _rows(sql: str, params: list) -> list[dict]:
    """Figures are read on the replica when one is configured (DATABASE_REPLICA_URL; see trialsite.db)."""
    with connections[replica_alias()].cursor() as cur:
        cur.execute(sql, params)
        cols = [c.name for c in cur.description]
        return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]


def _site_filter(site_ids) -> tuple[str, list]:
    if site_ids is None:
        return "", []
    return " AND p.site_id = ANY(%s)", [list(site_ids)]


def _protocol(trial: Trial) -> Protocol | None:
    """The trial's current protocol, or None when none is loaded yet (a trial just added in the admin)."""
    try:
        return protocol_current(trial)
    except ProtocolError:
        return None


def _ratio(num, den) -> float | None:
    return round(num / den, 4) if den else None


def consort_counts(*, trial: Trial, site_ids=None) -> dict:
    """CONSORT flow: screened, screen_failed, eligible, consented, randomised, completed, withdrawn (overall and
    by site). One pass over the trial's participants; signatures and withdrawals each read once (hashed)."""
    extra, params = _site_filter(site_ids)
    rows = _rows(
        f"""
        SELECT s.code AS site,
          count(*) AS screened,
          count(*) FILTER (WHERE p.status = 'screen_failed') AS screen_failed,
          count(*) FILTER (WHERE p.eligible) AS eligible,
          count(*) FILTER (WHERE p.id IN (SELECT c.participant_id FROM {T["signature"]} c)) AS consented,
          count(*) FILTER (WHERE p.randomised_at IS NOT NULL) AS randomised,
          count(*) FILTER (WHERE p.status = 'completed') AS completed,
          count(*) FILTER (WHERE p.withdrawn_at IS NOT NULL
                           OR p.id IN (SELECT w.participant_id FROM {T["withdrawal"]} w)) AS withdrawn
        FROM {T["participant"]} p JOIN {T["site"]} s ON s.id = p.site_id
        WHERE p.trial_id = %s{extra}
        GROUP BY s.code ORDER BY s.code
        """,
        [trial.pk, *params],
    )
    keys = ["screened", "screen_failed", "eligible", "consented", "randomised", "completed", "withdrawn"]
    overall = {k: sum(r[k] for r in rows) for k in keys}
    return {**overall, "by_site": rows}


def _group_key(by: str, *, week):
    return {
        "site": ("site", F("participant__site__code")),
        "week": ("week", week),
        "participant": ("study_id", F("participant__study_id")),
    }[by]


def completion(*, trial: Trial, site_ids=None, by: str = "site", now: datetime | None = None) -> list[dict]:
    """Completion (surveys.definitions) grouped by "site", "week" or "participant": planned (= due), answered
    (late answers within grace included), on_time (answered before the window closed), rate = answered ÷ planned."""
    now = now or timezone.now()
    week = Case(When(study_day__lt=0, then=Value(0)), default=F("study_day") / 7, output_field=IntegerField())
    name, key = _group_key(by, week=week)
    qs = SurveyInstance.objects.filter(definitions.due_q(now), participant__trial=trial)
    if site_ids is not None:
        qs = qs.filter(participant__site_id__in=list(site_ids))
    answered = definitions.answered_q()
    with replica_reads():
        rows = list(
            qs.annotate(**{name: key})
            .values(name)
            .annotate(
                planned=Count("pk"),
                answered=Count("pk", filter=answered),
                on_time=Count("pk", filter=answered & Q(response__late=False)),
            )
            .order_by(name)
        )
    for r in rows:
        r["rate"] = definitions.rate(r["answered"], r["planned"], digits=4)
    return rows


def completion_by_site_week(*, trial: Trial, site_ids=None, now: datetime | None = None) -> dict[str, list[dict]]:
    """completion(by="week") of each site, in one pass over the trial's instances (grouped by the participant's
    site id, the site codes looked up after): site code → rows (week, planned, answered, rate)."""
    return completion_by_site_week_from(completion_site_week_rows(trial=trial, site_ids=site_ids, now=now))


def completion_site_week_rows(*, trial: Trial, site_ids=None, now: datetime | None = None) -> list[dict]:
    """The counts behind completion_by_site_week and the summary's completion: rows (site_id, site, week, planned,
    answered, on_time) ordered by site code and week, the counts of completion() per site and week. Blinded (no
    arm); also what the stored snapshot holds (analytics.completion_snapshots)."""
    from trialsite.models import Site

    now = now or timezone.now()
    week = Greatest(F("study_day"), Value(0)) / 7  # = study_day // 7, baseline (negative days) in week 0
    qs = SurveyInstance.objects.filter(definitions.due_q(now), participant__trial=trial)
    if site_ids is not None:
        qs = qs.filter(participant__site_id__in=list(site_ids))
    with replica_reads():
        rows = list(
            qs.annotate(site_id=F("participant__site_id"), week=week)
            .values("site_id", "week")
            .annotate(
                planned=Count("pk"),
                answered=Count("pk", filter=definitions.answered_q()),
                on_time=Count("pk", filter=definitions.answered_q() & Q(response__late=False)),
            )
            .order_by()
        )
        codes = dict(Site.objects.values_list("pk", "code"))  # a handful of rows: every site, one query
    for r in rows:
        r["site"] = codes[r["site_id"]]
    return sorted(rows, key=lambda r: (r["site"], r["week"]))


def completion_by_site_week_from(rows: list[dict], *, site_ids=None) -> dict[str, list[dict]]:
    """completion_site_week_rows (fresh or stored), narrowed to `site_ids` (None = all) → site code → rows
    (week, planned, answered, rate); the rate as surveys.definitions defines it."""
    keep = None if site_ids is None else set(site_ids)
    out: dict[str, list[dict]] = {}
    for r in rows:
        if keep is None or r["site_id"] in keep:
            out.setdefault(r["site"], []).append(
                {
                    "week": r["week"],
                    "planned": r["planned"],
                    "answered": r["answered"],
                    "rate": definitions.rate(r["answered"], r["planned"], digits=4),
                }
            )
    return out


def adherence(*, trial: Trial, site_ids=None, by: str = "site", now: datetime | None = None) -> list[dict]:
    """Dose adherence (surveys.definitions) grouped by "site", "week" or "participant": planned dose days so far,
    dose days with a dose logged, rate. Two queries; the dose days are planned by the one pure function."""
    return adherence_groups(trial=trial, site_ids=site_ids, by=(by,), now=now)[by]


def adherence_groups(*, trial: Trial, site_ids=None, by=("site",), now: datetime | None = None) -> dict[str, list]:
    """adherence() for several groupings from one read of the participants and their dose days: by → rows. Besides
    adherence()'s groupings, "site_week" gives rows (site, site_id, week, planned, logged, rate)."""
    protocol = _protocol(trial)
    dosing = protocol.dosing if protocol else None
    if dosing is None:
        return {b: [] for b in by}
    now = now or timezone.now()
    people = Participant.objects.filter(trial=trial, day0__isnull=False).select_related("site")
    if site_ids is not None:
        people = people.filter(site_id__in=list(site_ids))
    with replica_reads():
        people = list(people.only("pk", "study_id", "timezone", "day0", "withdrawn_at", "site__code"))
        logged = survey_selectors.dose_days_logged(participant_ids=[p.pk for p in people])
    groups: dict[str, dict] = {b: {} for b in by}
    for p in people:
        days = logged.get(p.pk, set())
        for day in definitions.participant_dose_days(participant=p, dosing=dosing, now=now):
            hit = day in days
            labels = {"site": p.site.code, "week": day // 7, "participant": p.study_id}
            labels["site_week"] = (p.site.code, p.site_id, day // 7)
            for b in by:
                label = labels[b]
                g = groups[b].setdefault(label, [0, 0])
                g[0] += 1
                g[1] += hit
    out = {}
    for b in by:
        names = {"site": ("site",), "week": ("week",), "participant": ("study_id",)}.get(b, ("site", "site_id", "week"))
        out[b] = [
            {
                **dict(zip(names, label if b == "site_week" else (label,), strict=True)),
                "planned": n,
                "logged": k,
                "rate": definitions.rate(k, n, digits=4),
            }
            for label, (n, k) in sorted(groups[b].items())
        ]
    return out


def response_latency(*, trial: Trial, site_ids=None) -> list[dict]:
    """Per instrument: answered, median and 90th percentile seconds from opening to answer, share late."""
    extra, params = _site_filter(site_ids)
    rows = _rows(
        f"""
        SELECT ins.slug AS instrument, count(*) AS answered,
          percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM r.authored_at - i.opens_at)) AS median_seconds,
          percentile_cont(0.9) WITHIN GROUP (ORDER BY extract(epoch FROM r.authored_at - i.opens_at)) AS p90_seconds,
          avg(r.late::int) AS late_share
        FROM {T["response"]} r JOIN {T["instance"]} i ON i.id = r.instance_id
          JOIN {T["instrument"]} ins ON ins.id = r.instrument_id JOIN {T["participant"]} p ON p.id = r.participant_id
        WHERE p.trial_id = %s{extra}
        GROUP BY ins.slug ORDER BY ins.slug
        """,
        [trial.pk, *params],
    )
    return [_latency_row(r) for r in rows]


def response_latency_by_site(*, trial: Trial) -> dict[str, list[dict]]:
    """response_latency() of the whole trial (key "all") and of each site alone (key: the site id as a string), in
    one query (GROUPING SETS): the same figures as response_latency(site_ids=None) and (site_ids=[id])."""
    rows = _rows(
        f"""
        SELECT p.site_id, ins.slug AS instrument, count(*) AS answered,
          percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM r.authored_at - i.opens_at)) AS median_seconds,
          percentile_cont(0.9) WITHIN GROUP (ORDER BY extract(epoch FROM r.authored_at - i.opens_at)) AS p90_seconds,
          avg(r.late::int) AS late_share
        FROM {T["response"]} r JOIN {T["instance"]} i ON i.id = r.instance_id
          JOIN {T["instrument"]} ins ON ins.id = r.instrument_id JOIN {T["participant"]} p ON p.id = r.participant_id
        WHERE p.trial_id = %s
        GROUP BY GROUPING SETS ((ins.slug), (p.site_id, ins.slug)) ORDER BY p.site_id NULLS FIRST, ins.slug
        """,
        [trial.pk],
    )
    out: dict[str, list[dict]] = {"all": []}
    for r in rows:
        site = r.pop("site_id")
        out.setdefault("all" if site is None else str(site), []).append(_latency_row(r))
    return out


def _latency_row(r: dict) -> dict:
    for k in ("median_seconds", "p90_seconds", "late_share"):
        r[k] = round(float(r[k]), 4) if r[k] is not None else None
    return r


def safety_summary(*, trial: Trial, site_ids=None, now: datetime | None = None) -> dict:
    """Alerts by rule and status (with overdue open alerts and time to acknowledge), side effects by severity,
    adverse events (serious or not)."""
    extra, params = _site_filter(site_ids)
    now = now or timezone.now()
    alerts = _rows(
        f"""
        SELECT sa.rule, count(*) AS raised,
          count(*) FILTER (WHERE sa.status = 'acknowledged') AS acknowledged,
          count(*) FILTER (WHERE sa.status <> 'acknowledged' AND sa.due_at < %s) AS overdue,
          count(*) FILTER (WHERE sa.escalated_at IS NOT NULL) AS escalated,
          percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM sa.acknowledged_at - sa.raised_at) / 3600)
            AS median_hours_to_acknowledge
        FROM {T["alert"]} sa JOIN {T["participant"]} p ON p.id = sa.participant_id
        WHERE p.trial_id = %s{extra}
        GROUP BY sa.rule ORDER BY sa.rule
        """,
        [now, trial.pk, *params],
    )
    for a in alerts:
        v = a["median_hours_to_acknowledge"]
        a["median_hours_to_acknowledge"] = round(float(v), 2) if v is not None else None
    effects = _rows(
        f"""
        SELECT se.severity, count(*) AS reported, count(*) FILTER (WHERE se.serious) AS serious
        FROM {T["side_effect"]} se JOIN {T["participant"]} p ON p.id = se.participant_id
        WHERE p.trial_id = %s{extra}
        GROUP BY se.severity ORDER BY se.severity
        """,
        [trial.pk, *params],
    )
    return {
        "alerts": alerts,
        "side_effects": effects,
        "adverse_events": adverse_event_counts(trial=trial, site_ids=site_ids),
    }


def adverse_event_counts(*, trial: Trial, site_ids=None) -> dict:
    """Adverse events: reports, serious, participants with one."""
    extra, params = _site_filter(site_ids)
    return _rows(
        f"""
        SELECT count(*) AS reports, count(*) FILTER (WHERE ae.serious) AS serious,
          count(DISTINCT ae.participant_id) AS participants
        FROM {T["ae"]} ae JOIN {T["participant"]} p ON p.id = ae.participant_id
        WHERE p.trial_id = %s{extra}
        """,
        [trial.pk, *params],
    )[0]


def blinding_guess_distribution(*, trial: Trial, site_ids=None, by_site: bool = False) -> list[dict]:
    """Overall counts of guesses (active / placebo / don't know) per time point: no arm involved. `by_site`: per
    site and time point (rows carry site_id; what the stored snapshot keeps, analytics.summary)."""
    extra, params = _site_filter(site_ids)
    site = "p.site_id, " if by_site else ""
    return _rows(
        f"""
        SELECT {site}i.schedule_key, i.study_day AS planned_day,
          count(*) FILTER (WHERE r.answers->>'guess' = 'active') AS active,
          count(*) FILTER (WHERE r.answers->>'guess' = 'placebo') AS placebo,
          count(*) FILTER (WHERE r.answers->>'guess' = 'dont_know') AS dont_know
        FROM {T["response"]} r JOIN {T["instance"]} i ON i.id = r.instance_id
          JOIN {T["participant"]} p ON p.id = r.participant_id
        WHERE p.trial_id = %s{extra} AND r.answers ? 'guess'
        GROUP BY {site}i.schedule_key, i.study_day ORDER BY planned_day, i.schedule_key
        """,
        [trial.pk, *params],
    )


def _placebo_arm_code(protocol: Protocol | None) -> str | None:
    """The arm playing 'placebo' in the guess table: the comparator the protocol declares (`control: true`,
    exactly one, validated at load). None (no indices) without a protocol or with other than two arms."""
    if protocol is None or len(protocol.arms) != 2:
        return None
    return protocol.control_arm().code


def blinding_indices(*, trial: Trial, site_ids=None, conf: float = 0.95) -> list[dict]:
    """UNBLINDED: per time point, the guess table by actual arm with Bang (per arm) and James (overall).

    Callers must check `trialsite.roles.is_unblinded(user)` first. Needs exactly two arms.
    """
    placebo = _placebo_arm_code(_protocol(trial))
    if placebo is None:
        return []
    extra, params = _site_filter(site_ids)
    rows = _rows(
        f"""
        SELECT i.schedule_key, i.study_day AS planned_day, r.answers->>'guess' AS guess,
          CASE WHEN arm.code = %s THEN 'placebo' ELSE 'active' END AS actual, count(*) AS n
        FROM {T["response"]} r JOIN {T["instance"]} i ON i.id = r.instance_id
          JOIN {T["participant"]} p ON p.id = r.participant_id
          JOIN {T["allocation"]} al ON al.participant_id = p.id
          JOIN {T["slot"]} sl ON sl.id = al.slot_id JOIN {T["arm"]} arm ON arm.id = sl.arm_id
        WHERE p.trial_id = %s{extra} AND r.answers ? 'guess'
        GROUP BY 1, 2, 3, 4 ORDER BY 2, 1
        """,
        [placebo, trial.pk, *params],
    )
    return _indices(rows, keys=("planned_day", "schedule_key"), conf=conf)


def _indices(rows: list[dict], *, keys: tuple[str, str], conf: float) -> list[dict]:
    """Rows of (time point keys…, guess, actual, n) → per time point the guess table, Bang and James."""
    points: dict[tuple, list] = {}
    for r in rows:
        points.setdefault((r[keys[0]], r[keys[1]]), []).extend([(r["guess"], r["actual"])] * r["n"])
    out = []
    for (first, second), pairs in sorted(points.items()):
        table = guess_table(pairs)
        b = bang(table, conf=conf)
        out.append(
            {
                keys[1]: second,
                keys[0]: first,
                "table": table,
                "bang": {arm: est.as_dict() for arm, est in b.items()},
                "james": james(table, conf=conf).as_dict(),
            }
        )
    return out


def coordinator_guess_distribution(*, trial: Trial, site_ids=None) -> list[dict]:
    """Overall counts of the coordinators' guesses per time point (day_<n>): no arm involved."""
    extra, params = _site_filter(site_ids)
    return _rows(
        f"""
        SELECT sg.time_point, substr(sg.time_point, 5)::integer AS planned_day,
          count(*) FILTER (WHERE sg.guess = 'active') AS active,
          count(*) FILTER (WHERE sg.guess = 'placebo') AS placebo,
          count(*) FILTER (WHERE sg.guess = 'dont_know') AS dont_know
        FROM {T["staff_guess"]} sg JOIN {T["participant"]} p ON p.id = sg.participant_id
        WHERE p.trial_id = %s{extra}
        GROUP BY 1, 2 ORDER BY 2, 1
        """,
        [trial.pk, *params],
    )


def coordinator_blinding_indices(*, trial: Trial, site_ids=None, conf: float = 0.95) -> list[dict]:
    """UNBLINDED: per time point, the coordinators' guess table by actual arm with Bang (per arm) and James.

    Callers must check `trialsite.roles.is_unblinded(user)` first. Needs exactly two arms.
    """
    placebo = _placebo_arm_code(_protocol(trial))
    if placebo is None:
        return []
    extra, params = _site_filter(site_ids)
    rows = _rows(
        f"""
        SELECT sg.time_point, substr(sg.time_point, 5)::integer AS planned_day, sg.guess,
          CASE WHEN arm.code = %s THEN 'placebo' ELSE 'active' END AS actual, count(*) AS n
        FROM {T["staff_guess"]} sg JOIN {T["participant"]} p ON p.id = sg.participant_id
          JOIN {T["allocation"]} al ON al.participant_id = p.id
          JOIN {T["slot"]} sl ON sl.id = al.slot_id JOIN {T["arm"]} arm ON arm.id = sl.arm_id
        WHERE p.trial_id = %s{extra}
        GROUP BY 1, 2, 3, 4 ORDER BY 2, 1
        """,
        [placebo, trial.pk, *params],
    )
    return _indices(rows, keys=("planned_day", "time_point"), conf=conf)


def export_job_get(*, user, job_uuid):
    """The export job if `user` requested it, else None (another user's job is 'not found')."""
    from .models import ExportJob

    return ExportJob.objects.select_related("trial").filter(uuid=job_uuid, requested_by=user).first()


def export_job_download(*, actor, job_uuid):
    """The finished job's bundle for its requester, who must still hold a role that may make such an export in
    the job's trial (trialsite.policy, re-checked at download). None when not theirs; PermissionDenied when the
    role is gone."""
    from django.core.exceptions import PermissionDenied

    from trialsite import policy

    job = export_job_get(user=actor, job_uuid=job_uuid)
    if job is not None and not policy.can(actor, policy.EXPORT_DOWNLOAD, job):
        raise PermissionDenied("This bundle needs, now, the role that may make such an export in its trial.")
    return job


def _reach(actor, trial) -> tuple[list[int] | None, bool]:
    """(site ids the actor reads in the trial or None for all, unblinded); PermissionDenied without a role."""
    from django.core.exceptions import PermissionDenied

    from trialsite import policy, roles

    if not policy.can(actor, policy.ANALYTICS_SUMMARY, trial):
        raise PermissionDenied("You hold no role in this trial.")
    site_ids = roles.site_ids(actor, trial=trial)
    if site_ids is not None:
        site_ids = sorted(site_ids & set(trial.sites.values_list("id", flat=True)))
    return site_ids, policy.can(actor, policy.ARMS_VIEW, trial)


def dashboard_figures_for(*, actor, trial, now: datetime | None = None) -> dict:
    """What the admin's trial dashboard shows, read as `trial_summary_for` reads (sites, blinding), and nothing
    else: CONSORT counts, completion by site and study week (from the stored snapshot, `completion_as_of` = when
    it was computed; analytics.completion_snapshots), adverse events, and the blinding indices for unblinded
    roles. A fixed number of queries whatever the trial's size."""
    from .completion_snapshots import completion_snapshot_current

    site_ids, unblinded = _reach(actor, trial)
    snapshot = completion_snapshot_current(trial=trial, now=now)
    figures = {
        "consort": consort_counts(trial=trial, site_ids=site_ids),
        "completion_by_site_week": completion_by_site_week_from(snapshot.rows, site_ids=site_ids),
        "completion_as_of": snapshot.computed_at,
        "safety": {"adverse_events": adverse_event_counts(trial=trial, site_ids=site_ids)},
        "blinding": {},
    }
    if unblinded:
        figures["blinding"]["indices"] = blinding_indices(trial=trial, site_ids=site_ids)
    return figures


def __getattr__(name: str):  # trial_summary and trial_summary_for live in analytics.summary (the snapshot's reader)
    if name in ("trial_summary", "trial_summary_for"):
        return getattr(__import__("analytics.summary", fromlist=["summary"]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
