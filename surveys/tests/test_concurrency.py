"""Two phones (or one phone retrying) submitting at the same instant: one row, no 5xx."""

import threading
import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from surveys.models import IdempotencyRecord, Response, SurveyInstance

from .factories import PHQ9_MILD, auth, make_participant, sign_consent


def _race(key: str, instance, bodies_and_keys) -> list[tuple[int, dict]]:
    barrier = threading.Barrier(len(bodies_and_keys))
    results: list = [None] * len(bodies_and_keys)

    def worker(n, body, idem):
        try:
            client = auth(APIClient(), key)
            barrier.wait(timeout=10)
            r = client.post(f"/api/v1/surveys/{instance.uuid}/response", body, format="json", HTTP_IDEMPOTENCY_KEY=idem)
            results[n] = (r.status_code, r.json())
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(n, b, k)) for n, (b, k) in enumerate(bodies_and_keys)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    return results


@pytest.mark.django_db(transaction=True)
def test_concurrent_identical_submissions_store_one_response(trial, site_ldn):
    participant, key = make_participant(trial=trial, site=site_ldn)
    sign_consent(participant, at=timezone.now() - timedelta(hours=1))
    instance = SurveyInstance.objects.get(participant=participant, schedule_key="baseline_phq9")
    body = {"answers": PHQ9_MILD, "authored": timezone.now().isoformat()}
    idem = str(uuid.uuid4())
    results = _race(key, instance, [(body, idem)] * 4)
    assert sorted(status for status, _ in results) == [200, 200, 200, 201]
    assert all(b == results[0][1] for _, b in results)  # every caller got the same answer
    assert Response.objects.count() == 1 and IdempotencyRecord.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_submissions_with_different_keys_one_wins(trial, site_ldn):
    participant, key = make_participant(trial=trial, site=site_ldn)
    sign_consent(participant, at=timezone.now() - timedelta(hours=1))
    instance = SurveyInstance.objects.get(participant=participant, schedule_key="baseline_phq9")
    body = {"answers": PHQ9_MILD, "authored": timezone.now().isoformat()}
    results = _race(key, instance, [(body, str(uuid.uuid4())) for _ in range(3)])
    statuses = sorted(status for status, _ in results)
    assert statuses == [201, 409, 409]
    assert {b["error"]["code"] for s, b in results if s == 409} == {"conflict"}
    assert Response.objects.count() == 1
