"""The stored completion by site and study week (issue 14, goal 4): the dashboard's one slow figure reads every
survey instance of the trial, so a beat task computes it every few minutes into one row per trial
(analytics.CompletionSnapshot) and the dashboard reads that row. The figures are computed by the same selector
as the live ones (analytics.selectors.completion_site_week_rows, on surveys.definitions): one definition.

- `completion_snapshot_store` (service) replaces a trial's row under its row lock, only with figures for a later
  moment than the stored ones: a slow refresh that finishes after a newer one never overwrites it; idempotent.
- `completion_snapshots_refresh` (beat, analytics.tasks) refreshes every trial's row.
- `completion_snapshot_current` (read) returns the stored row when it is at most DASHBOARD_SNAPSHOT_MAX_AGE
  seconds from `now`, else computes live and stores it (a fresh deployment, a stopped beat).
The rows hold site ids and counts only (blinded, nothing arm-bearing); readers narrow them to their sites.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from trialsite.models import Trial

from . import selectors
from .models import CompletionSnapshot


def _max_age() -> timedelta:
    return timedelta(seconds=settings.DASHBOARD_SNAPSHOT_MAX_AGE)


@transaction.atomic
def completion_snapshot_store(*, trial: Trial, rows: list[dict], computed_at: datetime) -> CompletionSnapshot:
    """The trial's snapshot replaced by `rows` computed at `computed_at`, unless the stored one is for a later
    (or the same) moment; under the row lock. Returns the row now stored."""
    snapshot, created = CompletionSnapshot.objects.select_for_update().get_or_create(
        trial=trial, defaults={"rows": rows, "computed_at": computed_at}
    )
    if not created and snapshot.computed_at < computed_at:
        snapshot.rows, snapshot.computed_at = rows, computed_at
        snapshot.save(update_fields=["rows", "computed_at"])
    return snapshot


def completion_snapshot_refresh(*, trial: Trial, now: datetime | None = None) -> CompletionSnapshot:
    """Compute the trial's completion by site and week at `now` (outside the lock: it reads every instance, on
    the replica when there is one) and store it."""
    now = now or timezone.now()
    rows = selectors.completion_site_week_rows(trial=trial, now=now)
    return completion_snapshot_store(trial=trial, rows=rows, computed_at=now)


def completion_snapshots_refresh(*, now: datetime | None = None) -> dict:
    """Beat: every trial's snapshot refreshed at `now`. Idempotent."""
    now = now or timezone.now()
    trials = list(Trial.objects.order_by("pk"))
    for trial in trials:
        completion_snapshot_refresh(trial=trial, now=now)
    return {"trials": len(trials), "computed_at": now.isoformat()}


def completion_snapshot_current(*, trial: Trial, now: datetime | None = None) -> CompletionSnapshot:
    """The trial's snapshot if it is at most DASHBOARD_SNAPSHOT_MAX_AGE from `now` (one query), else computed
    live at `now` and stored. When a later snapshot is stored than `now` asks for, returns the live figures
    at `now` (the stored row is left alone)."""
    now = now or timezone.now()
    snapshot = CompletionSnapshot.objects.filter(trial=trial).first()
    if snapshot is not None and abs(now - snapshot.computed_at) <= _max_age():
        return snapshot
    rows = selectors.completion_site_week_rows(trial=trial, now=now)
    stored = completion_snapshot_store(trial=trial, rows=rows, computed_at=now)
    return stored if stored.computed_at == now else CompletionSnapshot(trial=trial, rows=rows, computed_at=now)
