"""Planning survey occurrences in a participant's local time (pure: no database).

Rules (documented in the protocol format too):
- Days are local-date arithmetic: study day N of an event anchored on randomisation is the local date
  day0 + N (day0 = the local date of randomisation), at the event's local wall-clock time. "The same time
  tomorrow" may be 23 or 25 hours later across a daylight-saving change; window and grace are absolute
  durations added to the UTC opening instant.
- A local time that does not exist (spring-forward gap, e.g. Europe/London 2026-03-29 01:30) opens at the
  first valid instant after the gap: the transition itself (02:00 BST = 01:00Z).
- A local time that exists twice (autumn fold, e.g. Europe/London 2026-10-25 01:30) opens at its first
  occurrence (fold=0: 01:30 BST = 00:30Z).
- Each occurrence is one (schedule key, study day) pair, so every local date fires exactly once.
- Events that open "on_anchor" open at the anchor instant (consent → baseline) plus N days.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from trialsite.protocol.schema import ScheduleEvent, parse_duration


def _exists(local: datetime) -> bool:
    return local.astimezone(UTC).astimezone(local.tzinfo).replace(tzinfo=None) == local.replace(tzinfo=None)


@lru_cache(maxsize=65536)
def local_to_utc(day: date, at: time, zone: ZoneInfo) -> datetime:
    """The UTC instant of a local wall-clock time on a local date, by the rules above (pure, so cached: every
    participant of a site shares the same dates and times)."""
    local = datetime.combine(day, at.replace(tzinfo=None), tzinfo=zone).replace(fold=0)
    if _exists(local):
        return local.astimezone(UTC)  # fold=0: the first of two occurrences in a fold
    # In a gap: fold=1 applies the offset after the change (earlier instant), fold=0 the offset before it
    # (later instant); the transition lies between them. Find it to the second by bisection.
    lo = local.replace(fold=1).astimezone(UTC)
    hi = local.replace(fold=0).astimezone(UTC)
    if lo > hi:
        lo, hi = hi, lo
    after = hi.astimezone(zone).utcoffset()
    while hi - lo > timedelta(seconds=1):
        mid = lo + (hi - lo) / 2
        if mid.astimezone(zone).utcoffset() == after:
            hi = mid
        else:
            lo = mid
    return hi.replace(microsecond=0)


@dataclass(frozen=True)
class Occurrence:
    schedule_key: str
    instrument: str
    study_day: int
    timezone: str
    local_date: date
    local_time: time | None
    opens_at: datetime
    closes_at: datetime
    grace_until: datetime


def plan_event(*, event: ScheduleEvent, anchor_at: datetime, anchor_date: date, zone_name: str) -> list[Occurrence]:
    """All occurrences of one schedule event from its anchor (instant and local date)."""
    zone = ZoneInfo(zone_name)
    window = parse_duration(event.window)
    grace = parse_duration(event.grace)
    out = []
    for n in event.day_list():
        if event.open == "on_anchor":
            local_anchor = anchor_at.astimezone(zone)
            local_date = local_anchor.date() + timedelta(days=n)
            local_time = None
            opens = local_to_utc(local_date, local_anchor.time().replace(microsecond=0), zone) if n else anchor_at
        else:
            local_date = anchor_date + timedelta(days=n)
            local_time = event.time
            opens = local_to_utc(local_date, event.time, zone)
        opens = opens.astimezone(UTC)
        closes = opens + window
        out.append(
            Occurrence(
                schedule_key=event.key,
                instrument=event.instrument,
                study_day=n,
                timezone=zone_name,
                local_date=local_date,
                local_time=local_time,
                opens_at=opens,
                closes_at=closes,
                grace_until=closes + grace,
            )
        )
    return out


def plan_after_dose(
    *, schedule, taken_at: datetime, study_day: int | None, zone_name: str, withdrawn: bool, now: datetime
) -> list[tuple[ScheduleEvent, Occurrence]]:
    """The `after_dose` occurrences a dose opens when it is logged at `now` (pure: surveys.services.kits's
    `dose_instances_open` writes them, the simulator plans with it). Each after_dose entry of the schedule opens
    `minutes` after the dose was taken, for `window_minutes` (no grace), on the dose's study day. Nothing opens
    for a dose logged after a withdrawal or outside the study days (no study day), and an occurrence whose window
    had already closed when the dose was logged (a dose logged late) is not opened."""
    if withdrawn or study_day is None:
        return []
    out = []
    for event in schedule:
        if event.after_dose is None:
            continue
        opens = taken_at + timedelta(minutes=event.after_dose.minutes)
        closes = opens + timedelta(minutes=event.after_dose.window_minutes)
        if closes <= now:
            continue
        local = opens.astimezone(ZoneInfo(zone_name))
        occurrence = Occurrence(
            schedule_key=event.key,
            instrument=event.instrument,
            study_day=study_day,
            timezone=zone_name,
            local_date=local.date(),
            local_time=local.time().replace(second=0, microsecond=0, tzinfo=None),
            opens_at=opens,
            closes_at=closes,
            grace_until=closes,
        )
        out.append((event, occurrence))
    return out
