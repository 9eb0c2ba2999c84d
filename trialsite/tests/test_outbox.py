"""The transactional outbox (trialsite.outbox): recorded once, delivered once per claim, retried with backoff,
failed after the last attempt, stale claims retried, sweeps that never publish the same message twice at once."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.db import IntegrityError, transaction
from django.test import override_settings

from trialsite import outbox
from trialsite.models import OutboxMessage, OutboxStatus

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
calls: list[dict] = []
failures: list[Exception] = []


def _probe(payload: dict) -> None:
    if failures:
        raise failures.pop(0)
    calls.append(payload)


outbox.register("tests.probe", _probe)


@pytest.fixture(autouse=True)
def _reset():
    calls.clear()
    failures.clear()
    yield


@pytest.fixture
def queue():
    name = f"test-outbox-{uuid.uuid4().hex[:10]}"
    with override_settings(OUTBOX_QUEUE=name):
        yield name
    from trialsite.celery import app

    with app.connection_for_read() as conn:
        conn.default_channel.client.delete(name)


def queue_length(name: str) -> int:
    from trialsite.celery import app

    with app.connection_for_read() as conn:
        return conn.default_channel.client.llen(name)


def enqueue(key: str = "k1", **payload) -> bool:
    return outbox.outbox_enqueue(kind="tests.probe", dedupe_key=key, payload=payload or {"n": 1}, now=NOW)


@pytest.mark.django_db
def test_recorded_once_per_key_and_published_after_commit(django_capture_on_commit_callbacks, queue):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        assert enqueue("k1") is True
        assert enqueue("k1") is False  # the same effect recorded again: nothing new
    assert len(callbacks) == 1
    assert OutboxMessage.objects.filter(dedupe_key="k1").count() == 1
    assert queue_length(queue) == 1
    with pytest.raises(ValueError, match="no outbox handler"):
        outbox.outbox_enqueue(kind="tests.unknown", dedupe_key="x", payload={})
    with pytest.raises(IntegrityError), transaction.atomic():
        OutboxMessage.objects.create(kind="tests.probe", dedupe_key="k1")


@pytest.mark.django_db
def test_delivered_once_then_a_redelivery_does_nothing():
    enqueue("k1", n=7)
    msg = OutboxMessage.objects.get()
    assert outbox.outbox_deliver(message_id=msg.pk, now=NOW) == "sent"
    assert outbox.outbox_deliver(message_id=msg.pk, now=NOW) == "already sent"
    assert calls == [{"n": 7}]
    msg.refresh_from_db()
    assert (msg.status, msg.attempts, msg.sent_at, msg.claimed_at) == (OutboxStatus.SENT, 1, NOW, None)


@pytest.mark.django_db
@override_settings(OUTBOX_MAX_ATTEMPTS=3, OUTBOX_BACKOFF_SECONDS=10, OUTBOX_BACKOFF_MAX=1000)
def test_failures_back_off_with_jitter_then_fail_visibly():
    enqueue("k1")
    pk = OutboxMessage.objects.get().pk
    failures.extend([ConnectionRefusedError("smtp down")] * 3)
    at = NOW
    for attempt, delay in ((1, 10), (2, 20)):
        assert outbox.outbox_deliver(message_id=pk, now=at) == "retry"
        msg = OutboxMessage.objects.get(pk=pk)
        assert msg.attempts == attempt and msg.status == OutboxStatus.PENDING and msg.claimed_at is None
        assert "smtp down" in msg.last_error
        assert at + timedelta(seconds=delay / 2) <= msg.next_attempt_at <= at + timedelta(seconds=delay)
        at = msg.next_attempt_at
    assert outbox.outbox_deliver(message_id=pk, now=at) == "failed"
    msg = OutboxMessage.objects.get(pk=pk)
    assert (msg.status, msg.attempts) == (OutboxStatus.FAILED, 3)
    assert outbox.outbox_sweep(now=at + timedelta(days=1)) == 0  # a failed message waits for a person
    assert calls == []


@pytest.mark.django_db
@override_settings(OUTBOX_REPUBLISH_AFTER=60, OUTBOX_CLAIM_STALE_AFTER=300)
def test_sweep_republishes_due_messages_once_and_retries_stale_claims(queue):
    enqueue("k1")
    enqueue("k2")
    first, second = OutboxMessage.objects.order_by("pk")
    # Published on commit: not due for the sweep until republish_after has passed without a delivery.
    assert outbox.outbox_sweep(now=NOW + timedelta(seconds=30)) == 0
    assert outbox.outbox_sweep(now=NOW + timedelta(seconds=61)) == 2
    assert outbox.outbox_sweep(now=NOW + timedelta(seconds=62)) == 0  # a second beat finds them taken
    assert queue_length(queue) == 2
    # A worker claimed `first` and died mid-delivery; `second` is being delivered right now.
    OutboxMessage.objects.filter(pk=first.pk).update(claimed_at=NOW, next_attempt_at=NOW)
    OutboxMessage.objects.filter(pk=second.pk).update(claimed_at=NOW + timedelta(seconds=200), next_attempt_at=NOW)
    assert outbox.outbox_deliver(message_id=second.pk, now=NOW + timedelta(seconds=250)) == "in progress elsewhere"
    assert outbox.outbox_sweep(now=NOW + timedelta(seconds=250)) == 0
    assert outbox.outbox_sweep(now=NOW + timedelta(seconds=301)) == 1  # only the stale claim
    assert outbox.outbox_deliver(message_id=first.pk, now=NOW + timedelta(seconds=301)) == "sent"
    assert OutboxMessage.objects.get(pk=first.pk).attempts == 1
    assert calls == [{"n": 1}]


@pytest.mark.django_db
def test_publishing_to_an_unreachable_broker_never_raises_and_makes_the_message_due():
    """The bounded publish: a refused connection is logged, the message is due for the very next sweep."""
    import time

    from celery import Celery

    from trialsite.celery import app
    from trialsite.localstack import free_port

    enqueue("k1")
    pk = OutboxMessage.objects.get().pk
    dead = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    other = Celery("dead", set_as_current=False)
    other.config_from_object("django.conf:settings", namespace="CELERY")
    other.conf.broker_url = dead
    started = time.monotonic()
    other.set_current()
    try:
        assert outbox.publish([pk]) is False
    finally:
        app.set_current()
    assert time.monotonic() - started < 5
    assert OutboxMessage.objects.get(pk=pk).next_attempt_at <= datetime.now(UTC)
