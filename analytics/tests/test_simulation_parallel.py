"""The same seed gives the same trial: serially or from two worker processes, and whatever the batch size.

Runs with committed data (transactional_db): forked workers write on their own connections, which cannot see a
test's open transaction (inside one the simulator writes serially). The trial is compared by its content and the
records' own uuids, not by database ids (sequence values interleave differently between processes)."""

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from django.core.management import call_command

from participants.models import (
    AdverseEvent,
    Allocation,
    ConsentSignature,
    Participant,
    SafetyAlert,
    StaffBlindingGuess,
    Withdrawal,
)
from surveys.models import DoseLog, ItemAnswer, PromptEvent, Reminder, Response, Score, SideEffect, SurveyInstance

NOW = datetime(2026, 4, 20, 12, 0, tzinfo=UTC)
DEMO = Path(__file__).resolve().parents[2] / "protocols" / "microdose-mood.yaml"

CONTENT = {
    Participant: ["uuid", "study_id", "site__code", "status", "stratum", "registered_at", "enrolled_at",
                  "randomised_at", "day0", "withdrawn_at", "withdrawal_scope", "completed_on", "user__username"],
    Allocation: ["participant__uuid", "slot__stratum", "slot__sequence", "slot__arm__code", "allocated_at"],
    ConsentSignature: ["uuid", "participant__uuid", "signed_at", "device"],
    Withdrawal: ["uuid", "participant__uuid", "scope", "reason", "withdrawn_at", "by_participant"],
    SurveyInstance: ["uuid", "participant__uuid", "schedule_key", "study_day", "opens_at", "status", "cancelled_at"],
    Response: ["uuid", "instance__uuid", "answers", "authored_at", "received_at", "late", "source", "request_hash",
               "idempotency_key"],
    ItemAnswer: ["response__uuid", "item_key", "value", "value_numeric", "value_text"],
    Score: ["response__uuid", "key", "value", "band"],
    Reminder: ["uuid", "instance__uuid", "stage", "due_at", "status", "sent_at", "provider_id", "skip_reason"],
    PromptEvent: ["instance__uuid", "kind", "at"],
    DoseLog: ["uuid", "participant__uuid", "taken_at", "unit_code", "study_day"],
    SideEffect: ["uuid", "participant__uuid", "description", "severity", "reported_at"],
    SafetyAlert: ["uuid", "participant__uuid", "rule", "source_id", "status", "raised_at", "acknowledged_at"],
    StaffBlindingGuess: ["uuid", "participant__uuid", "time_point", "guess", "confidence", "recorded_at"],
    AdverseEvent: ["uuid", "participant__uuid", "onset", "relatedness", "outcome", "reported_at"],
}  # fmt: skip


def load_trial():
    from trialsite.protocol.services import protocol_load_file
    from trialsite.services import site_create

    trial = protocol_load_file(path=DEMO).trial
    site_create(code="LDN", name="London", timezone="Europe/London", trials=[trial])
    site_create(code="NYC", name="New York", timezone="America/New_York", trials=[trial])
    return trial


def simulate(*, workers: int, batch: int):
    from analytics.simulation import TrialSimulator

    sim = TrialSimulator(trial=load_trial(), seed=3, now=NOW, audit=False)
    return sim.run(participants=40, days=20, batch=batch, workers=workers)


def content() -> dict:
    return {
        model.__name__: sorted(json.dumps(row, default=str, sort_keys=True) for row in model.objects.values(*fields))
        for model, fields in CONTENT.items()
    }


@pytest.mark.django_db(transaction=True)
def test_the_same_seed_gives_the_same_trial_serial_or_in_two_processes(monkeypatch):
    from analytics.simulation import simulator

    forked = []
    real = simulator.run_in_workers
    monkeypatch.setattr(simulator, "run_in_workers", lambda *a: forked.append(a[2]) or real(*a))
    parallel = simulate(workers=2, batch=7)
    assert forked == [2]  # six batches, written by two forked processes
    in_two = content()
    call_command("flush", interactive=False, verbosity=0)
    serial = simulate(workers=1, batch=13)
    assert forked == [2]  # serial: no fork
    in_one = content()
    assert parallel == serial
    assert parallel.item_answers > 1000 and parallel.randomised > 20
    assert len(in_one["ItemAnswer"]) == serial.item_answers and len(in_one["Reminder"]) > 500
    assert in_one == in_two
