"""Reads: the life of every prompt, planned → window opens → reminders (queued/sent/skipped/failed, channel,
provider id) → delivered/opened (phone telemetry) → answered, each instant in UTC and in the participant's zone.

Used by the admin (one instance) and analytics (many at once, constant query count).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from ..models import PromptEvent, Reminder, ReminderDelivery, Response, SurveyInstance

# Order of events that share an instant.
_RANK = {
    "planned": 0,
    "window_opens": 1,
    "pending": 2,
    "queued": 3,
    "sent": 4,
    "skipped": 4,
    "cancelled": 4,
    "failed": 4,
    "delivered": 5,
    "opened": 6,
    "answered": 7,
    "missed": 8,
    "instance_cancelled": 8,
}


@dataclass(frozen=True)
class TimelineEvent:
    kind: str  # planned, window_opens, pending, queued, sent, skipped, cancelled, failed, delivered, opened,
    #            answered, missed, instance_cancelled
    at: datetime  # UTC
    at_local: datetime  # the same instant in the participant's zone
    stage: str = ""
    channel: str = ""
    provider_id: str = ""
    detail: str = ""  # skip reason or error
    extra: dict = field(default_factory=dict)


def _event(kind: str, at: datetime, zone: ZoneInfo, **kw) -> TimelineEvent:
    return TimelineEvent(kind=kind, at=at, at_local=at.astimezone(zone), **kw)


def prompt_timelines(*, instance_ids: list[int]) -> dict[int, list[TimelineEvent]]:
    """instance id → its events in time order. Four queries whatever the number of instances."""
    instances = list(SurveyInstance.objects.filter(pk__in=instance_ids).select_related("participant"))
    reminders = list(Reminder.objects.filter(instance_id__in=instance_ids).order_by("due_at", "pk"))
    deliveries = {d.reminder_id: d for d in ReminderDelivery.objects.filter(reminder__instance_id__in=instance_ids)}
    events = list(PromptEvent.objects.filter(instance_id__in=instance_ids))
    responses = list(
        Response.objects.filter(instance_id__in=instance_ids).only("instance_id", "received_at", "authored_at")
    )
    out: dict[int, list[TimelineEvent]] = {}
    zones: dict[int, ZoneInfo] = {}
    for inst in instances:
        zone = ZoneInfo(inst.participant.timezone)
        zones[inst.pk] = zone
        out[inst.pk] = [_event("planned", inst.created_at, zone), _event("window_opens", inst.opens_at, zone)]
        if inst.status == "missed":
            out[inst.pk].append(_event("missed", inst.grace_until, zone))
        elif inst.status == "cancelled":
            out[inst.pk].append(
                _event("instance_cancelled", inst.cancelled_at or inst.opens_at, zone, detail=inst.cancel_reason)
            )
    for r in reminders:
        zone = zones[r.instance_id]
        d = deliveries.get(r.pk)
        at = {"sent": r.sent_at, "queued": r.queued_at}.get(r.status) or (d and d.finished_at) or r.due_at
        out[r.instance_id].append(
            _event(
                r.status,
                at,
                zone,
                stage=r.stage,
                channel=r.channel,
                provider_id=r.provider_id,
                detail=r.last_error if r.status == "failed" else r.skip_reason,
                extra={"due_at": r.due_at, "attempts": r.attempts},
            )
        )
    for e in events:
        out[e.instance_id].append(_event(e.kind, e.at, zones[e.instance_id], extra={"received_at": e.received_at}))
    for resp in responses:
        out[resp.instance_id].append(
            _event("answered", resp.received_at, zones[resp.instance_id], extra={"authored_at": resp.authored_at})
        )
    for items in out.values():
        items.sort(key=lambda e: (e.at, _RANK.get(e.kind, 9)))
    return out


def prompt_timeline(*, instance: SurveyInstance) -> list[TimelineEvent]:
    return prompt_timelines(instance_ids=[instance.pk]).get(instance.pk, [])
