"""50 coordinators randomising at once against real PostgreSQL: distinct slots, no gaps, balanced blocks."""

from __future__ import annotations

import threading
from collections import Counter

import pytest
from django.db import connection
from rest_framework.test import APIClient

from participants.models import Allocation, AllocationSlot
from participants.tests.conftest import sign_consent

N = 50


@pytest.mark.django_db(transaction=True)
def test_fifty_parallel_randomisations(register, baseline, call, make_staff, site_ldn):
    call("allocation_generate", "--trial", "microdose-mood", "--seed", "2026", "--per-stratum", "64")
    coordinator = make_staff("coordinator", site=site_ldn)
    participants = []
    for _ in range(N):
        participant, _ = register()
        sign_consent(participant)
        baseline[participant.pk] = 15  # all in stratum LDN|ge10
        participants.append(participant)

    barrier = threading.Barrier(N)
    statuses: dict[int, int] = {}
    failures: list[BaseException] = []

    def worker(participant):
        try:
            client = APIClient()
            client.force_authenticate(coordinator)
            barrier.wait(timeout=30)
            r = client.post(f"/api/v1/staff/participants/{participant.uuid}/randomise")
            statuses[participant.pk] = r.status_code
        except BaseException as exc:  # noqa: BLE001 - reported below
            failures.append(exc)
        finally:
            connection.close()  # each thread had its own connection

    threads = [threading.Thread(target=worker, args=(p,)) for p in participants]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)

    assert not failures
    assert Counter(statuses.values()) == {201: N}
    slots = list(
        AllocationSlot.objects.filter(stratum="LDN|ge10")
        .order_by("sequence")
        .values("pk", "sequence", "block_number", "block_size", "arm__code", "taken")
    )
    allocated = set(Allocation.objects.values_list("slot_id", flat=True))
    assert len(allocated) == N == Allocation.objects.values("participant").distinct().count()
    # No gaps: exactly the first N slots of the stratum are used, and `taken` agrees with the allocations.
    assert [s["sequence"] for s in slots if s["pk"] in allocated] == list(range(1, N + 1))
    assert all(s["taken"] == (s["pk"] in allocated) for s in slots)
    # Exact balance in every completed block.
    blocks: dict[int, list[dict]] = {}
    for s in slots:
        if s["pk"] in allocated:
            blocks.setdefault(s["block_number"], []).append(s)
    completed = [b for b in blocks.values() if len(b) == b[0]["block_size"]]
    assert completed
    for block in completed:
        counts = Counter(s["arm__code"] for s in block)
        assert counts["A"] == counts["B"]
