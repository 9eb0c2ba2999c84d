"""The dashboard's completion by site and study week is read from a stored snapshot (analytics.CompletionSnapshot)
that the beat task refreshes with the live selector's own figures (issue 14, goal 4)."""

import re
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.test import override_settings
from django.urls import reverse

from analytics import selectors
from analytics.completion_snapshots import completion_snapshot_refresh, completion_snapshots_refresh
from analytics.models import CompletionSnapshot

NOW = datetime(2026, 4, 20, 12, 0, tzinfo=UTC)
FOREVER = 10**9  # DASHBOARD_SNAPSHOT_MAX_AGE in the page tests: the stored row is used whatever the wall clock


@pytest.fixture
def grown(trial):
    """grow(n, now=): n more simulated participants (instances, answers, doses) in the trial."""
    from analytics.simulation import simulate_trial

    seeds = iter(range(1, 100))

    def grow(n: int, *, now: datetime = NOW) -> None:
        simulate_trial(trial=trial, participants=n, days=20, seed=next(seeds), now=now, audit=False)

    return grow


def completion_section(html: str) -> str:
    return html[html.index('id="completion"') : html.index('id="safety"')]


def table_rows(figures: dict) -> list[str]:
    return [
        f"<tr><td>{site}</td><td>{r['week']}</td><td>{r['planned']}</td><td>{r['answered']}</td>"
        for site, rows in figures.items()
        for r in rows
    ]


def test_the_snapshot_equals_the_live_computation_after_answers_arrive(trial, grown):
    grown(6)
    first = completion_snapshot_refresh(trial=trial, now=NOW)
    live = selectors.completion_by_site_week(trial=trial, now=NOW)
    assert selectors.completion_by_site_week_from(first.rows) == live
    assert set(live) == {"LDN", "NYC"}
    later = NOW + timedelta(days=2)
    grown(6, now=later)  # more participants, more answers
    live_later = selectors.completion_by_site_week(trial=trial, now=later)
    assert live_later != live
    assert selectors.completion_by_site_week_from(CompletionSnapshot.objects.get().rows) == live  # until refreshed
    second = completion_snapshot_refresh(trial=trial, now=later)
    assert selectors.completion_by_site_week_from(second.rows) == live_later
    assert CompletionSnapshot.objects.get().computed_at == later
    # Narrowed on read to some sites = the live figures of those sites.
    nyc = [r["site_id"] for r in second.rows if r["site"] == "NYC"][:1]
    assert selectors.completion_by_site_week_from(second.rows, site_ids=nyc) == selectors.completion_by_site_week(
        trial=trial, site_ids=nyc, now=later
    )


def test_the_beat_task_replaces_the_snapshot_idempotently(trial, grown):
    from analytics import tasks

    grown(4)
    assert completion_snapshots_refresh(now=NOW)["trials"] == 1
    stored = CompletionSnapshot.objects.get()
    completion_snapshots_refresh(now=NOW)
    again = CompletionSnapshot.objects.get()  # still one row, the same figures
    assert (again.pk, again.rows, again.computed_at) == (stored.pk, stored.rows, NOW)
    grown(4)
    completion_snapshots_refresh(now=NOW + timedelta(minutes=5))
    replaced = CompletionSnapshot.objects.get()
    assert replaced.computed_at == NOW + timedelta(minutes=5) and replaced.rows != stored.rows
    assert selectors.completion_by_site_week_from(replaced.rows) == selectors.completion_by_site_week(
        trial=trial, now=NOW + timedelta(minutes=5)
    )
    # A refresh for an earlier moment (a slow run finishing late) leaves the newer figures alone.
    completion_snapshot_refresh(trial=trial, now=NOW)
    assert CompletionSnapshot.objects.get().computed_at == NOW + timedelta(minutes=5)
    # The task beat runs (registered in trialsite/tests/test_registries.py) does the same, at the wall clock (an
    # hour after NOW here, so that the comparison below holds whatever the date the suite runs on).
    with time_machine.travel(NOW + timedelta(hours=1), tick=True):
        assert tasks.completion_snapshots_refresh.apply().get()["trials"] == 1
    assert CompletionSnapshot.objects.count() == 1
    assert CompletionSnapshot.objects.get().computed_at > NOW + timedelta(minutes=5)


@override_settings(DASHBOARD_SNAPSHOT_MAX_AGE=FOREVER)
def test_the_dashboard_shows_the_stored_figures_as_of_their_time(client, trial, make_staff, grown):
    grown(6)
    snapshot = completion_snapshot_refresh(trial=trial, now=NOW)
    client.force_login(make_staff("trial_manager"))
    url = reverse("admin:trial_dashboard") + f"?trial={trial.slug}"
    html = completion_section(client.get(url).content.decode())
    assert "as of 2026-04-20 12:00 UTC" in html
    stored = table_rows(selectors.completion_by_site_week_from(snapshot.rows))
    assert stored and all(row in html for row in stored)
    grown(6)  # answers arrive: the page still shows the stored figures
    html = completion_section(client.get(url).content.decode())
    assert all(row in html for row in stored) and "as of 2026-04-20 12:00 UTC" in html
    completion_snapshots_refresh(now=NOW + timedelta(minutes=5))  # the beat task ran
    html = completion_section(client.get(url).content.decode())
    assert "as of 2026-04-20 12:05 UTC" in html
    fresh = table_rows(selectors.completion_by_site_week(trial=trial, now=NOW + timedelta(minutes=5)))
    assert fresh != stored and all(row in html for row in fresh)


@override_settings(DASHBOARD_SNAPSHOT_MAX_AGE=900)
def test_a_missing_or_stale_snapshot_is_computed_live_and_stored(trial, make_staff, grown):
    grown(4)
    actor = make_staff("trial_manager")
    figures = selectors.dashboard_figures_for(actor=actor, trial=trial, now=NOW)  # none stored yet
    assert figures["completion_as_of"] == NOW == CompletionSnapshot.objects.get().computed_at
    first = selectors.completion_by_site_week(trial=trial, now=NOW)
    assert figures["completion_by_site_week"] == first
    grown(4)
    within = selectors.dashboard_figures_for(actor=actor, trial=trial, now=NOW + timedelta(minutes=15))
    assert (within["completion_as_of"], within["completion_by_site_week"]) == (NOW, first)
    stale = NOW + timedelta(minutes=15, seconds=1)
    after = selectors.dashboard_figures_for(actor=actor, trial=trial, now=stale)
    assert after["completion_as_of"] == stale == CompletionSnapshot.objects.get().computed_at
    assert after["completion_by_site_week"] == selectors.completion_by_site_week(trial=trial, now=stale) != first


@override_settings(DASHBOARD_SNAPSHOT_MAX_AGE=FOREVER)
def test_a_coordinator_sees_only_their_sites_figures_from_the_snapshot(client, trial, site_ldn, make_staff, grown):
    grown(8)
    snapshot = completion_snapshot_refresh(trial=trial, now=NOW)
    assert {r["site"] for r in snapshot.rows} == {"LDN", "NYC"}  # the row holds every site
    coordinator = make_staff("coordinator", site=site_ldn)
    assert selectors.dashboard_figures_for(actor=coordinator, trial=trial)["completion_by_site_week"] == (
        selectors.completion_by_site_week(trial=trial, site_ids=[site_ldn.pk], now=NOW)
    )
    client.force_login(coordinator)
    html = completion_section(client.get(reverse("admin:trial_dashboard") + f"?trial={trial.slug}").content.decode())
    assert set(re.findall(r"<tr><td>([A-Z]+)</td>", html)) == {"LDN"}
    assert all(
        row in html for row in table_rows(selectors.completion_by_site_week_from(snapshot.rows, site_ids=[site_ldn.pk]))
    )
