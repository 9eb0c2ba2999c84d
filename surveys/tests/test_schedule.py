"""Survey schedules in the participant's zone, across 2026 daylight-saving changes (IANA tzdata figures)."""

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from participants import providers
from participants.models import ParticipantStatus, WithdrawalScope
from participants.services.errors import WorkflowError
from surveys.models import InstanceStatus, SurveyInstance
from surveys.scheduling import local_to_utc, plan_event
from surveys.selectors import participants_adherence
from trialsite.protocol.schema import ScheduleEvent

from .factories import make_participant, randomise, sign_consent


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def daily(at: str, start: date, days: int) -> ScheduleEvent:
    return ScheduleEvent.model_validate(
        {
            "key": "daily",
            "instrument": "daily-mood",
            "anchor": "randomisation",
            "recurrence": {"every_n_days": 1, "from_day": 0, "to_day": days},
            "time": at,
            "window": "4h",
        }
    )


def opens_by_date(zone: str, at: str, start: date, days: int) -> dict[date, datetime]:
    occ = plan_event(event=daily(at, start, days), anchor_at=utc(2026, 1, 1), anchor_date=start, zone_name=zone)
    return {o.local_date: o.opens_at for o in occ}


# Reference: a daily 09:00 local prompt in UTC.
@pytest.mark.parametrize(
    ("zone", "local", "expected"),
    [
        ("Europe/London", date(2026, 3, 28), utc(2026, 3, 28, 9)),
        ("Europe/London", date(2026, 3, 29), utc(2026, 3, 29, 8)),
        ("Europe/London", date(2026, 10, 24), utc(2026, 10, 24, 8)),
        ("Europe/London", date(2026, 10, 25), utc(2026, 10, 25, 9)),
        ("America/New_York", date(2026, 3, 7), utc(2026, 3, 7, 14)),
        ("America/New_York", date(2026, 3, 8), utc(2026, 3, 8, 13)),
        ("America/New_York", date(2026, 10, 31), utc(2026, 10, 31, 13)),
        ("America/New_York", date(2026, 11, 1), utc(2026, 11, 1, 14)),
        ("Australia/Sydney", date(2026, 4, 4), utc(2026, 4, 3, 22)),
        ("Australia/Sydney", date(2026, 4, 5), utc(2026, 4, 4, 23)),
    ],
)
def test_daily_0900_prompt_across_dst(zone, local, expected):
    plan = opens_by_date(zone, "09:00", local - timedelta(days=2), 4)
    assert plan[local] == expected
    # The window is an absolute duration.
    occ = plan_event(event=daily("09:00", local, 0), anchor_at=expected, anchor_date=local, zone_name=zone)[0]
    assert occ.closes_at - occ.opens_at == timedelta(hours=4)


def test_same_time_tomorrow_is_local_date_arithmetic():
    plan = opens_by_date("Europe/London", "09:00", date(2026, 3, 28), 1)
    assert plan[date(2026, 3, 29)] - plan[date(2026, 3, 28)] == timedelta(hours=23)
    plan = opens_by_date("Europe/London", "09:00", date(2026, 10, 24), 1)
    assert plan[date(2026, 10, 25)] - plan[date(2026, 10, 24)] == timedelta(hours=25)


# The one DST rule (surveys.scheduling.local_to_utc, also used by quiet hours and the simulator), with the
# figures of /work/shared/reference/time.md: (zone, local date, local time, UTC instant).
DST_RULE_TABLE = [
    # A daily 09:00 local prompt across the 2026 changes.
    ("Europe/London", date(2026, 3, 28), time(9, 0), utc(2026, 3, 28, 9, 0)),
    ("Europe/London", date(2026, 3, 29), time(9, 0), utc(2026, 3, 29, 8, 0)),  # BST begins
    ("Europe/London", date(2026, 10, 24), time(9, 0), utc(2026, 10, 24, 8, 0)),
    ("Europe/London", date(2026, 10, 25), time(9, 0), utc(2026, 10, 25, 9, 0)),
    ("America/New_York", date(2026, 3, 7), time(9, 0), utc(2026, 3, 7, 14, 0)),
    ("America/New_York", date(2026, 3, 8), time(9, 0), utc(2026, 3, 8, 13, 0)),
    ("America/New_York", date(2026, 10, 31), time(9, 0), utc(2026, 10, 31, 13, 0)),
    ("America/New_York", date(2026, 11, 1), time(9, 0), utc(2026, 11, 1, 14, 0)),
    ("Australia/Sydney", date(2026, 4, 4), time(9, 0), utc(2026, 4, 3, 22, 0)),
    ("Australia/Sydney", date(2026, 4, 5), time(9, 0), utc(2026, 4, 4, 23, 0)),
    # Does not exist (London 01:00 → 02:00): the first valid instant after the gap, 02:00 BST = 01:00Z
    # (not zoneinfo's fold=0 reading, 01:30Z = 02:30 BST).
    ("Europe/London", date(2026, 3, 29), time(1, 30), utc(2026, 3, 29, 1, 0)),
    ("America/New_York", date(2026, 3, 8), time(2, 30), utc(2026, 3, 8, 7, 0)),  # 03:00 EDT
    # Exists twice (London 2026-10-25): the first occurrence, fold=0 = 00:30Z (fold=1 would be 01:30Z).
    ("Europe/London", date(2026, 10, 25), time(1, 30), utc(2026, 10, 25, 0, 30)),
]


@pytest.mark.parametrize(("zone", "day", "at", "expected"), DST_RULE_TABLE)
def test_dst_rule_local_to_utc(zone, day, at, expected):
    assert local_to_utc(day, at, ZoneInfo(zone)) == expected


def test_nonexistent_local_time_fires_once_in_a_daily_plan():
    plan = opens_by_date("Europe/London", "01:30", date(2026, 3, 27), 4)
    assert list(plan.values()) == [
        utc(2026, 3, 27, 1, 30),
        utc(2026, 3, 28, 1, 30),
        utc(2026, 3, 29, 1, 0),
        utc(2026, 3, 30, 0, 30),
        utc(2026, 3, 31, 0, 30),
    ]


def test_ambiguous_local_time_fires_once_in_a_daily_plan():
    # 01:30Z on 2026-10-25 (the second 01:30) never fires.
    plan = opens_by_date("Europe/London", "01:30", date(2026, 10, 24), 2)
    assert list(plan.values()) == [utc(2026, 10, 24, 0, 30), utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 1, 30)]


@pytest.fixture
def london(trial, site_ldn):
    participant, _ = make_participant(trial=trial, site=site_ldn)
    return participant


def test_consent_opens_baseline_for_seven_days(london):
    signed = utc(2026, 3, 1, 10, 15)
    sign_consent(london, at=signed, now=signed)
    rows = SurveyInstance.objects.filter(participant=london).order_by("schedule_key")
    assert [(r.schedule_key, r.study_day, r.opens_at, r.closes_at) for r in rows] == [
        ("baseline_gad7", 0, signed, signed + timedelta(days=7)),
        ("baseline_phq9", 0, signed, signed + timedelta(days=7)),
    ]
    assert rows[0].timezone == "Europe/London" and rows[0].local_date == date(2026, 3, 1)


def test_randomisation_materialises_the_schedule_across_the_spring_change(london):
    at = utc(2026, 3, 22, 12)  # local date 2026-03-22 = day 0
    sign_consent(london, at=at - timedelta(days=3), now=at - timedelta(days=3))
    randomise(london, at=at)
    rows = {(r.schedule_key, r.study_day): r for r in SurveyInstance.objects.filter(participant=london)}
    # daily 1..56, weekly PHQ-9 and GAD-7 x8, blinding x3, baseline x2, expectancy x1
    assert len(rows) == 56 + 8 + 8 + 3 + 2 + 1  # + baseline expectancy at randomisation
    week1 = rows[("weekly_phq9", 7)]
    assert (week1.local_date, week1.local_time, week1.opens_at) == (date(2026, 3, 29), time(9), utc(2026, 3, 29, 8))
    assert week1.closes_at == utc(2026, 3, 31, 8) and week1.grace_until == utc(2026, 3, 31, 10)
    assert rows[("daily_mood", 6)].opens_at == utc(2026, 3, 28, 20)  # 20:00 GMT
    assert rows[("daily_mood", 7)].opens_at == utc(2026, 3, 29, 19)  # 20:00 BST
    # Emitting again (a retried hook) plans nothing twice.
    providers.schedule_provider().on_randomised(participant=london, now=at)
    assert SurveyInstance.objects.filter(participant=london).count() == len(rows)


def test_zone_change_replans_only_future_instances(london):
    at = utc(2026, 10, 10, 12)
    sign_consent(london, at=at - timedelta(days=2), now=at - timedelta(days=2))
    randomise(london, at=at)
    now = utc(2026, 10, 24, 20, 30)  # day 14: that evening's daily survey is open (20:00 BST = 19:00Z)
    london.timezone = "America/New_York"
    london.save(update_fields=["timezone"])
    providers.schedule_provider().on_timezone_changed(
        participant=london, old="Europe/London", new="America/New_York", now=now
    )
    live = {
        (r.schedule_key, r.study_day): r
        for r in SurveyInstance.objects.filter(participant=london).exclude(status=InstanceStatus.CANCELLED)
    }
    opened = live[("daily_mood", 14)]
    assert (opened.timezone, opened.opens_at) == ("Europe/London", utc(2026, 10, 24, 19))
    nxt = live[("daily_mood", 15)]  # 2026-10-25 20:00 in New York (EDT) = 2026-10-26 00:00Z
    assert (nxt.timezone, nxt.local_date, nxt.opens_at) == ("America/New_York", date(2026, 10, 25), utc(2026, 10, 26))
    assert live[("daily_mood", 22)].opens_at == utc(2026, 11, 2, 1)  # 20:00 EST after New York's change
    cancelled = SurveyInstance.objects.filter(participant=london, status=InstanceStatus.CANCELLED)
    assert cancelled.count() == 42 + 6 + 6 + 2  # days 15..56 daily, weekly 21..56 x2, blinding 42, 56
    assert set(cancelled.values_list("cancel_reason", flat=True)) == {"timezone_changed"}
    assert not cancelled.filter(opens_at__lte=now).exists()


def test_withdrawal_all_cancels_future_instances_intervention_keeps_them(trial, site_ldn):
    at = utc(2026, 5, 1, 12)
    now = utc(2026, 5, 10, 12)
    keep, _ = make_participant(trial=trial, site=site_ldn)
    stop, _ = make_participant(trial=trial, site=site_ldn)
    for p in (keep, stop):
        sign_consent(p, at=at - timedelta(days=1), now=at - timedelta(days=1))
        randomise(p, at=at)
    for p, scope in ((keep, WithdrawalScope.INTERVENTION), (stop, WithdrawalScope.ALL)):
        p.status, p.withdrawal_scope, p.withdrawn_at = ParticipantStatus.WITHDRAWN, scope, now
        p.save(update_fields=["status", "withdrawal_scope", "withdrawn_at"])
        providers.schedule_provider().on_withdrawn(participant=p, scope=scope, now=now)
    assert not SurveyInstance.objects.filter(participant=keep, status=InstanceStatus.CANCELLED).exists()
    future = SurveyInstance.objects.filter(participant=stop, grace_until__gt=now)
    assert future.exists() and set(future.values_list("status", flat=True)) == {"cancelled"}
    assert SurveyInstance.objects.filter(participant=stop, grace_until__lte=now, status="scheduled").exists()
    # Dosing stops with either scope: the withdrawal date (study day 9, 10 May, a dose day) is no longer a dose
    # day, so the dose days planned (what the staff list shows) are 1, 4 and 7 May, however long after it one
    # looks; a participant still in would be planned all 14 by then.
    later = utc(2026, 7, 1, 12)
    still_in, _ = make_participant(trial=trial, site=site_ldn)
    randomise(still_in, at=at)
    planned = {
        pk: row["doses_planned"]
        for pk, row in participants_adherence(participants=[keep, stop, still_in], now=later).items()
    }
    assert planned == {keep.pk: 3, stop.pk: 3, still_in.pk: 14}


def test_dose_days_planned_every_third_local_day_for_six_weeks(london):
    randomise(london, at=utc(2026, 6, 1, 23, 30))  # 00:30 BST on 2 June: day 0 is the local date

    def planned(now):
        return participants_adherence(participants=[london], now=now)[london.pk]["doses_planned"]

    assert planned(utc(2026, 6, 1, 22, 59)) == 0  # 23:59 BST on 1 June: before day 0
    assert planned(utc(2026, 6, 1, 23, 0)) == 1  # 00:00 BST on 2 June: day 0
    assert planned(utc(2026, 6, 4, 22, 59)) == 1  # 23:59 BST on 4 June: day 2
    assert planned(utc(2026, 6, 4, 23, 0)) == 2  # 00:00 BST on 5 June: day 3
    assert planned(utc(2026, 7, 10, 22, 59)) == 13  # 23:59 BST on 10 July: day 38
    assert planned(utc(2026, 7, 10, 23, 0)) == 14  # 11 July, day 39: the last of 0, 3, …, 39
    assert planned(utc(2026, 9, 1)) == 14


def test_study_day_of_an_answer_is_the_local_date(trial, site_nyc):
    participant, _ = make_participant(trial=trial, site=site_nyc)
    randomise(participant, at=utc(2026, 2, 12, 15))
    authored = datetime.fromisoformat("2026-02-19T23:30:00-05:00")  # UTC date is 2026-02-20
    assert participant.study_day(authored) == 7


def _amended(source: str) -> str:
    return source.replace('time: "20:00"', 'time: "19:00"').replace(
        '  - version: "1.0"',
        '  - version: "2.0"\n    title: "v2"\n    valid_from: 2026-01-02\n'
        '    requires_reconsent: true\n    body: "New text."\n  - version: "1.0"',
        1,
    )


# The amendment moves the daily prompt from 20:00 to 19:00 London. The test used to read the wall clock and
# failed between 19:00 and 20:00 London (today's 20:00 prompt not yet open, its 19:00 replacement already open).
# The clock is injected: 19:30 London is that hour; the others are a morning and a late evening.
@pytest.mark.parametrize(
    "now",
    [
        datetime(2026, 5, 12, 19, 30, tzinfo=ZoneInfo("Europe/London")),
        datetime(2026, 5, 12, 10, 0, tzinfo=ZoneInfo("Europe/London")),
        datetime(2026, 5, 12, 23, 30, tzinfo=ZoneInfo("Europe/London")),
    ],
    ids=["1930-london", "1000-london", "2330-london"],
)
def test_amendment_replans_future_and_reconsent_blocks_new_instances(
    now, london, demo_protocol_source, trial, site_ldn
):
    from trialsite.protocol.services import protocol_load

    now = now.astimezone(UTC)
    at = now - timedelta(days=2)  # randomised the day before yesterday: yesterday's prompt is history
    sign_consent(london, at=at - timedelta(days=1), now=at - timedelta(days=1))
    randomise(london, at=at)
    fresh, _ = make_participant(trial=trial, site=site_ldn)  # enrolled, not yet consented
    before = SurveyInstance.objects.filter(participant=london).count()
    result = protocol_load(source=_amended(demo_protocol_source), now=now)
    assert result.amended
    # The 1.0 signature no longer covers the participant (2.0 requires re-consent), yet existing instances
    # are re-planned to the amended time; none are added.
    live = SurveyInstance.objects.filter(participant=london).exclude(status="cancelled")
    assert live.count() == before
    daily = live.filter(schedule_key="daily_mood")
    # Every daily prompt not yet open at the amendment now opens at 19:00 (today's too, even if 19:00 has passed
    # and it is open already); those that had opened are history and keep 20:00.
    replanned = daily.filter(created_at=now)
    assert replanned.count() >= 53
    assert set(replanned.values_list("local_time", flat=True)) == {time(19)}
    assert set(daily.filter(opens_at__gt=now).values_list("local_time", flat=True)) == {time(19)}
    history = daily.exclude(created_at=now)
    assert history.exists() and all(i.opens_at <= now for i in history)
    assert set(history.values_list("local_time", flat=True)) == {time(20)}
    assert set(
        SurveyInstance.objects.filter(participant=london, status="cancelled").values_list("cancel_reason", flat=True)
    ) == {"amendment"}
    # A participant cannot sign the superseded version, and gets nothing until they sign 2.0.
    with pytest.raises(WorkflowError, match=r"not the current version \(2\.0\)"):
        sign_consent(fresh, version="1.0", at=now, now=now)
    assert not SurveyInstance.objects.filter(participant=fresh).exists()
    sign_consent(fresh, version="2.0", at=now + timedelta(minutes=5), now=now + timedelta(minutes=5))
    assert SurveyInstance.objects.filter(participant=fresh, schedule_key__startswith="baseline").count() == 2
