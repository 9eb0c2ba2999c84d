"""Quiet hours in the participant's zone, across midnight and DST, with an injected clock."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from surveys.models import Reminder
from surveys.reminders import services
from surveys.reminders.quiet import quiet_until

from .reminder_helpers import make_instance, make_participant

LDN = ZoneInfo("Europe/London")
NYC = ZoneInfo("America/New_York")
SYD = ZoneInfo("Australia/Sydney")
Q = (time(22, 0), time(7, 30))


def utc(*args):
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(
    ("now", "zone", "expected"),
    [
        # Across midnight: 23:00 and 03:00 London (winter) are quiet until 07:30 GMT.
        (utc(2026, 2, 10, 23, 0), LDN, utc(2026, 2, 11, 7, 30)),
        (utc(2026, 2, 11, 3, 0), LDN, utc(2026, 2, 11, 7, 30)),
        (utc(2026, 2, 11, 7, 30), LDN, None),
        (utc(2026, 2, 10, 21, 59), LDN, None),
        # Spring forward in London (2026-03-29): 07:30 BST is 06:30Z.
        (utc(2026, 3, 29, 0, 30), LDN, utc(2026, 3, 29, 6, 30)),
        # Fall back in London (2026-10-25): 01:30 happens twice; either way quiet until 07:30 GMT.
        (utc(2026, 10, 25, 0, 30), LDN, utc(2026, 10, 25, 7, 30)),
        (utc(2026, 10, 25, 1, 30), LDN, utc(2026, 10, 25, 7, 30)),
        # New York spring forward (2026-03-08, 02:00 → 03:00): 01:00 EST is quiet until 07:30 EDT = 11:30Z.
        (utc(2026, 3, 8, 6, 0), NYC, utc(2026, 3, 8, 11, 30)),
        # New York fall back (2026-11-01): 07:30 EST = 12:30Z.
        (utc(2026, 11, 1, 5, 30), NYC, utc(2026, 11, 1, 12, 30)),
        # Sydney: 12:00Z is 23:00 AEDT (quiet), 13:00Z on 2026-04-05 after DST ended is 23:00 AEST.
        (utc(2026, 4, 3, 12, 0), SYD, utc(2026, 4, 3, 20, 30)),
        (utc(2026, 4, 5, 13, 0), SYD, utc(2026, 4, 5, 21, 30)),
        # The same instant is quiet in London and not in New York (17:00 EST).
        (utc(2026, 2, 10, 22, 0), NYC, None),
    ],
)
def test_quiet_until(now, zone, expected):
    assert quiet_until(now=now, zone=zone, start=Q[0], end=Q[1]) == expected


def test_quiet_hours_within_one_day_and_none():
    lunch = (time(12, 0), time(13, 0))
    assert quiet_until(now=utc(2026, 2, 10, 12, 30), zone=LDN, start=lunch[0], end=lunch[1]) == utc(2026, 2, 10, 13)
    assert quiet_until(now=utc(2026, 2, 10, 13, 0), zone=LDN, start=lunch[0], end=lunch[1]) is None
    assert quiet_until(now=utc(2026, 2, 10, 12, 30), zone=LDN, start=None, end=None) is None


@pytest.mark.django_db
def test_send_in_quiet_hours_defers_to_their_end_then_sends(trial, site_nyc):
    # A New York participant, default protocol quiet hours; instance opens 06:00 EST on the spring-forward day.
    p = make_participant(trial, site_nyc, email="ny@example.org")
    opens = utc(2026, 3, 8, 6, 0)  # 01:00 EST
    inst = make_instance(p, opens_at=opens, window=timedelta(hours=12))
    services.reminders_plan_due(now=opens)
    r = Reminder.objects.get(instance=inst, stage="at_open")
    plan = services.reminder_send_prepare(reminder_id=r.pk, now=opens + timedelta(minutes=1))
    assert plan.action == "deferred"
    r.refresh_from_db()
    assert (r.status, r.due_at, r.skip_reason) == ("pending", utc(2026, 3, 8, 11, 30), "deferred_quiet_hours")
    # Claimed again once due; by then plus_2h (08:00Z) has come due as well and is the only one sent.
    services.reminders_plan_due(now=utc(2026, 3, 8, 11, 30))
    assert services.reminder_send_prepare(reminder_id=r.pk, now=utc(2026, 3, 8, 11, 30)).action == "skipped:superseded"
    later = Reminder.objects.get(instance=inst, stage="plus_2h")
    assert later.due_at == utc(2026, 3, 8, 8, 0)
    plan = services.reminder_send_prepare(reminder_id=later.pk, now=utc(2026, 3, 8, 11, 30))
    assert plan.action == "send"
    assert "14:00 on Sun 8 Mar (EDT)" in plan.body


@pytest.mark.django_db
def test_quiet_hours_reaching_past_closing_skip_and_own_hours_win(trial, site_ldn):
    # London participant with their own quiet hours 13:00–15:00; instance 14:00–15:00 GMT: can't be deferred.
    p = make_participant(trial, site_ldn, email="l@example.org", quiet=(time(13, 0), time(15, 0)))
    inst = make_instance(p, opens_at=utc(2026, 2, 10, 14, 0), window=timedelta(hours=1))
    services.reminders_plan_due(now=utc(2026, 2, 10, 14, 0))
    r = Reminder.objects.get(instance=inst, stage="at_open")
    assert services.reminder_send_prepare(reminder_id=r.pk, now=utc(2026, 2, 10, 14, 0)).action == "skipped:quiet_hours"
    # At 23:00 London the protocol default would be quiet, but this participant's own hours are not.
    late = make_instance(p, opens_at=utc(2026, 2, 10, 23, 0), window=timedelta(hours=4))
    services.reminders_plan_due(now=utc(2026, 2, 10, 23, 0))
    r2 = Reminder.objects.get(instance=late, stage="at_open")
    assert services.reminder_send_prepare(reminder_id=r2.pk, now=utc(2026, 2, 10, 23, 0)).action == "send"
