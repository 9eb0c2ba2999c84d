"""One definition each (surveys.definitions): the pure functions table-tested, then the admin changelist, the staff
API list, the analytics summary and the coordinator task read the same figures for the same participants."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, date, datetime, timedelta
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest

from surveys import definitions as d

DOSING = SimpleNamespace(start_day=0, end_day=39, every_n_days=3)
LONDON = ZoneInfo("Europe/London")
T = datetime(2026, 5, 1, 12, tzinfo=UTC)


@pytest.mark.parametrize(
    ("day0", "today", "withdrawn_on", "expected"),
    [
        (None, None, None, []),  # not randomised
        (date(2026, 5, 1), None, None, list(range(0, 40, 3))),  # the whole plan: 14 days
        (date(2026, 5, 1), date(2026, 5, 1), None, [0]),  # day 0 has come
        (date(2026, 5, 1), date(2026, 4, 30), None, []),  # before day 0
        (date(2026, 5, 1), date(2026, 5, 8), None, [0, 3, 6]),
        (date(2026, 5, 1), date(2026, 8, 1), None, list(range(0, 40, 3))),  # capped at end_day
        (date(2026, 5, 1), date(2026, 5, 20), date(2026, 5, 10), [0, 3, 6]),  # withdrawal on dose day 9
        (date(2026, 5, 1), date(2026, 5, 20), date(2026, 5, 11), [0, 3, 6, 9]),  # the day after it
        (date(2026, 5, 1), date(2026, 5, 20), date(2026, 5, 1), []),  # withdrawn on day 0
    ],
)
def test_dose_days(day0, today, withdrawn_on, expected):
    assert d.dose_days(dosing=DOSING, day0=day0, today=today, withdrawn_on=withdrawn_on) == expected


def test_no_dosing_block_plans_nothing():
    assert d.dose_days(dosing=None, day0=date(2026, 5, 1)) == []
    assert not d.is_dose_day(dosing=None, day=0)
    assert [n for n in range(45) if d.is_dose_day(dosing=DOSING, day=n)] == d.dose_days(dosing=DOSING, day0=T.date())


@pytest.mark.parametrize(
    ("now", "withdrawn_at", "expected"),
    [
        # Spring forward in London on 29 March 2026. 23:30Z on the 29th is 00:30 BST on the 30th: study day 3
        # has come locally although the UTC date is still the 29th.
        (datetime(2026, 3, 29, 23, 30, tzinfo=UTC), None, [0, 3]),
        (datetime(2026, 3, 29, 22, 59, tzinfo=UTC), None, [0]),  # 23:59 BST on the 29th
        # Withdrawn mid-day on dose day 3 (10:00 BST): that day is no longer a dose day, whatever the hour.
        (datetime(2026, 4, 10, 12, tzinfo=UTC), datetime(2026, 3, 30, 9, tzinfo=UTC), [0]),
        # Withdrawn at 00:30 BST on the 30th (23:30Z on the 29th): still the local date of day 3.
        (datetime(2026, 4, 10, 12, tzinfo=UTC), datetime(2026, 3, 29, 23, 30, tzinfo=UTC), [0]),
        # Withdrawn at 23:30 BST on the 29th (22:30Z): day 3 was never reached.
        (datetime(2026, 4, 10, 12, tzinfo=UTC), datetime(2026, 3, 29, 22, 30, tzinfo=UTC), [0]),
        (datetime(2026, 4, 10, 12, tzinfo=UTC), datetime(2026, 3, 31, 9, tzinfo=UTC), [0, 3]),
    ],
)
def test_participant_dose_days_use_the_local_date_across_dst(now, withdrawn_at, expected):
    p = SimpleNamespace(zone=LONDON, day0=date(2026, 3, 27), withdrawn_at=withdrawn_at)
    assert d.participant_dose_days(participant=p, dosing=DOSING, now=now) == expected


@pytest.mark.parametrize(
    ("planned", "logged", "expected"),
    [
        ([], [], (0, 0, None)),
        ([0, 3, 6], [0, 3], (3, 2, 0.667)),
        ([0, 3, 6], [0, 1, 2, 4], (3, 1, 0.333)),  # a dose on a day that is not a dose day does not count
        ([0, 3, 6], [0, 3, 6, 9], (3, 3, 1.0)),  # a dose after withdrawal (day 9 not planned) neither
    ],
)
def test_dose_adherence(planned, logged, expected):
    assert d.dose_adherence(planned=planned, logged_days=logged) == expected


@pytest.mark.parametrize(
    ("status", "grace_hours", "due", "missed"),
    [
        ("scheduled", 1, False, False),  # still open or in grace
        ("scheduled", -1, True, True),  # grace passed, the sweep has not marked it yet
        ("completed", 1, True, False),  # answered early: due from the answer
        ("completed", -1, True, False),
        ("missed", -1, True, True),
        ("cancelled", -1, False, False),  # withdrawal: never due
    ],
)
def test_due_and_missed(status, grace_hours, due, missed):
    grace = T + timedelta(hours=grace_hours)
    assert d.instance_is_due(status=status, grace_until=grace, now=T) is due
    assert d.instance_is_missed(status=status, grace_until=grace, now=T) is missed


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        ("", 0),
        ("MMM", 3),
        ("MCM", 1),
        ("CMM", 2),
        ("MMC", 0),
        ("MMXM", 3),  # a cancelled instance neither breaks nor extends the streak
        ("MMO", 2),  # one still open is ignored
        ("MMS", 3),  # one still scheduled with its grace passed is missed
    ],
)
def test_missed_in_a_row(statuses, expected):
    code = {"M": "missed", "C": "completed", "X": "cancelled", "O": "scheduled", "S": "scheduled"}
    rows = []
    for n, s in enumerate(statuses):
        grace = T + timedelta(hours=1) if s == "O" else T - timedelta(days=10 - n)
        rows.append((T - timedelta(days=20 - n), code[s], grace))
    assert d.missed_in_a_row(reversed(rows), now=T) == expected


# -- every interface shows the same figures -------------------------------------------------------------------


def _cell(html: str, study_id: str, column: str) -> str:
    row = re.search(rf"<tr[^>]*>(?:(?!</tr>).)*{re.escape(study_id)}(?:(?!</tr>).)*</tr>", html, re.S).group(0)
    return re.sub(r"<[^>]+>", "", re.search(rf'class="field-{column}[^"]*">(.*?)</td>', row, re.S).group(1)).strip()


def test_admin_staff_api_and_analytics_show_the_same_figures(trial, site_ldn, make_staff, client, api_client):
    from django.utils import timezone

    from analytics import selectors as analytics_selectors
    from participants.models import Participant
    from surveys import selectors
    from surveys.models import DoseLog, InstanceStatus, SurveyInstance
    from surveys.tests.factories import make_instance, make_participant
    from trialsite.api.auth import token_issue

    now = timezone.now()
    day0 = (now - timedelta(days=10)).astimezone(LONDON).date()
    a, _ = make_participant(trial=trial, site=site_ldn)
    b, _ = make_participant(trial=trial, site=site_ldn)
    Participant.objects.filter(pk__in=[a.pk, b.pk]).update(
        status="randomised", randomised_at=now - timedelta(days=10), day0=day0
    )
    # b withdrew mid-day on study day 6 (a dose day): dose days 0 and 3 remain.
    withdrawn_at = datetime.combine(day0 + timedelta(days=6), datetime.min.time().replace(hour=13), tzinfo=LONDON)
    Participant.objects.filter(pk=b.pk).update(status="withdrawn", withdrawal_scope="all", withdrawn_at=withdrawn_at)

    def inst(p, days_ago, status):
        i = make_instance(p, slug="daily-mood", opens_at=now - timedelta(days=days_ago))
        SurveyInstance.objects.filter(pk=i.pk).update(status=status)
        return i

    # a: answered, missed, missed, unswept past grace, missed → 4 daily-mood surveys in a row; plus one upcoming
    # and a PHQ-9 answered early (still in its window): due and answered, but not the streak's instrument.
    for days_ago, status in ((6, "completed"), (5, "missed"), (4, "missed"), (3, "scheduled"), (2, "missed")):
        last_a = inst(a, days_ago, status)
    make_instance(a, slug="daily-mood", opens_at=now + timedelta(hours=3))
    early = make_instance(a, slug="phq9", opens_at=now - timedelta(hours=1))
    SurveyInstance.objects.filter(pk=early.pk).update(status=InstanceStatus.COMPLETED)
    # b: missed, answered, then cancelled by the withdrawal.
    inst(b, 5, "missed")
    inst(b, 4, "completed")
    inst(b, 3, "cancelled")
    for p, day in ((a, 0), (a, 3), (a, 4), (b, 0), (b, 6)):
        taken = datetime.combine(day0 + timedelta(days=day), datetime.min.time().replace(hour=9), tzinfo=LONDON)
        DoseLog.objects.create(participant=p, taken_at=taken, idempotency_key=uuid.uuid4())

    expected = {
        a.study_id: {"due": 6, "answered": 2, "rate": 0.333, "doses": (4, 2), "missed": 4},
        b.study_id: {"due": 2, "answered": 1, "rate": 0.5, "doses": (2, 1), "missed": 0},
    }

    # The staff API list.
    coordinator = make_staff("coordinator", site=site_ldn)
    key, _ = token_issue(user=coordinator, kind="staff", ttl=timedelta(hours=1))
    r = api_client.get("/api/v1/staff/participants", HTTP_AUTHORIZATION=f"Bearer {key}")
    assert r.status_code == 200
    api = {row["study_id"]: row["adherence"] for row in r.json()["results"]}
    # The analytics summary (and its per-participant grouping).
    completion = {
        row["study_id"]: row for row in analytics_selectors.completion(trial=trial, by="participant", now=now)
    }
    doses = {row["study_id"]: row for row in analytics_selectors.adherence(trial=trial, by="participant", now=now)}
    summary = analytics_selectors.trial_summary(trial=trial, now=now)
    # The admin changelist (the coordinator's dashboard).
    client.force_login(coordinator)
    html = client.get("/admin/participants/participant/").content.decode()

    for study_id, want in expected.items():
        assert (api[study_id]["surveys_due"], api[study_id]["surveys_answered"]) == (want["due"], want["answered"])
        assert api[study_id]["completion"] == want["rate"]
        assert (api[study_id]["doses_planned"], api[study_id]["doses_logged"]) == want["doses"]
        c = completion[study_id]
        assert (c["planned"], c["answered"], round(c["rate"], 3)) == (want["due"], want["answered"], want["rate"])
        assert (doses[study_id]["planned"], doses[study_id]["logged"]) == want["doses"]
        assert _cell(html, study_id, "adherence_all") == f"{round(100 * want['answered'] / want['due'])}%"
        assert _cell(html, study_id, "missed_row_col") == str(want["missed"])
    overall = summary["completion"]["overall"]
    assert (overall["planned"], overall["answered"]) == (8, 3)
    assert (summary["adherence"]["overall"]["planned"], summary["adherence"]["overall"]["logged"]) == (6, 3)
    # The coordinator task's streak at a's last miss agrees with the admin column.
    assert (
        selectors.missed_in_a_row_at(participant_id=a.pk, instrument="daily-mood", upto=last_a.opens_at, now=now) == 4
    )
