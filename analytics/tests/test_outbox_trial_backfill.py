"""Migration participants 0016 back-fills `OutboxMessage.trial` of messages recorded before trialsite 0010: each
gets the trial the services record on the same message today; housekeeping checks and messages whose trial cannot
be told stay without one (system admins only). The migration's function runs on real rows (the project has no
migration-test harness; rolling the whole schema back under the shared test database would cost minutes)."""

from __future__ import annotations

import importlib
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
import yaml
from django.apps import apps
from django.db import connection

from analytics.simulation import simulate_trial
from participants.models import Participant
from participants.services.escalation import safety_alert_escalate
from participants.services.randomisation import allocation_exhausted_alert
from participants.services.safety import safety_alert_raise
from participants.services.unblinding import unblinding_request
from trialsite import policy
from trialsite.models import OutboxMessage
from trialsite.outbox import mail_enqueue, outbox_enqueue
from trialsite.protocol.services import protocol_load
from trialsite.services import site_create

NOW = datetime(2026, 4, 20, 12, 0, tzinfo=UTC)
backfill = importlib.import_module("participants.migrations.0016_outbox_message_trial_backfill").outbox_trial_backfill


def _run() -> int:
    return backfill(apps, SimpleNamespace(connection=connection))


def _notices_of(trial, make_staff) -> set[str]:
    """Every kind of notice the services record with a trial, about a randomised participant of `trial` (its
    simulated participants' own alerts too): their keys."""
    simulate_trial(trial=trial, participants=6, days=3, seed=trial.pk, now=NOW)
    participant = Participant.objects.filter(trial=trial, allocation__isnull=False).select_related("site").first()
    make_staff("trial_manager", trial=trial)
    physician = make_staff("safety_physician", site=participant.site, trial=trial)
    alert = safety_alert_raise(
        participant=participant,
        rule="test_rule",
        title="Test alert",
        severity="urgent",
        source_kind="response",
        source_id=f"backfill-{trial.pk}",
        now=NOW,
    )
    safety_alert_escalate(alert_id=alert.pk, actor=policy.SYSTEM, now=alert.due_at + timedelta(minutes=1))
    unblinding_request(participant=participant, actor=physician, reason="Severe reaction, treating in A&E")
    allocation_exhausted_alert(trial=trial, stratum="LDN|low")
    return set(OutboxMessage.objects.filter(trial=trial).values_list("dedupe_key", flat=True))


@pytest.mark.django_db
def test_old_messages_get_the_trial_the_services_record_and_the_rest_stay_without_one(
    trial, site_ldn, demo_protocol_source, make_staff
):
    data = yaml.safe_load(demo_protocol_source)
    data["trial"].update(slug="second-trial", title="A second trial")
    other = protocol_load(source=yaml.safe_dump(data, sort_keys=False)).trial
    site_create(code="BER", name="Berlin", timezone="Europe/Berlin", trials=[other])
    expected = {key: trial.pk for key in _notices_of(trial, make_staff)}
    expected |= {key: other.pk for key in _notices_of(other, make_staff)}
    kinds = {key.split(":")[0] for key in expected}
    assert kinds >= {"safety_alert_notify", "safety_alert_escalated", "unblinding", "allocation_exhausted"}, kinds

    # Left without a trial: the sweep's housekeeping checks, and messages whose alert, request or trial is unknown.
    outbox_enqueue(kind="surveys.missed_streak_check", dedupe_key="missed_streak_check:1", payload={"instance_id": 1})
    outbox_enqueue(kind="surveys.kit_code_missing_check", dedupe_key="kit_code_missing:1", payload={"instance_id": 1})
    outbox_enqueue(kind="participants.safety_alert_notify", dedupe_key="odd:1", payload={"alert_id": "x"})
    outbox_enqueue(kind="participants.safety_alert_notify", dedupe_key="odd:2", payload={})
    for key in ("safety_alert_escalated:999999", "unblinding:not-a-uuid:requested", "allocation_exhausted:x:s:1"):
        mail_enqueue(dedupe_key=key, subject="s", body="b", to=["x@example.org"])
    mail_enqueue(dedupe_key="allocation_exhausted:999999:s:1", subject="s", body="b", to=["x@example.org"])
    left = set(OutboxMessage.objects.filter(trial__isnull=True).values_list("dedupe_key", flat=True))
    assert {"missed_streak_check:1", "kit_code_missing:1"} <= left
    assert len({k for k in left if not k.startswith(("missed_streak_check:", "kit_code_missing:"))}) == 6

    # As before trialsite 0010: no message has a trial.
    assert OutboxMessage.objects.filter(trial__isnull=False).update(trial=None) == len(expected)
    assert _run() == len(expected)
    assert dict(OutboxMessage.objects.filter(trial__isnull=False).values_list("dedupe_key", "trial_id")) == expected
    assert set(OutboxMessage.objects.filter(trial__isnull=True).values_list("dedupe_key", flat=True)) == left
    assert _run() == 0  # a second run changes nothing


@pytest.mark.django_db
def test_a_message_that_already_has_a_trial_keeps_it(trial, site_ldn, make_staff, demo_protocol_source):
    keys = _notices_of(trial, make_staff)
    data = yaml.safe_load(demo_protocol_source)
    data["trial"].update(slug="third-trial", title="A third trial")
    other = protocol_load(source=yaml.safe_dump(data, sort_keys=False)).trial
    OutboxMessage.objects.filter(dedupe_key__in=keys).update(trial=other)  # not what the key says: left alone
    assert _run() == 0
    assert set(OutboxMessage.objects.filter(dedupe_key__in=keys).values_list("trial_id", flat=True)) == {other.pk}
