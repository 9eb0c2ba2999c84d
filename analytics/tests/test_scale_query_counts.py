"""The two staff pages bench/scale.py times at 10,000 participants — the coordinator's participant changelist and the
trial dashboard — and the summary API run the same, pinned number of queries for a small and a grown trial (issue 14,
goal 4)."""

from datetime import UTC, datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

NOW = datetime(2026, 4, 20, 12, 0, tzinfo=UTC)

# Pinned: a change here is a change in what every page view costs; say why in the commit.
CHANGELIST_QUERIES = 13
DASHBOARD_QUERIES = {"trial_manager": 14, "unblinded_statistician": 16}
SUMMARY_QUERIES = {
    "statistician": 10,
    "unblinded_statistician": 12,
}  # unblinded: + its stored blinding figures, + the outcome's protocol check


def count(client, url: str) -> tuple[int, str]:
    assert client.get(url).status_code == 200  # warm the per-process caches (content types, protocol)
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url)
    assert response.status_code == 200
    return len(ctx.captured_queries), response.content.decode()


@pytest.fixture
def grown(trial):
    """grow(n): n more simulated participants (instances, answers, reminders, doses, alerts) in the trial."""
    from analytics.simulation import simulate_trial

    seeds = iter(range(1, 100))

    def grow(n: int) -> None:
        simulate_trial(trial=trial, participants=n, days=20, seed=next(seeds), now=NOW, audit=False)

    return grow


def test_coordinator_changelist_costs_the_same_queries_at_two_sizes(client, trial, site_ldn, make_staff, grown):
    from participants.models import Participant

    client.force_login(make_staff("coordinator", site=site_ldn))
    url = reverse("admin:participants_participant_changelist")
    grown(4)
    small, html = count(client, url)
    shown = Participant.objects.filter(site=site_ldn).count()
    assert shown and html.count('class="action-select"') == shown  # every row of the site is on the page
    grown(16)
    large, html = count(client, url)
    assert Participant.objects.filter(site=site_ldn).count() > shown
    assert html.count('class="action-select"') == Participant.objects.filter(site=site_ldn).count()
    assert small == large == CHANGELIST_QUERIES


@pytest.mark.parametrize("role", sorted(DASHBOARD_QUERIES))
def test_dashboard_costs_the_same_queries_at_two_sizes(client, trial, make_staff, grown, role):
    from participants.models import Participant

    client.force_login(make_staff(role))
    url = reverse("admin:trial_dashboard") + f"?trial={trial.slug}"
    grown(4)
    small, html = count(client, url)
    assert f"<td>{Participant.objects.count()}</td>" in html  # CONSORT: everyone screened
    grown(16)
    large, html = count(client, url)
    assert f"<td>{Participant.objects.count()}</td>" in html
    assert small == large == DASHBOARD_QUERIES[role]


def test_dashboard_completion_in_one_query_equals_the_per_site_completion(trial, grown):
    """The dashboard's one-pass completion by site and study week = completion(by="week") of each site (the one
    definition of surveys.definitions), including baseline days (week 0)."""
    from analytics import selectors
    from trialsite.models import Site

    grown(12)
    by_site = selectors.completion_by_site_week(trial=trial, now=NOW)
    assert set(by_site) == {"LDN", "NYC"}
    for site in Site.objects.all():
        rows = selectors.completion(trial=trial, site_ids=[site.pk], by="week", now=NOW)
        expected = [{k: r[k] for k in ("week", "planned", "answered", "rate")} for r in rows]
        assert by_site[site.code] == expected and expected
    assert selectors.completion_by_site_week(
        trial=trial, site_ids=[Site.objects.get(code="NYC").pk], now=NOW
    ).keys() == {"NYC"}


@pytest.mark.parametrize("role", sorted(SUMMARY_QUERIES))
def test_summary_api_costs_the_same_queries_at_two_sizes(api_client, trial, make_staff, grown, role):
    """GET /api/v1/staff/analytics/{trial}/summary with the stored figures just refreshed by the beat task."""
    from datetime import timedelta

    from analytics.completion_snapshots import completion_snapshots_refresh
    from participants.models import Participant
    from trialsite.api.auth import token_issue

    key, _ = token_issue(user=make_staff(role), kind="staff", ttl=timedelta(hours=1))
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    url = f"/api/v1/staff/analytics/{trial.slug}/summary"
    counts = []
    for n in (4, 16):
        grown(n)
        completion_snapshots_refresh()  # the beat task, at the wall clock as the API reads it
        assert api_client.get(url).status_code == 200  # warm: the token's first-use stamp, the parsed protocol
        with CaptureQueriesContext(connection) as ctx:
            response = api_client.get(url)
        assert response.status_code == 200
        body = response.json()
        assert body["consort"]["screened"] == Participant.objects.count()
        assert body["completion"]["overall"]["planned"] > 0 and body["adherence"]["overall"]["planned"] > 0
        assert ("indices" in body["blinding"]) == (role == "unblinded_statistician")
        counts.append((len(ctx.captured_queries), body["completion"]["overall"]["planned"]))
    (small, planned_small), (large, planned_large) = counts
    assert planned_large > planned_small  # the stored figures are the grown trial's
    assert small == large == SUMMARY_QUERIES[role]
