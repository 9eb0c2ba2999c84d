"""Quiet hours in the participant's own zone, across midnight and daylight-saving changes.

Local wall-clock times are turned into instants by the one DST rule, `surveys.scheduling.local_to_utc`
(a repeated local time means its first occurrence; a non-existent one the first valid instant after the gap).
Either way each quiet period ends exactly once.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from surveys.scheduling import local_to_utc


def in_quiet_hours(*, now: datetime, zone: ZoneInfo, start: time | None, end: time | None) -> bool:
    return quiet_until(now=now, zone=zone, start=start, end=end) is not None


def quiet_until(*, now: datetime, zone: ZoneInfo, start: time | None, end: time | None) -> datetime | None:
    """When the quiet period containing `now` ends (UTC), or None when `now` is not in quiet hours.

    `start` > `end` means the period runs across midnight (22:00–07:30). Equal or missing: no quiet hours.
    """
    if start is None or end is None or start == end:
        return None
    local = now.astimezone(zone)
    wall = local.time().replace(tzinfo=None)
    if start < end:
        if not (start <= wall < end):
            return None
        end_day = local.date()
    else:
        if wall >= start:
            end_day = local.date() + timedelta(days=1)
        elif wall < end:
            end_day = local.date()
        else:
            return None
    until = local_to_utc(end_day, end, zone)
    # A gap can shift the end before `now` only in pathological zones; never defer into the past.
    return until if until > now else None
