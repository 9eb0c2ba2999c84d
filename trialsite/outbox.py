"""The transactional outbox: effects outside PostgreSQL (e-mail, anything sent over the network) survive outages.

    the change + outbox_enqueue()  ── one transaction ──▶  OutboxMessage(pending)
        on commit: publish(ids) — best effort, bounded, never raises into the request
    beat → outbox_sweep(): pending and due (next_attempt_at ≤ now, no live claim) → publish again
    worker → outbox_deliver(): claim under a short row lock (claimed_at, attempts+1), release the lock,
        run the handler (network I/O), then mark sent — or record the error and back off — in a short transaction

Publishing twice is harmless: delivery re-checks the status and the claim under the row lock. A worker killed
after the handler ran but before "sent" committed leaves a stale claim; it is retried (at least once: for a
safety notice a duplicate is better than silence). After OUTBOX_MAX_ATTEMPTS failed attempts the message is
`failed` (visible, read-only, in the admin).

Handlers are registered per kind by the apps in their AppConfig.ready() (the spine imports no app):
`outbox.register("participants.safety_alert_notify", handler)`. A handler takes the payload (a JSON dict),
runs outside any transaction, and raises on failure.
"""

from __future__ import annotations

import logging
import os
import random
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from .models import OutboxMessage, OutboxStatus

log = logging.getLogger(__name__)

DELIVER_TASK = "trialsite.outbox.deliver"
SWEEP_TASK = "trialsite.outbox.sweep"
MAIL = "trialsite.mail"

Handler = Callable[[dict], object]
_handlers: dict[str, Handler] = {}


def register(kind: str, handler: Handler) -> None:
    """Register the handler of one kind of message (call from AppConfig.ready())."""
    existing = _handlers.get(kind)
    if existing is not None and existing is not handler:
        raise ValueError(f"outbox kind {kind!r} already has a handler")
    _handlers[kind] = handler


def _number(name: str, default: float) -> float:
    value = getattr(settings, name, None)
    if value is None:
        value = os.environ.get(name) or default
    return float(value)


def max_attempts() -> int:
    return int(_number("OUTBOX_MAX_ATTEMPTS", 8))


def republish_after() -> timedelta:
    """A pending message not delivered this long after its last publish lost its message: publish it again."""
    return timedelta(seconds=_number("OUTBOX_REPUBLISH_AFTER", 60))


def claim_stale_after() -> timedelta:
    """A claim older than this belongs to a worker that died mid-delivery (the task times out after 60 s)."""
    return timedelta(seconds=_number("OUTBOX_CLAIM_STALE_AFTER", 300))


def backoff(attempts: int) -> timedelta:
    """Exponential backoff with jitter after the n-th failed attempt: base·2^(n-1), capped, in [d/2, d]."""
    base = _number("OUTBOX_BACKOFF_SECONDS", 30)
    cap = _number("OUTBOX_BACKOFF_MAX", 3600)
    delay = min(cap, base * 2 ** max(0, attempts - 1))
    return timedelta(seconds=delay / 2 + random.uniform(0, delay / 2))


def queue() -> str | None:
    """The queue deliveries go to: OUTBOX_QUEUE, else REMINDER_QUEUE, else Celery's default queue."""
    for name in ("OUTBOX_QUEUE", "REMINDER_QUEUE"):
        value = getattr(settings, name, None) or os.environ.get(name)
        if value:
            return value
    return None


# --- Recording --------------------------------------------------------------------------------------------


@transaction.atomic
def outbox_enqueue(*, kind: str, dedupe_key: str, payload: dict, trial=None, now: datetime | None = None) -> bool:
    """Record one effect in the caller's transaction; publish it after commit. Returns False when the same
    `dedupe_key` was recorded before (nothing new: the effect happens once). `trial`: the trial it is about."""
    return outbox_enqueue_many(kind=kind, items=[(dedupe_key, payload)], trial=trial, now=now) == 1


@transaction.atomic
def outbox_enqueue_many(
    *, kind: str, items: Iterable[tuple[str, dict]], trial=None, now: datetime | None = None
) -> int:
    """Record many effects of one kind (one INSERT … ON CONFLICT DO NOTHING); publish the new ones after commit."""
    if kind not in _handlers:
        raise ValueError(f"no outbox handler registered for {kind!r}")
    now = now or timezone.now()
    rows = [
        OutboxMessage(
            kind=kind,
            dedupe_key=key[:200],
            payload=payload,
            trial_id=getattr(trial, "pk", trial),
            created_at=now,
            next_attempt_at=now + republish_after(),
        )
        for key, payload in items
    ]
    if not rows:
        return 0
    keys = [r.dedupe_key for r in rows]
    existing = set(OutboxMessage.objects.filter(dedupe_key__in=keys).values_list("dedupe_key", flat=True))
    OutboxMessage.objects.bulk_create([r for r in rows if r.dedupe_key not in existing], ignore_conflicts=True)
    new_keys = [k for k in keys if k not in existing]
    ids = list(OutboxMessage.objects.filter(dedupe_key__in=new_keys, created_at=now).values_list("pk", flat=True))
    if ids:
        transaction.on_commit(lambda: publish(ids))
    return len(ids)


def mail_enqueue(
    *, dedupe_key: str, subject: str, body: str, to: list[str], trial=None, now: datetime | None = None
) -> bool:
    """Record an e-mail to send (by a worker, never in the request). Nothing is recorded without recipients."""
    if not to:
        return False
    payload = {"subject": subject, "body": body, "to": sorted(to)}
    return outbox_enqueue(kind=MAIL, dedupe_key=dedupe_key, payload=payload, trial=trial, now=now)


def _send_mail(payload: dict) -> None:
    from django.core.mail import EmailMessage

    EmailMessage(
        subject=payload["subject"], body=payload["body"], from_email=settings.DEFAULT_FROM_EMAIL, to=payload["to"]
    ).send(fail_silently=False)


register(MAIL, _send_mail)


# --- Publishing (best effort) -----------------------------------------------------------------------------


def publish(ids: list[int], *, queue_name: str | None = None) -> bool:
    """Publish one delivery task per message. Never raises: the broker may be down or hanging (every broker call
    is bounded by the CELERY_* timeouts in settings); the message then waits for the next sweep."""
    from celery import current_app

    options = {"queue": queue_name or queue()}
    if not options["queue"]:
        options.pop("queue")
    try:
        with current_app.producer_or_acquire() as producer:
            for pk in ids:
                current_app.send_task(DELIVER_TASK, kwargs={"message_id": pk}, producer=producer, **options)
        return True
    except Exception as exc:  # noqa: BLE001 - any broker failure: the sweep re-publishes; never fail the caller
        log.warning(
            "outbox: publishing %d message(s) failed, the sweep will retry: %s: %s", len(ids), type(exc).__name__, exc
        )
        try:
            OutboxMessage.objects.filter(pk__in=ids, status=OutboxStatus.PENDING).update(next_attempt_at=timezone.now())
        except Exception:  # noqa: BLE001 - the database went too: the message still waits for republish_after
            log.warning("outbox: could not mark %d message(s) due again", len(ids), exc_info=True)
        return False


def outbox_sweep(*, now: datetime | None = None, limit: int = 500, queue_name: str | None = None) -> int:
    """Beat: re-publish pending messages that are due and not being delivered right now. Returns how many.

    Claims rows with SKIP LOCKED in a short transaction and pushes their next_attempt_at forward (so two sweeps,
    or two beats, do not both publish them), releases the lock, then publishes.
    """
    now = now or timezone.now()
    stale = now - claim_stale_after()
    with transaction.atomic():
        ids = list(
            OutboxMessage.objects.select_for_update(skip_locked=True)
            .filter(status=OutboxStatus.PENDING, next_attempt_at__lte=now)
            .filter(Q(claimed_at__isnull=True) | Q(claimed_at__lte=stale))
            .order_by("next_attempt_at", "pk")
            .values_list("pk", flat=True)[:limit]
        )
        if ids:
            OutboxMessage.objects.filter(pk__in=ids).update(next_attempt_at=now + republish_after())
    if ids:
        publish(ids, queue_name=queue_name)
    return len(ids)


# --- Delivering (worker) ----------------------------------------------------------------------------------


def outbox_deliver(*, message_id: int, now: datetime | None = None) -> str:
    """Deliver one message at most once per claim. Network I/O happens with no transaction and no lock open."""
    now = now or timezone.now()
    with transaction.atomic():
        msg = OutboxMessage.objects.select_for_update(skip_locked=True).filter(pk=message_id).first()
        if msg is None:
            return "locked by another worker or gone"
        if msg.status != OutboxStatus.PENDING:
            return f"already {msg.status}"
        if msg.claimed_at is not None and msg.claimed_at > now - claim_stale_after():
            return "in progress elsewhere"
        handler = _handlers.get(msg.kind)
        msg.claimed_at = now
        msg.attempts += 1
        msg.save(update_fields=["claimed_at", "attempts"])
        claim = (msg.pk, msg.attempts)
    try:
        if handler is None:
            raise LookupError(f"no handler registered for {msg.kind!r} in this process")
        handler(msg.payload)
    except Exception as exc:  # noqa: BLE001 - every failure is recorded, retried with backoff, then failed
        return _record_failure(claim=claim, error=f"{type(exc).__name__}: {exc}", now=now)
    OutboxMessage.objects.filter(pk=msg.pk, status=OutboxStatus.PENDING).update(
        status=OutboxStatus.SENT, sent_at=now, claimed_at=None, last_error=""
    )
    return "sent"


@transaction.atomic
def _record_failure(*, claim: tuple[int, int], error: str, now: datetime) -> str:
    pk, attempts = claim
    msg = OutboxMessage.objects.select_for_update().get(pk=pk)
    if msg.status != OutboxStatus.PENDING:
        return f"already {msg.status}"
    msg.last_error = error[:2000]
    msg.claimed_at = None
    if msg.attempts >= max_attempts():
        msg.status = OutboxStatus.FAILED
        log.error("outbox: %s %s failed after %d attempts: %s", msg.kind, msg.dedupe_key, msg.attempts, error)
    else:
        msg.next_attempt_at = now + backoff(attempts)
        log.warning("outbox: %s %s attempt %d failed: %s", msg.kind, msg.dedupe_key, attempts, error)
    msg.save(update_fields=["last_error", "claimed_at", "status", "next_attempt_at"])
    return "failed" if msg.status == OutboxStatus.FAILED else "retry"


def outbox_deliver_pending(*, now: datetime | None = None) -> dict[str, int]:
    """Deliver every pending message in this process (tests, `manage.py shell` in an emergency)."""
    out: dict[str, int] = {}
    for pk in OutboxMessage.objects.filter(status=OutboxStatus.PENDING).order_by("pk").values_list("pk", flat=True):
        result = outbox_deliver(message_id=pk, now=now)
        out[result] = out.get(result, 0) + 1
    return out
