"""The simulator's bulk writer with `audit=False`: the foreign keys the replica mode skips are still checked."""

from datetime import UTC, datetime

import pytest
from django.db import IntegrityError, connection, transaction

from surveys.models import ItemAnswer, Response, SurveyInstance

NOW = datetime(2026, 4, 20, 12, 0, tzinfo=UTC)


def role() -> str:
    with connection.cursor() as cur:
        cur.execute("SHOW session_replication_role")
        return cur.fetchone()[0]


def test_unaudited_simulation_writes_the_same_shape_and_leaves_the_role_at_origin(trial):
    from analytics.simulation import simulate_trial

    result = simulate_trial(trial=trial, participants=30, days=20, seed=7, now=NOW, audit=False)
    assert result.item_answers > 0
    assert ItemAnswer.objects.count() == result.item_answers
    assert Response.objects.count() == SurveyInstance.objects.filter(status="completed").count() == result.responses
    assert role() == "origin"


def test_a_row_referencing_a_missing_parent_is_refused_and_rolled_back(db):
    from analytics.simulation.writer import BulkWriter, jsonb

    writer = BulkWriter(audit=False)
    assert writer.replica  # the test database's role may set it: the writer's own check is what runs
    writer.add("item", (987654321, "mood", jsonb("50"), 50, ""))
    with pytest.raises(IntegrityError, match="surveys_response"), transaction.atomic():
        writer.flush()
    assert role() == "origin"
    assert not ItemAnswer.objects.filter(response_id=987654321).exists()


def index_definitions() -> set[str]:
    """Every index of the simulator's tables."""
    from analytics.simulation.writer import SPEC

    with connection.cursor() as cur:
        cur.execute(
            "SELECT indexdef FROM pg_indexes WHERE tablename = ANY(%s)",
            [[model._meta.db_table for model, _ in SPEC.values()]],
        )
        return {r[0] for r in cur.fetchall()}


def test_a_load_with_deferred_indexes_rebuilds_every_index_and_keeps_the_unique_ones_armed(trial):
    from analytics.simulation import simulate_trial
    from analytics.simulation.indexes import indexes_deferred

    before = index_definitions()
    assert any("(status, opens_at)" in d for d in before)  # a secondary index the load drops
    with indexes_deferred() as dropped:
        during = index_definitions()
        # Unique indexes (the uuid ones, one item answer per response and key) stay during the load.
        assert any("UNIQUE" in d and "(response_id, item_key)" in d for d in during)
        assert {d for _, d in dropped} == before - during and dropped
    assert index_definitions() == before
    result = simulate_trial(trial=trial, participants=20, days=15, seed=2, now=NOW, audit=False, defer_indexes=True)
    assert result.item_answers > 0 and ItemAnswer.objects.count() == result.item_answers
    assert index_definitions() == before


@pytest.mark.parametrize("audit", [True, False])
def test_the_generated_allocation_list_is_audited_like_the_other_simulated_rows(trial, audit):
    """With `audit=True` the list, its slots and dose units have their insert events, as the simulated
    participants do; with `audit=False` neither has, while the allocations and the slots they take keep theirs."""
    from analytics.simulation import simulate_trial
    from participants.models import (
        Allocation,
        AllocationEvent,
        AllocationListEvent,
        AllocationSlot,
        AllocationSlotEvent,
        DoseUnit,
        DoseUnitEvent,
        Participant,
        ParticipantEvent,
    )

    result = simulate_trial(trial=trial, participants=12, days=5, seed=4, now=NOW, audit=audit)
    assert result.randomised > 0 and DoseUnit.objects.exists()
    inserted = {
        model: model.objects.filter(pgh_label="insert").count()
        for model in (AllocationListEvent, AllocationSlotEvent, DoseUnitEvent, ParticipantEvent)
    }
    if audit:
        assert inserted == {
            AllocationListEvent: 1,
            AllocationSlotEvent: AllocationSlot.objects.count(),
            DoseUnitEvent: DoseUnit.objects.count(),
            ParticipantEvent: Participant.objects.count(),
        }
    else:
        assert set(inserted.values()) == {0}
    taken = AllocationSlot.objects.filter(taken=True).count()
    assert taken == Allocation.objects.count() == result.randomised
    assert AllocationSlotEvent.objects.filter(pgh_label="update", taken=True).count() == taken
    assert AllocationEvent.objects.filter(pgh_label="insert").count() == taken
