"""The trial summary of the staff API (GET /api/v1/staff/analytics/{trial}/summary): CONSORT counts, completion and
dose adherence by site and study week, response latency, safety and blinding, fast at any trial size (issue 14,
goal 4).

The slow figures read every survey instance, response and dose of the trial: completion and adherence by site and
week, response latency and the participants' blinding-guess distribution. `summary_site_figures` computes them per site with the selectors that define them on
surveys.definitions (completion_site_week_rows, response_latency_by_site; adherence_groups' definition in one SQL
statement: analytics.summary_selectors);
they are stored with the dashboard's completion in the trial's snapshot (analytics.CompletionSnapshot, refreshed by
the beat task; analytics.completion_snapshots) and `summary_sums` narrows them to the reader's sites and sums them
by site, by week and overall. The live path (`trial_summary` without `figures`) computes the same per-site figures
at `now` and goes through the same sums: the stored and the live summary differ only by when they were computed,
which `as_of` says.

Read at every call, from small or indexed tables: CONSORT counts, safety and the coordinators' guess distribution.
The snapshot holds no arm. For unblinded roles only, the per-arm indices and per-session figures (with the CGRC's
simulations) are stored apart, at the same `as_of`, by the same refresh (analytics.blinding_snapshots, arm-bearing);
`trial_summary` with `blinding` shows them as stored, without it computes them now (analytics.blinding_snapshots.
blinding_figures, the one definition).
"""

from __future__ import annotations

from datetime import datetime

from django.utils import timezone

from surveys import definitions
from trialsite.models import Trial

from . import selectors

COMPLETION_COUNTS = ("planned", "answered", "on_time")
ADHERENCE_COUNTS = ("planned", "logged")
GUESSES = ("active", "placebo", "dont_know")


def summary_site_figures(*, trial: Trial, now: datetime) -> dict:
    """The slow figures per site at `now` (JSON-ready): "completion" rows (site_id, site, week, planned, answered,
    on_time), "adherence" rows (site, site_id, week, planned, logged), "latency" ({"all" | "<site id>": rows}) and
    "guesses" rows (site_id, schedule_key, planned_day, active, placebo, dont_know; no arm)."""
    from .summary_selectors import adherence_site_week_rows

    return {
        "completion": selectors.completion_site_week_rows(trial=trial, now=now),
        "adherence": adherence_site_week_rows(trial=trial, now=now),
        "latency": selectors.response_latency_by_site(trial=trial),
        "guesses": selectors.blinding_guess_distribution(trial=trial, by_site=True),
    }


def figures_complete(figures: dict) -> bool:
    """Whether stored figures hold every part summary_site_figures computes today (a row stored by an older release
    lacks some: it is recomputed, not read)."""
    return {"adherence", "latency", "guesses"} <= set(figures)


def _sums(rows: list[dict], *, by: str, counts: tuple[str, ...], done: str, keep: set | None) -> list[dict]:
    """Rows of `keep`'s sites (None = all) summed by `by` ("site" code or "week"), in its order, with the rate
    (surveys.definitions) of `done` ÷ planned."""
    groups: dict = {}
    for r in rows:
        if keep is None or r["site_id"] in keep:
            g = groups.setdefault(r[by], dict.fromkeys(counts, 0))
            for c in counts:
                g[c] += r[c]
    return [
        {by: label, **g, "rate": definitions.rate(g[done], g["planned"], digits=4)}
        for label, g in sorted(groups.items())
    ]


def summary_sums(figures: dict, *, site_ids=None) -> dict:
    """summary_site_figures (fresh or stored) narrowed to `site_ids` (None = all): "completion" and "adherence"
    ({"by_site", "by_week", "overall"}), "guesses" (the participants' blinding-guess distribution per time point)
    and "latency" (rows, or None when the sites are several but not all: the per-site latencies are medians, which
    do not add up)."""
    keep = None if site_ids is None else set(site_ids)
    out = {}
    for key, counts, done in (
        ("completion", COMPLETION_COUNTS, "answered"),
        ("adherence", ADHERENCE_COUNTS, "logged"),
    ):
        rows = figures[key]
        by_site = _sums(rows, by="site", counts=counts, done=done, keep=keep)
        planned = sum(r["planned"] for r in by_site)
        achieved = sum(r[done] for r in by_site)
        out[key] = {
            "by_site": by_site,
            "by_week": _sums(rows, by="week", counts=counts, done=done, keep=keep),
            "overall": {"planned": planned, done: achieved, "rate": definitions.rate(achieved, planned, digits=4)},
        }
    guesses: dict = {}
    for r in figures["guesses"]:
        if keep is None or r["site_id"] in keep:
            g = guesses.setdefault((r["planned_day"], r["schedule_key"]), dict.fromkeys(GUESSES, 0))
            for c in GUESSES:
                g[c] += r[c]
    out["guesses"] = [{"schedule_key": key, "planned_day": day, **g} for (day, key), g in sorted(guesses.items())]
    if keep is None:
        out["latency"] = figures["latency"]["all"]
    elif len(keep) == 1:
        out["latency"] = figures["latency"].get(str(next(iter(keep))), [])
    else:
        out["latency"] = None
    return out


def trial_summary(
    *,
    trial: Trial,
    site_ids=None,
    unblinded: bool = False,
    now: datetime | None = None,
    outcome: str | None = None,
    figures: dict | None = None,
    as_of: datetime | None = None,
    blinding: dict | None = None,
) -> dict:
    """Everything the summary API shows, in a fixed number of queries. `figures`: summary_site_figures as stored
    at `as_of` (None: computed now, live). `outcome` ("phq9.total") chooses the outcome of the per-session blinding
    figures (unblinded only; ValueError when unknown); `blinding`: those figures and the per-arm indices of every
    site as stored at `as_of` (analytics.blinding_snapshots; None: computed now for `site_ids`)."""
    now = now or timezone.now()
    if figures is None:
        figures, as_of = summary_site_figures(trial=trial, now=now), now
    sums = summary_sums(figures, site_ids=site_ids)
    latency = sums["latency"]
    if latency is None:
        latency = selectors.response_latency(trial=trial, site_ids=site_ids)
    summary = {
        "trial": trial.slug,
        "generated_at": now.isoformat(),
        "as_of": (as_of or now).isoformat(),
        "consort": selectors.consort_counts(trial=trial, site_ids=site_ids),
        "completion": sums["completion"],
        "adherence": sums["adherence"],
        "latency": latency,
        "safety": selectors.safety_summary(trial=trial, site_ids=site_ids, now=now),
        "blinding": {
            "guesses": sums["guesses"],
            "coordinator_guesses": selectors.coordinator_guess_distribution(trial=trial, site_ids=site_ids),
        },
    }
    if unblinded:
        if blinding is None:
            from .blinding_snapshots import blinding_figures

            blinding = blinding_figures(trial=trial, site_ids=site_ids, outcome=outcome)
        summary["blinding"].update({k: blinding[k] for k in ("indices", "coordinator_indices", "sessions")})
    return summary


def trial_summary_for(*, actor, trial: Trial, outcome: str | None = None, now: datetime | None = None) -> dict:
    """The summary as `actor` may read it: their sites of that trial only, per-arm figures only for the trial's
    unblinded roles (trialsite.policy / trialsite.roles); the slow figures (for unblinded roles the blinding figures
    too, stored apart) from the trial's stored snapshot when it is at most DASHBOARD_SNAPSHOT_MAX_AGE old (else
    computed now and stored). PermissionDenied without a role; ValueError for an unknown outcome."""
    from .completion_snapshots import summary_snapshots_current

    site_ids, unblinded = selectors._reach(actor, trial)
    now = now or timezone.now()
    # The stored blinding figures are for every site: an unblinded role is trial-wide (trialsite.roles); were it
    # ever scoped to sites, its figures would be computed for them now.
    snapshot, blinding = summary_snapshots_current(
        trial=trial, now=now, unblinded=unblinded and site_ids is None, outcome=outcome
    )
    return trial_summary(
        trial=trial,
        site_ids=site_ids,
        unblinded=unblinded,
        now=now,
        outcome=outcome,
        figures={"completion": snapshot.rows, **snapshot.figures},
        as_of=snapshot.computed_at,
        blinding=blinding,
    )
