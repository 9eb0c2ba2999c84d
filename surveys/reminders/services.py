"""Writes of the reminder machinery: plan due stages, claim work, the send state machine, missed surveys,
coordinator tasks. Every function takes `now=` so tests inject the clock.

Reminder state machine (surveys.models.Reminder.status, guarded by row locks and `reminder_once_per_stage`):

    pending ──claim (sweep)──▶ queued ──prepare (worker, under lock)──▶ [ReminderDelivery 'sending' committed]
       ▲                          │                                           │ channel.send(key=reminder.uuid)
       └── deferred (quiet hours) ┤                                           ▼
                                  ├──▶ skipped (answered, window closed, superseded, quiet hours, no contact)
                                  ├──▶ cancelled (withdrawn, instance cancelled)
                                  └──▶ sent / failed (with the error, after the retries)
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from participants.models import Participant, ParticipantStatus, WithdrawalScope
from trialsite.outbox import outbox_enqueue_many
from trialsite.protocol.schema import Protocol, parse_duration
from trialsite.protocol.services import protocol_of_version

from ..models import (
    CoordinatorTask,
    CoordinatorTaskKind,
    CoordinatorTaskStatus,
    InstanceStatus,
    Reminder,
    ReminderDelivery,
    ReminderDeliveryState,
    ReminderStatus,
    Response,
    SurveyInstance,
)
from ..selectors import missed_in_a_row_at
from ..services.kits import KIT_CODE_MISSING_CHECK, kit_missing_checks
from .channels import address_for, channel_get
from .quiet import quiet_until

log = logging.getLogger(__name__)

BATCH = 500
MISSED_STREAK_CHECK = "surveys.missed_streak_check"
TERMINAL = {ReminderStatus.SENT, ReminderStatus.SKIPPED, ReminderStatus.FAILED, ReminderStatus.CANCELLED}


def _seconds(name: str, default: float) -> timedelta:
    import os

    return timedelta(seconds=float(getattr(settings, name, None) or os.environ.get(name) or default))


def requeue_after() -> timedelta:
    """A `queued` row older than this lost its message (e.g. Redis lost its data): publish it again."""
    return _seconds("REMINDER_REQUEUE_AFTER", 10 * 60)


def claim_stale_after() -> timedelta:
    """A 'sending' claim older than this belongs to a worker that died (send tasks time out after 60 s)."""
    return _seconds("REMINDER_CLAIM_STALE_AFTER", 5 * 60)


def protocol_of(instance: SurveyInstance) -> Protocol:
    return protocol_of_version(instance.protocol_version_id)


def _withdrawn_q(prefix: str = "participant__") -> Q:
    return Q(**{f"{prefix}status": ParticipantStatus.WITHDRAWN, f"{prefix}withdrawal_scope": WithdrawalScope.ALL})


def stage_times(protocol: Protocol, instance: SurveyInstance) -> list[tuple[str, datetime]]:
    """(stage key, due instant) of every protocol stage that falls inside the instance's window, in order."""
    out = []
    for stage in protocol.reminders.stages:
        anchor = instance.opens_at if stage.at == "open" else instance.closes_at
        due = anchor + parse_duration(stage.offset)
        if instance.opens_at <= due < instance.closes_at:
            out.append((stage.key, due))
    return sorted(out, key=lambda kv: kv[1])


# --- Sweep: create due reminder rows -------------------------------------------------------------------------


def reminders_plan_due(*, now: datetime | None = None) -> int:
    """Create the Reminder rows of stages that came due (idempotent: ON CONFLICT DO NOTHING on the stage key).

    Only for instances that are open now, still scheduled, unanswered, of a participant who has not withdrawn.
    Queries: 2 + one select and one insert per (protocol version, stage) and per 2,000 rows — never per row.
    """
    now = now or timezone.now()
    open_now = SurveyInstance.objects.filter(status=InstanceStatus.SCHEDULED, opens_at__lte=now, closes_at__gt=now)
    version_ids = sorted(set(open_now.order_by().values_list("protocol_version_id", flat=True).distinct()))
    created = 0
    for version_id in version_ids:
        protocol = protocol_of_version(version_id)
        for stage in protocol.reminders.stages:
            offset = parse_duration(stage.offset)
            anchor = "opens_at" if stage.at == "open" else "closes_at"
            candidates = (
                open_now.filter(protocol_version_id=version_id, **{f"{anchor}__lte": now - offset})
                .exclude(_withdrawn_q())
                .exclude(Exists(Reminder.objects.filter(instance=OuterRef("pk"), stage=stage.key)))
                .exclude(Exists(Response.objects.filter(instance=OuterRef("pk"))))
                .values_list("pk", "opens_at", "closes_at")
            )
            rows = []
            for pk, opens_at, closes_at in list(candidates):
                due = (opens_at if stage.at == "open" else closes_at) + offset
                if opens_at <= due < closes_at:
                    rows.append(Reminder(instance_id=pk, stage=stage.key, due_at=due))
            if rows:
                Reminder.objects.bulk_create(rows, batch_size=2000, ignore_conflicts=True)
                created += len(rows)
    return created


# --- Sweep: claim due rows and fan out -----------------------------------------------------------------------


def reminders_claim_due(*, now: datetime | None = None, limit: int = BATCH) -> list[int]:
    """Claim up to `limit` due reminders (pending and due, or queued too long ago) and mark them queued.

    Call inside a transaction and publish the ids after commit (see `reminders_claim_and_publish`).
    Two sweeps at once never claim the same row: SKIP LOCKED, then the status changes before the commit.
    """
    now = now or timezone.now()
    due = Q(status=ReminderStatus.PENDING, due_at__lte=now) | Q(
        status=ReminderStatus.QUEUED, queued_at__lte=now - requeue_after()
    )
    ids = list(
        Reminder.objects.select_for_update(skip_locked=True)
        .filter(due)
        .order_by("due_at", "pk")
        .values_list("pk", flat=True)[:limit]
    )
    if ids:
        Reminder.objects.filter(pk__in=ids).update(status=ReminderStatus.QUEUED, queued_at=now)
    return ids


def reminders_unqueue(*, ids: list[int], queued_at: datetime) -> int:
    """Publishing failed (broker down): put the rows back so the next sweep claims them again."""
    return Reminder.objects.filter(pk__in=ids, status=ReminderStatus.QUEUED, queued_at=queued_at).update(
        status=ReminderStatus.PENDING, queued_at=None
    )


def reminders_claim_and_publish(*, publish, now: datetime | None = None, batch: int = BATCH, max_batches: int = 1000):
    """Claim due reminders batch by batch, each in its own short transaction; `publish(ids)` runs on commit.

    Returns the number of reminders claimed. `publish` raising means the broker is unreachable: those rows go
    back to pending and the sweep stops (the next one retries).
    """
    now = now or timezone.now()
    total = 0
    for _ in range(max_batches):
        failed: list[Exception] = []
        with transaction.atomic():
            ids = reminders_claim_due(now=now, limit=batch)
            if not ids:
                break

            def on_commit(ids=ids, failed=failed):
                try:
                    publish(ids)
                except Exception as exc:  # noqa: BLE001 - any broker error: undo the claim, try next sweep
                    log.warning("publishing %d reminders failed: %s", len(ids), exc)
                    reminders_unqueue(ids=ids, queued_at=now)
                    failed.append(exc)

            transaction.on_commit(on_commit)
        if failed:
            break
        total += len(ids)
        if len(ids) < batch:
            break
    return total


# --- The send state machine ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SendPlan:
    action: str  # "send" or the outcome when there is nothing to send
    reminder_id: int
    channel: str = ""
    to: str = ""
    subject: str = ""
    body: str = ""
    key: str = ""


class _SafeDict(dict):
    def __missing__(self, key):
        return "{" + key + "}"


def closes_local(closes_at: datetime, zone: ZoneInfo) -> str:
    local = closes_at.astimezone(zone)
    return f"{local:%H:%M} on {local:%a} {local.day} {local:%b} ({local.tzname()})"


def reminder_message(*, protocol: Protocol, instance: SurveyInstance, zone: ZoneInfo) -> tuple[str, str]:
    """Subject and body from the protocol's `reminders.message`; only `{closes_local}` is filled in."""
    values = _SafeDict(closes_local=closes_local(instance.closes_at, zone))
    message = protocol.reminders.message
    return message.subject.format_map(values), message.body.format_map(values)


def _finish(reminder: Reminder, status: str, reason: str, *, now: datetime) -> SendPlan:
    reminder.status = status
    reminder.skip_reason = reason[:64]
    reminder.save(update_fields=["status", "skip_reason"])
    return SendPlan(action=f"{status}:{reason}", reminder_id=reminder.pk)


def _quiet_hours(protocol: Protocol, participant: Participant):
    if participant.quiet_hours_start is not None and participant.quiet_hours_end is not None:
        return participant.quiet_hours_start, participant.quiet_hours_end
    quiet = protocol.reminders.quiet_hours
    return (quiet.start, quiet.end) if quiet else (None, None)


@transaction.atomic
def reminder_send_prepare(*, reminder_id: int, now: datetime | None = None) -> SendPlan:
    """Re-check a reminder under lock and, when it should go out, commit the 'sending' claim.

    Locks the instance, then the reminder (the order survey services use), so an answer being stored at the
    same moment is either seen here or comes after the claim.
    """
    now = now or timezone.now()
    instance_id = Reminder.objects.values_list("instance_id", flat=True).get(pk=reminder_id)
    instance = SurveyInstance.objects.select_for_update(of=("self",)).select_related("participant").get(pk=instance_id)
    reminder = Reminder.objects.select_for_update().get(pk=reminder_id)
    if reminder.status in TERMINAL:
        return SendPlan(action=f"already {reminder.status}", reminder_id=reminder.pk)
    if reminder.due_at > now:
        return SendPlan(action="not due", reminder_id=reminder.pk)
    participant = instance.participant
    if participant.is_withdrawn:
        return _finish(reminder, ReminderStatus.CANCELLED, "withdrawn", now=now)
    if instance.status == InstanceStatus.CANCELLED:
        return _finish(reminder, ReminderStatus.CANCELLED, "instance_cancelled", now=now)
    if instance.status == InstanceStatus.COMPLETED or Response.objects.filter(instance=instance).exists():
        return _finish(reminder, ReminderStatus.SKIPPED, "answered", now=now)
    if instance.status == InstanceStatus.MISSED or now >= instance.closes_at:
        return _finish(reminder, ReminderStatus.SKIPPED, "window_closed", now=now)

    protocol = protocol_of(instance)
    times = dict(stage_times(protocol, instance))
    mine = times.get(reminder.stage)
    if mine is not None and any(mine < t <= now for t in times.values()):
        return _finish(reminder, ReminderStatus.SKIPPED, "superseded", now=now)

    zone = participant.zone
    start, end = _quiet_hours(protocol, participant)
    until = quiet_until(now=now, zone=zone, start=start, end=end)
    if until is not None:
        if until < instance.closes_at:
            reminder.status = ReminderStatus.PENDING
            reminder.due_at = until
            reminder.queued_at = None
            reminder.skip_reason = "deferred_quiet_hours"
            reminder.save(update_fields=["status", "due_at", "queued_at", "skip_reason"])
            return SendPlan(action="deferred", reminder_id=reminder.pk)
        return _finish(reminder, ReminderStatus.SKIPPED, "quiet_hours", now=now)

    delivery = ReminderDelivery.objects.select_for_update().filter(reminder=reminder).first()
    if delivery is not None and delivery.state == ReminderDeliveryState.SENDING:
        if delivery.claimed_at > now - claim_stale_after():
            return SendPlan(action="in progress elsewhere", reminder_id=reminder.pk)
        # The worker that claimed it died mid-send: the provider may have the message.
        if not channel_get(delivery.channel).idempotent:
            delivery.state = ReminderDeliveryState.FAILED
            delivery.finished_at = now
            delivery.error = "interrupted mid-send; outcome unknown, not re-sent to avoid a duplicate"
            delivery.save(update_fields=["state", "finished_at", "error"])
            reminder.status = ReminderStatus.FAILED
            reminder.last_error = delivery.error
            reminder.save(update_fields=["status", "last_error"])
            return SendPlan(action="failed:interrupted", reminder_id=reminder.pk)
    if delivery is not None and delivery.state in (ReminderDeliveryState.SENT, ReminderDeliveryState.FAILED):
        return SendPlan(action=f"already {delivery.state}", reminder_id=reminder.pk)

    if delivery is None:
        address = address_for(participant, list(protocol.reminders.channels))
        if address is None:
            return _finish(reminder, ReminderStatus.SKIPPED, "no_contact", now=now)
        delivery = ReminderDelivery(
            reminder=reminder, channel=address.channel, idempotency_key=reminder.uuid, claimed_at=now, attempts=1
        )
        delivery.full_clean()
        delivery.save()
        to = address.to
    else:
        # A retry after an error, or a stale claim on an idempotent channel: same channel, same key.
        address = address_for(participant, [delivery.channel])
        if address is None:
            return _finish(reminder, ReminderStatus.SKIPPED, "no_contact", now=now)
        to = address.to
        delivery.state = ReminderDeliveryState.SENDING
        delivery.attempts += 1
        delivery.claimed_at = now
        delivery.save(update_fields=["state", "attempts", "claimed_at"])
    reminder.channel = delivery.channel
    reminder.attempts = delivery.attempts
    reminder.save(update_fields=["channel", "attempts"])
    subject, body = reminder_message(protocol=protocol, instance=instance, zone=zone)
    return SendPlan(
        action="send",
        reminder_id=reminder.pk,
        channel=delivery.channel,
        to=to,
        subject=subject,
        body=body,
        key=str(reminder.uuid),
    )


@transaction.atomic
def reminder_send_record(*, reminder_id: int, provider_id: str, now: datetime | None = None) -> Reminder:
    """The channel accepted the message: sent (the truth wins over any state a racing task wrote)."""
    now = now or timezone.now()
    reminder = Reminder.objects.select_for_update().get(pk=reminder_id)
    ReminderDelivery.objects.filter(reminder=reminder).update(
        state=ReminderDeliveryState.SENT, provider_id=provider_id[:128], finished_at=now, error=""
    )
    reminder.status = ReminderStatus.SENT
    reminder.sent_at = now
    reminder.provider_id = provider_id[:128]
    reminder.last_error = ""
    reminder.save(update_fields=["status", "sent_at", "provider_id", "last_error"])
    return reminder


@transaction.atomic
def reminder_send_error(*, reminder_id: int, error: str, final: bool, now: datetime | None = None) -> Reminder:
    """The channel raised: record the error; `final` (retries exhausted or permanent) marks it failed."""
    now = now or timezone.now()
    reminder = Reminder.objects.select_for_update().get(pk=reminder_id)
    ReminderDelivery.objects.filter(reminder=reminder).exclude(state=ReminderDeliveryState.SENT).update(
        state=ReminderDeliveryState.FAILED if final else ReminderDeliveryState.ERROR,
        error=error,
        finished_at=now if final else None,
    )
    reminder.last_error = error
    fields = ["last_error"]
    if final and reminder.status != ReminderStatus.SENT:
        reminder.status = ReminderStatus.FAILED
        fields.append("status")
    reminder.save(update_fields=fields)
    return reminder


@transaction.atomic
def reminders_cancel_for_participant(*, participant: Participant, reason: str = "withdrawn") -> int:
    """Cancel every reminder not yet handed to a worker (call from the withdrawal workflow)."""
    return Reminder.objects.filter(
        instance__participant=participant, status__in=[ReminderStatus.PENDING, ReminderStatus.QUEUED]
    ).update(status=ReminderStatus.CANCELLED, skip_reason=reason[:64])


def reminders_cancel_withdrawn(*, now: datetime | None = None) -> int:
    """Sweep: pending rows of participants who withdrew from all contact are cancelled (one UPDATE)."""
    return (
        Reminder.objects.filter(status=ReminderStatus.PENDING)
        .filter(_withdrawn_q("instance__participant__"))
        .update(status=ReminderStatus.CANCELLED, skip_reason="withdrawn")
    )


# --- Missed surveys and coordinator tasks --------------------------------------------------------------------


def instances_mark_missed(*, now: datetime | None = None, limit: int = BATCH) -> list[tuple[int, int]]:
    """Mark one batch of unanswered instances whose window (incl. grace) closed as missed.

    Returns (instance id, protocol version id) of the instances marked. Short transaction, SKIP LOCKED.
    """
    now = now or timezone.now()
    with transaction.atomic():
        rows = list(
            SurveyInstance.objects.select_for_update(skip_locked=True)
            .filter(status=InstanceStatus.SCHEDULED, grace_until__lte=now)
            .exclude(Exists(Response.objects.filter(instance=OuterRef("pk"))))
            .order_by("grace_until", "pk")
            .values_list("pk", "protocol_version_id")[:limit]
        )
        ids = [pk for pk, _ in rows]
        if ids:
            SurveyInstance.objects.filter(pk__in=ids).update(status=InstanceStatus.MISSED)
            Reminder.objects.filter(instance_id__in=ids, status=ReminderStatus.PENDING).update(
                status=ReminderStatus.SKIPPED, skip_reason="window_closed"
            )
            # The "N missed in a row" check of each instance of a rule's instrument is recorded with the change
            # (the outbox), so a lost message or a broker outage never loses a coordinator task.
            rules = missed_rule_instruments(v for _, v in rows)
            checks = [pk for pk, v in rows if v in rules]
            if checks:
                outbox_enqueue_many(
                    kind=MISSED_STREAK_CHECK,
                    items=[(f"missed_streak_check:{pk}", {"instance_id": pk}) for pk in checks],
                    now=now,
                )
            if kit_checks := kit_missing_checks(rows, protocol_of_version):  # self-blinding: envelope missing?
                outbox_enqueue_many(kind=KIT_CODE_MISSING_CHECK, items=kit_checks, now=now)
    return rows


def missed_streak_check_run(payload: dict) -> None:
    """Outbox handler: the streak check of one missed instance (idempotent: get_or_create on a unique key)."""
    coordinator_task_raise_for_missed(instance_id=payload["instance_id"])


def missed_rule_instruments(version_ids) -> dict[int, str]:
    """protocol version id → the instrument slug whose misses in a row raise a coordinator task."""
    out = {}
    for version_id in set(version_ids):
        rule = protocol_of_version(version_id).reminders.missed_in_a_row
        if rule is not None:
            out[version_id] = rule.instrument
    return out


@transaction.atomic
def coordinator_task_raise_for_missed(*, instance_id: int, now: datetime | None = None) -> CoordinatorTask | None:
    """Raise 'N missed in a row' when this missed instance makes the participant's streak exactly N.

    Exactly N (not ≥ N): a longer streak raised its task when it reached N; an answer ends the streak and the
    next N misses raise a new task. The unique constraint makes a repeated check harmless.
    """
    now = now or timezone.now()
    instance = SurveyInstance.objects.select_related("instrument", "participant").get(pk=instance_id)
    rule = protocol_of(instance).reminders.missed_in_a_row
    if rule is None or instance.instrument.slug != rule.instrument or instance.status != InstanceStatus.MISSED:
        return None
    streak = missed_in_a_row_at(
        participant_id=instance.participant_id, instrument=rule.instrument, upto=instance.opens_at, now=now
    )
    if streak != rule.count:
        return None
    task, _ = CoordinatorTask.objects.get_or_create(
        participant_id=instance.participant_id,
        kind=CoordinatorTaskKind.MISSED_IN_A_ROW,
        trigger_instance=instance,
        defaults={
            "title": f"{instance.participant.study_id} missed {rule.count} {rule.instrument} surveys in a row",
            "details": {
                "instrument": rule.instrument,
                "count": rule.count,
                "last_closed_at": instance.closes_at.isoformat(),
            },
            "created_at": now,
        },
    )
    return task


@transaction.atomic
def coordinator_task_resolve(*, task_id: int, user, note: str, now: datetime | None = None) -> CoordinatorTask:
    """Close a coordinator task with what was done (e.g. "called, phone was broken, re-enrolled")."""
    from trialsite.audit import require_reason

    task = CoordinatorTask.objects.select_for_update().get(pk=task_id)
    if task.status == CoordinatorTaskStatus.DONE:
        return task
    task.resolution_note = require_reason(note, field="resolution_note")
    task.status = CoordinatorTaskStatus.DONE
    task.resolved_at = now or timezone.now()
    task.resolved_by = user
    task.full_clean()
    task.save(update_fields=["resolution_note", "status", "resolved_at", "resolved_by"])
    return task
