"""The stored slow figures of a trial (issue 14, goal 4): the dashboard's completion by site and study week and the
summary API's completion, adherence and latency read every survey instance, response and dose of the trial, so a
beat task computes them every few minutes into one row per trial (analytics.CompletionSnapshot) and the dashboard
and the summary API read that row. The figures are computed by the same selectors as the live ones
(analytics.summary.summary_site_figures, on surveys.definitions): one definition.

- `completion_snapshot_store` (service) replaces a trial's row under its row lock, only with figures for a later
  moment than the stored ones: a slow refresh that finishes after a newer one never overwrites it; idempotent.
- `completion_snapshots_refresh` (beat, analytics.tasks) refreshes every trial's row.
- `completion_snapshot_current` (read) returns the stored row when it is at most DASHBOARD_SNAPSHOT_MAX_AGE
  seconds from `now` and complete, else computes live and stores it (a fresh deployment, a stopped beat, a row
  stored before the summary's figures were kept).
The rows hold site ids, counts and latencies only (blinded, nothing arm-bearing); readers narrow them to their
sites. The same refresh stores, at the same `computed_at`, the unblinded summary's arm-bearing blinding figures in
their own table (analytics.blinding_snapshots, analytics.BlindingSnapshot), read only by `summary_snapshots_current`
for the trial's unblinded roles.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from trialsite.models import Trial

from .blinding_snapshots import (
    blinding_figures,
    blinding_outcomes,
    blinding_snapshot_store,
    blinding_snapshot_stored,
    outcome_key,
)
from .models import CompletionSnapshot
from .summary import figures_complete, summary_site_figures


def _max_age() -> timedelta:
    return timedelta(seconds=settings.DASHBOARD_SNAPSHOT_MAX_AGE)


@transaction.atomic
def completion_snapshot_store(
    *, trial: Trial, rows: list[dict], computed_at: datetime, figures: dict | None = None
) -> CompletionSnapshot:
    """The trial's snapshot replaced by `rows` (completion by site and week) and `figures` (the summary's other
    per-site figures) computed at `computed_at`, unless the stored one is for a later moment, or for the same one
    and complete; under the row lock. Returns the row now stored."""
    figures = figures or {}
    snapshot, created = CompletionSnapshot.objects.select_for_update().get_or_create(
        trial=trial, defaults={"rows": rows, "figures": figures, "computed_at": computed_at}
    )
    if not created and (snapshot.computed_at, figures_complete(snapshot.figures)) < (
        computed_at,
        figures_complete(figures),
    ):
        snapshot.rows, snapshot.figures, snapshot.computed_at = rows, figures, computed_at
        snapshot.save(update_fields=["rows", "figures", "computed_at"])
    return snapshot


def _computed(trial: Trial, now: datetime) -> tuple[list[dict], dict]:
    """(rows, figures) at `now`: every instance, response and dose of the trial read (on the replica when there
    is one), outside any lock."""
    figures = summary_site_figures(trial=trial, now=now)
    return figures.pop("completion"), figures


def _store_all(trial: Trial, now: datetime, rows: list[dict], figures: dict, blinding: dict) -> CompletionSnapshot:
    """The blinded snapshot and the blinding figures of each outcome in `blinding`, stored together at `now`."""
    with transaction.atomic():
        snapshot = completion_snapshot_store(trial=trial, rows=rows, figures=figures, computed_at=now)
        for outcome, computed in blinding.items():
            blinding_snapshot_store(trial=trial, outcome=outcome, figures=computed, computed_at=now)
    return snapshot


def completion_snapshot_refresh(*, trial: Trial, now: datetime | None = None) -> CompletionSnapshot:
    """Compute the trial's slow figures at `now` (the blinded ones, and the unblinded blinding figures of every
    outcome kept: analytics.blinding_snapshots) and store them."""
    now = now or timezone.now()
    rows, figures = _computed(trial, now)
    blinding = {key: blinding_figures(trial=trial, outcome=key) for key in blinding_outcomes(trial=trial)}
    return _store_all(trial, now, rows, figures, blinding)


def completion_snapshots_refresh(*, now: datetime | None = None) -> dict:
    """Beat: every trial's snapshot refreshed at `now`. Idempotent."""
    now = now or timezone.now()
    trials = list(Trial.objects.order_by("pk"))
    for trial in trials:
        completion_snapshot_refresh(trial=trial, now=now)
    return {"trials": len(trials), "computed_at": now.isoformat()}


def _fresh(snapshot: CompletionSnapshot | None, now: datetime) -> bool:
    return snapshot is not None and figures_complete(snapshot.figures) and abs(now - snapshot.computed_at) <= _max_age()


def completion_snapshot_current(*, trial: Trial, now: datetime | None = None) -> CompletionSnapshot:
    """The trial's snapshot if it is complete and at most DASHBOARD_SNAPSHOT_MAX_AGE from `now` (one query), else
    computed live at `now` and stored. When a later snapshot is stored than `now` asks for, returns the live
    figures at `now` (the stored row is left alone)."""
    now = now or timezone.now()
    snapshot = CompletionSnapshot.objects.filter(trial=trial).first()
    if _fresh(snapshot, now):
        return snapshot
    rows, figures = _computed(trial, now)
    stored = completion_snapshot_store(trial=trial, rows=rows, figures=figures, computed_at=now)
    if stored.computed_at == now:
        return stored
    return CompletionSnapshot(trial=trial, rows=rows, figures=figures, computed_at=now)


def summary_snapshots_current(
    *, trial: Trial, now: datetime | None = None, unblinded: bool = False, outcome: str | None = None
) -> tuple[CompletionSnapshot, dict | None]:
    """(the blinded snapshot, for `unblinded` readers the blinding figures of `outcome` computed at the same moment,
    else None), as `completion_snapshot_current` returns the first. For an unblinded reader the pair is read from
    the store when the snapshot is fresh and the figures of that outcome were stored with it (two queries); else
    both are computed now and stored (a stale snapshot, or an outcome nobody asked for before). ValueError for an
    outcome the protocol does not score."""
    now = now or timezone.now()
    if not unblinded:
        return completion_snapshot_current(trial=trial, now=now), None
    key = outcome_key(trial=trial, outcome=outcome)
    snapshot = CompletionSnapshot.objects.filter(trial=trial).first()
    if _fresh(snapshot, now):
        stored = blinding_snapshot_stored(trial=trial, outcome=key, computed_at=snapshot.computed_at)
        if stored is not None:
            return snapshot, stored
    rows, figures = _computed(trial, now)
    blinding = blinding_figures(trial=trial, outcome=key)
    _store_all(trial, now, rows, figures, {key: blinding})
    return CompletionSnapshot(trial=trial, rows=rows, figures=figures, computed_at=now), blinding
