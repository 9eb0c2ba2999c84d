"""The summary API reads completion, adherence and latency from the trial's stored snapshot (analytics.summary,
issue 14 goal 4), and those figures are the one definition's (surveys.definitions): on a trial with every edge —
missed (marked and unswept), late, answered early while still open, cancelled, upcoming, baseline days, a
withdrawal on a dose day, a dose across the spring-forward night, a participant whose local date is behind UTC's —
the stored summary equals the live selectors and a recount from the pure functions, for every site scope."""

import json
import uuid
from collections import defaultdict
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.test import override_settings

from analytics import selectors
from analytics.completion_snapshots import completion_snapshot_refresh
from analytics.models import CompletionSnapshot
from analytics.summary import trial_summary, trial_summary_for
from surveys import definitions

# 02:30 UTC: 03:30 BST on 20 April in London, still 22:30 EDT on 19 April in New York.
NOW = datetime(2026, 4, 20, 2, 30, tzinfo=UTC)
LONDON, NEW_YORK = ZoneInfo("Europe/London"), ZoneInfo("America/New_York")
FOREVER = 10**9  # DASHBOARD_SNAPSHOT_MAX_AGE: the stored row is used whatever the wall clock


def _randomised(trial, site, day0: date, **extra):
    from participants.models import Participant
    from surveys.tests.factories import make_participant

    p, _ = make_participant(trial=trial, site=site)
    zone = ZoneInfo(site.timezone)
    at = datetime.combine(day0, time(10), tzinfo=zone)
    Participant.objects.filter(pk=p.pk).update(status="randomised", randomised_at=at, day0=day0, **extra)
    p.refresh_from_db()
    return p


def _instance(p, *, opens_at, study_day, status="scheduled", answered_at=None, late=False, slug="daily-mood"):
    from surveys.models import Response, SurveyInstance
    from surveys.tests.factories import make_instance

    i = make_instance(p, slug=slug, opens_at=opens_at, study_day=study_day)
    SurveyInstance.objects.filter(pk=i.pk).update(status=status)
    if answered_at is not None:
        Response.objects.create(
            instance=i,
            participant=p,
            instrument=i.instrument,
            idempotency_key=uuid.uuid4(),
            request_hash="0" * 64,
            answers={"mood": 5},
            authored_at=answered_at,
            received_at=answered_at,
            late=late,
        )
    return i


def _dose(p, at: datetime) -> None:
    from surveys.models import DoseLog

    DoseLog.objects.create(participant=p, taken_at=at, idempotency_key=uuid.uuid4())


@pytest.fixture
def edges(trial, site_ldn, site_nyc):
    """The demo trial simulated (answers, misses, late answers, withdrawals), plus hand-placed edges."""
    from analytics.simulation import simulate_trial

    simulate_trial(trial=trial, participants=14, days=30, seed=21, now=NOW, audit=False)
    # London, day 0 = 27 March: dose day 3 is 30 March, just after the spring-forward night (29 March).
    dst = _randomised(trial, site_ldn, date(2026, 3, 27))
    _dose(dst, datetime(2026, 3, 27, 9, tzinfo=LONDON))  # day 0
    _dose(dst, datetime(2026, 3, 29, 23, 30, tzinfo=UTC))  # 00:30 BST on 30 March: day 3 (UTC says day 2)
    _dose(dst, datetime(2026, 4, 2, 8, tzinfo=LONDON))  # day 6
    _dose(dst, datetime(2026, 4, 2, 20, tzinfo=LONDON))  # day 6 again: one dose day
    _dose(dst, datetime(2026, 4, 3, 8, tzinfo=LONDON))  # day 7: not a dose day
    opens = datetime(2026, 3, 26, 9, tzinfo=LONDON)
    _instance(dst, opens_at=opens, study_day=-1, status="completed", answered_at=opens + timedelta(hours=1))  # week 0
    day = datetime(2026, 3, 30, 9, tzinfo=LONDON)
    _instance(dst, opens_at=day, study_day=3, status="completed", answered_at=day + timedelta(hours=1))
    _instance(
        dst,
        opens_at=day + timedelta(days=1),
        study_day=4,
        status="completed",
        late=True,
        answered_at=day + timedelta(days=1, hours=4, minutes=10),
    )  # in the grace period: answered, late
    _instance(dst, opens_at=day + timedelta(days=2), study_day=5, status="missed")
    _instance(dst, opens_at=day + timedelta(days=8), study_day=11)  # never swept, grace passed: due, missed
    _instance(dst, opens_at=day + timedelta(days=9), study_day=12, status="cancelled")  # never due
    late_open = NOW - timedelta(hours=1)  # still open at NOW, answered already: due
    _instance(dst, opens_at=late_open, study_day=21, status="completed", answered_at=late_open + timedelta(minutes=5))
    _instance(dst, opens_at=NOW - timedelta(minutes=30), study_day=21, slug="phq9")  # open, unanswered: not due
    _instance(dst, opens_at=NOW + timedelta(hours=6), study_day=22)  # upcoming
    # New York, day 0 = 2 April: its local today (19 April) is day 17, so day 18 is not planned yet (UTC says 18).
    ny = _randomised(trial, site_nyc, date(2026, 4, 2))
    for n in (0, 3, 9, 15):
        _dose(ny, datetime.combine(date(2026, 4, 2) + timedelta(days=n), time(21), tzinfo=NEW_YORK))
    _dose(ny, datetime(2026, 4, 19, 23, 30, tzinfo=NEW_YORK))  # 03:30Z on the 20th: after NOW, not counted anyway
    # New York, withdrawn (intervention) at 15:00 on dose day 6: days 0 and 3 remain; the day-6 dose is not counted.
    wd = _randomised(
        trial,
        site_nyc,
        date(2026, 4, 1),
        withdrawn_at=datetime(2026, 4, 7, 15, tzinfo=NEW_YORK),
        withdrawal_scope="intervention",
    )
    for n in (3, 6):
        _dose(wd, datetime.combine(date(2026, 4, 1) + timedelta(days=n), time(9), tzinfo=NEW_YORK))
    wd_day = datetime(2026, 4, 5, 9, tzinfo=NEW_YORK)
    _instance(wd, opens_at=wd_day, study_day=4, status="missed")
    _instance(wd, opens_at=wd_day + timedelta(days=5), study_day=9, status="cancelled")
    return {"dst": dst, "ny": ny, "wd": wd}


def recount(trial, now) -> dict:
    """Completion and adherence by (site code, week), from every row through the pure functions only."""
    from participants.models import Participant
    from surveys.models import DoseLog, SurveyInstance
    from trialsite.protocol.services import protocol_current

    completion = defaultdict(lambda: [0, 0, 0])
    for i in SurveyInstance.objects.filter(participant__trial=trial).select_related("participant__site", "response"):
        if definitions.instance_is_due(status=i.status, grace_until=i.grace_until, now=now):
            answered = i.status == "completed"
            c = completion[(i.participant.site.code, max(i.study_day, 0) // 7)]
            c[0] += 1
            c[1] += answered
            c[2] += answered and not i.response.late
    dosing = protocol_current(trial).dosing
    adherence = defaultdict(lambda: [0, 0])
    for p in Participant.objects.filter(trial=trial, day0__isnull=False).select_related("site"):
        logged = {(d.taken_at.astimezone(p.zone).date() - p.day0).days for d in DoseLog.objects.filter(participant=p)}
        for day in definitions.participant_dose_days(participant=p, dosing=dosing, now=now):
            a = adherence[(p.site.code, day // 7)]
            a[0] += 1
            a[1] += day in logged
    return {"completion": dict(completion), "adherence": dict(adherence)}


def by_site_week(summary_rows: list[dict], counts) -> dict:
    return {(r["site"], r["week"]): [r[c] for c in counts] for r in summary_rows}


def reference(trial, site_ids, now) -> dict:
    """The summary's slow figures from the per-group selectors (each one query or one pass, no snapshot)."""
    adherence = selectors.adherence_groups(trial=trial, site_ids=site_ids, by=("site", "week"), now=now)
    return {
        "completion": {
            "by_site": selectors.completion(trial=trial, site_ids=site_ids, by="site", now=now),
            "by_week": selectors.completion(trial=trial, site_ids=site_ids, by="week", now=now),
        },
        "adherence": {"by_site": adherence["site"], "by_week": adherence["week"]},
        "latency": selectors.response_latency(trial=trial, site_ids=site_ids),
    }


def test_the_stored_summary_equals_the_live_selectors_and_the_pure_definitions(edges, site_ldn, site_nyc):
    trial = edges["dst"].trial
    stored = completion_snapshot_refresh(trial=trial, now=NOW)
    figures = {"completion": stored.rows, **json.loads(json.dumps(stored.figures))}  # as read back from JSON
    for site_ids in (None, [site_ldn.pk], [site_nyc.pk], [site_ldn.pk, site_nyc.pk]):
        fast = trial_summary(trial=trial, site_ids=site_ids, now=NOW, figures=figures, as_of=NOW)
        live = trial_summary(trial=trial, site_ids=site_ids, now=NOW)
        assert fast == live
        want = reference(trial, site_ids, NOW)
        for key in ("completion", "adherence"):
            for part in ("by_site", "by_week"):
                assert fast[key][part] == want[key][part], (site_ids, key, part)
        assert fast["latency"] == want["latency"] and want["latency"]
        guesses = selectors.blinding_guess_distribution(trial=trial, site_ids=site_ids)
        assert fast["blinding"]["guesses"] == guesses and guesses
    # Every figure of the whole trial, recounted from the rows with the pure functions.
    fast = trial_summary(trial=trial, now=NOW, figures=figures, as_of=NOW)
    counted = recount(trial, NOW)
    per_site_week = defaultdict(lambda: [0, 0, 0])
    for r in stored.rows:
        per_site_week[(r["site"], r["week"])] = [r["planned"], r["answered"], r["on_time"]]
    assert dict(per_site_week) == counted["completion"]
    assert by_site_week(stored.figures["adherence"], ("planned", "logged")) == counted["adherence"]
    # The stored adherence is computed in one SQL statement (analytics.summary_selectors): row for row the Python
    # reading of the same definition.
    python = selectors.adherence_groups(trial=trial, by=("site_week",), now=NOW)["site_week"]
    assert stored.figures["adherence"] == [
        {k: r[k] for k in ("site", "site_id", "week", "planned", "logged")} for r in python
    ]
    c, a = fast["completion"]["overall"], fast["adherence"]["overall"]
    assert [c["planned"], c["answered"]] == [sum(v[i] for v in counted["completion"].values()) for i in (0, 1)]
    assert [a["planned"], a["logged"]] == [sum(v[i] for v in counted["adherence"].values()) for i in (0, 1)]
    assert sum(r["on_time"] for r in fast["completion"]["by_week"]) < c["answered"]  # late answers were counted
    # The edges, by participant (the same definition, per participant).
    doses = {
        r["study_id"]: (r["planned"], r["logged"]) for r in selectors.adherence(trial=trial, by="participant", now=NOW)
    }
    assert doses[edges["dst"].study_id] == (9, 3)  # days 0…24; logged on 0, 3 (across DST) and 6
    assert doses[edges["ny"].study_id] == (6, 4)  # days 0…15 (day 18 not yet come in New York)
    assert doses[edges["wd"].study_id] == (2, 1)  # days 0 and 3 (withdrawn on day 6)
    mine = {r["study_id"]: r for r in selectors.completion(trial=trial, by="participant", now=NOW)}
    assert [mine[edges["dst"].study_id][k] for k in ("planned", "answered", "on_time")] == [6, 4, 3]


@override_settings(DASHBOARD_SNAPSHOT_MAX_AGE=FOREVER)
def test_the_api_reads_the_stored_figures_as_of_their_time(edges, make_staff, api_client, site_ldn):
    from trialsite.api.auth import token_issue

    trial = edges["dst"].trial
    completion_snapshot_refresh(trial=trial, now=NOW)
    url = f"/api/v1/staff/analytics/{trial.slug}/summary"

    def get(user) -> dict:
        key, _ = token_issue(user=user, kind="staff", ttl=timedelta(hours=1))
        response = api_client.get(url, HTTP_AUTHORIZATION=f"Bearer {key}")
        assert response.status_code == 200, response.content
        return response.json()

    statistician = make_staff("statistician")
    body = get(statistician)
    assert body["as_of"] == "2026-04-20T02:30:00+00:00"
    expected = json.loads(json.dumps(trial_summary(trial=trial, now=NOW)))
    for key in ("completion", "adherence", "latency"):
        assert body[key] == expected[key], key
    assert body["blinding"]["guesses"] == expected["blinding"]["guesses"]
    coordinator = get(make_staff("coordinator", site=site_ldn))  # narrowed to London on read
    london = json.loads(json.dumps(trial_summary(trial=trial, site_ids=[site_ldn.pk], now=NOW)))
    assert {r["site"] for r in coordinator["completion"]["by_site"]} == {"LDN"}
    for key in ("completion", "adherence", "latency"):
        assert coordinator[key] == london[key], key
    assert coordinator["blinding"]["guesses"] == london["blinding"]["guesses"]
    # A new answer: the API shows the stored figures until the beat task refreshes them.
    instance = _instance(
        edges["dst"],
        opens_at=NOW - timedelta(days=3),
        study_day=18,
        status="completed",
        answered_at=NOW - timedelta(days=3) + timedelta(minutes=20),
    )
    assert get(statistician)["completion"] == body["completion"]
    later = NOW + timedelta(minutes=5)
    completion_snapshot_refresh(trial=trial, now=later)
    refreshed = get(statistician)
    assert refreshed["as_of"] == "2026-04-20T02:35:00+00:00"
    assert refreshed["completion"]["overall"]["answered"] == body["completion"]["overall"]["answered"] + 1
    assert refreshed["completion"] == json.loads(json.dumps(trial_summary(trial=trial, now=later)))["completion"]
    assert instance.pk


@override_settings(DASHBOARD_SNAPSHOT_MAX_AGE=900)
def test_a_stale_or_incomplete_snapshot_is_recomputed_for_the_summary(edges, make_staff):
    trial = edges["dst"].trial
    actor = make_staff("trial_manager")
    stored = completion_snapshot_refresh(trial=trial, now=NOW).figures
    del stored["guesses"]  # as stored by a release that did not keep this part yet
    CompletionSnapshot.objects.filter(trial=trial).update(figures=stored)
    summary = trial_summary_for(actor=actor, trial=trial, now=NOW + timedelta(minutes=1))
    assert summary["as_of"] == (NOW + timedelta(minutes=1)).isoformat()
    assert CompletionSnapshot.objects.get().figures["guesses"]
    assert summary["completion"] == trial_summary(trial=trial, now=NOW + timedelta(minutes=1))["completion"]
    stale = NOW + timedelta(minutes=17)
    assert trial_summary_for(actor=actor, trial=trial, now=stale)["as_of"] == stale.isoformat()
    assert CompletionSnapshot.objects.get().computed_at == stale
