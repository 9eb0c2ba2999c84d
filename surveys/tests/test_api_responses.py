"""POST /api/v1/surveys/{id}/response: the submission contract (API.md), over HTTP."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from participants.models import ParticipantStatus, SafetyAlert, WithdrawalScope
from surveys.models import IdempotencyRecord, ItemAnswer, Response, Score, SurveyInstance
from trialsite.models import OutboxMessage

from .factories import PHQ9_MILD, auth, make_instance, make_participant


def baseline(client, key="baseline_phq9") -> SurveyInstance:
    return SurveyInstance.objects.get(participant=client.participant, schedule_key=key)


def submit(client, instance, answers, *, key=None, authored=None):
    headers = {} if key is False else {"HTTP_IDEMPOTENCY_KEY": str(key or uuid.uuid4())}
    body = {"answers": answers, "authored": authored or timezone.now().isoformat()}
    return client.post(f"/api/v1/surveys/{instance.uuid}/response", body, format="json", **headers)


def test_submit_then_replay_then_mismatch_then_conflict(phone):
    instance = baseline(phone)
    key = uuid.uuid4()
    authored = "2026-03-01T20:15:00+01:00"
    first = submit(phone, instance, PHQ9_MILD, key=key, authored=authored)
    assert first.status_code == 201, first.json()
    body = first.json()
    assert set(body) == {"id", "instance", "received_at", "late"}
    assert body["instance"] == str(instance.uuid) and body["late"] is False
    again = submit(phone, instance, PHQ9_MILD, key=key, authored=authored)
    assert (again.status_code, again.json()) == (200, body)
    assert Response.objects.count() == 1 and IdempotencyRecord.objects.count() == 1
    other_body = submit(phone, instance, PHQ9_MILD | {"phq9_1": 2}, key=key, authored=authored)
    assert (other_body.status_code, other_body.json()["error"]["code"]) == (409, "idempotency_mismatch")
    other_key = submit(phone, instance, PHQ9_MILD)
    assert (other_key.status_code, other_key.json()["error"]["code"]) == (409, "conflict")
    response = Response.objects.get()
    assert response.authored_at == datetime(2026, 3, 1, 19, 15, tzinfo=UTC) and response.authored_offset_minutes == 60
    assert response.received_at is not None and str(response.uuid) == body["id"]
    assert ItemAnswer.objects.filter(response=response).count() == 9
    score = Score.objects.get(response=response)
    assert (score.key, score.value, score.band) == ("total", 5, "mild")
    instance.refresh_from_db()
    assert instance.status == "completed"
    # The participant sees the survey as completed; never a score.
    listed = phone.get("/api/v1/surveys?status=completed").json()["results"]
    assert [r["id"] for r in listed] == [str(instance.uuid)] and "score" not in str(listed)


def test_idempotency_key_is_required_and_a_uuid(phone):
    instance = baseline(phone)
    missing = submit(phone, instance, PHQ9_MILD, key=False)
    assert missing.status_code == 400 and "Idempotency-Key" in missing.json()["error"]["fields"]
    bad = phone.post(
        f"/api/v1/surveys/{instance.uuid}/response",
        {"answers": PHQ9_MILD, "authored": timezone.now().isoformat()},
        format="json",
        HTTP_IDEMPOTENCY_KEY="not-a-uuid",
    )
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "validation_error"
    assert not Response.objects.exists()


def test_invalid_answers_and_naive_authored_are_400_with_fields(phone):
    instance = baseline(phone)
    r = submit(phone, instance, PHQ9_MILD | {"phq9_3": 7})
    assert r.status_code == 400
    assert r.json()["error"]["fields"] == {"answers.phq9_3": ["Not one of the allowed values (0, 1, 2, 3)."]}
    r = submit(phone, instance, PHQ9_MILD, authored="2026-03-01T20:15:00")
    assert r.status_code == 400 and list(r.json()["error"]["fields"]) == ["authored"]
    r = phone.post(
        f"/api/v1/surveys/{instance.uuid}/response",
        {"answers": "x"},
        format="json",
        HTTP_IDEMPOTENCY_KEY=str(uuid.uuid4()),
    )
    assert r.status_code == 400 and {"answers", "authored"} <= set(r.json()["error"]["fields"])
    assert not Response.objects.exists()


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"answers": None, "authored": None},
        {"answers": [], "authored": 5},
        {"answers": {}, "authored": "yesterday"},
        {"answers": {"phq9_1": 1}, "authored": "2026-03-01T20:15:00"},
        {"answers": "x", "authored": "9999-12-31T23:59:59-23:00"},
    ],
)
def test_a_malformed_body_gets_the_request_schemas_own_messages(phone, body):
    # The body is checked without building a ResponseInput per request (issue 14): same fields, order and messages.
    from surveys.api.views.surveys import ResponseInput
    from trialsite.api.errors import flatten_fields

    serializer = ResponseInput(data=body)
    assert not serializer.is_valid()
    r = phone.post(
        f"/api/v1/surveys/{baseline(phone).uuid}/response", body, format="json", HTTP_IDEMPOTENCY_KEY=str(uuid.uuid4())
    )
    assert r.status_code == 400 and r.json()["error"]["code"] == "validation_error"
    assert list(r.json()["error"]["fields"].items()) == list(flatten_fields(serializer.errors).items())
    assert not Response.objects.exists()


def test_windows_not_open_late_and_closed(phone):
    now = timezone.now()
    future = make_instance(phone.participant, slug="gad7", opens_at=now + timedelta(hours=1))
    late = make_instance(phone.participant, slug="gad7", opens_at=now - timedelta(hours=4, minutes=10))
    closed = make_instance(phone.participant, slug="gad7", opens_at=now - timedelta(hours=5))
    answers = {f"gad7_{n}": 0 for n in range(1, 8)}
    r = submit(phone, future, answers)
    assert (r.status_code, r.json()["error"]["code"]) == (409, "window_not_open")
    r = submit(phone, closed, answers)
    assert (r.status_code, r.json()["error"]["code"]) == (409, "window_closed")
    r = submit(phone, late, answers)
    assert r.status_code == 201 and r.json()["late"] is True
    assert Response.objects.get().late is True


def test_not_consented_withdrawn_and_other_participants_instances(trial, site_ldn, phone, api_client):
    stranger, key = make_participant(trial=trial, site=site_ldn)  # enrolled but never signed
    instance = make_instance(stranger, slug="gad7", opens_at=timezone.now() - timedelta(minutes=5))
    answers = {f"gad7_{n}": 0 for n in range(1, 8)}
    # Another participant's instance is simply not found.
    r = submit(phone, instance, answers)
    assert (r.status_code, r.json()["error"]["code"]) == (404, "not_found")
    from rest_framework.test import APIClient

    client = auth(APIClient(), key)
    r = submit(client, instance, answers)
    assert (r.status_code, r.json()["error"]["code"]) == (409, "not_consented")
    p = phone.participant
    p.status, p.withdrawal_scope, p.withdrawn_at = ParticipantStatus.WITHDRAWN, WithdrawalScope.ALL, timezone.now()
    p.save()
    r = submit(phone, baseline(phone), PHQ9_MILD)
    assert (r.status_code, r.json()["error"]["code"]) == (409, "withdrawn")


def test_staff_and_anonymous_callers_are_refused(phone, make_staff):
    from trialsite.api.auth import token_issue

    staff = make_staff("coordinator")
    key, _ = token_issue(user=staff, kind="staff", ttl=timedelta(hours=1))
    from rest_framework.test import APIClient

    assert APIClient().get("/api/v1/surveys").status_code == 401
    r = auth(APIClient(), key).get("/api/v1/surveys")
    assert (r.status_code, r.json()["error"]["code"]) == (403, "permission_denied")


@pytest.mark.parametrize(
    ("items", "rules"),
    [
        ([0, 0, 0, 0, 0, 0, 0, 0, 1], {"phq9_item9"}),
        ([3, 3, 3, 3, 2, 2, 2, 2, 0], {"phq9_severe"}),
        ([3, 3, 3, 3, 3, 3, 3, 3, 3], {"phq9_item9", "phq9_severe"}),
        ([2, 2, 2, 2, 2, 2, 2, 1, 0], set()),
    ],
)
def test_safety_rules_raise_alerts_in_the_same_transaction(phone, django_capture_on_commit_callbacks, items, rules):
    answers = {f"phq9_{n}": v for n, v in enumerate(items, 1)}
    key = uuid.uuid4()
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        r = submit(phone, baseline(phone), answers, key=key)
    assert r.status_code == 201
    assert "alert" not in str(r.json()) and "score" not in str(r.json())
    alerts = SafetyAlert.objects.filter(participant=phone.participant)
    assert set(alerts.values_list("rule", flat=True)) == rules
    assert len(callbacks) == len(rules)  # one best-effort publish per alert, after commit
    # ...of a notification recorded in the same transaction (the outbox), so a lost publish loses nothing.
    assert set(
        OutboxMessage.objects.filter(kind="participants.safety_alert_notify").values_list(
            "payload__alert_id", flat=True
        )
    ) == set(alerts.values_list("pk", flat=True))
    assert all(a.source_kind == "response" and a.source_id == r.json()["id"] for a in alerts)
    submit(phone, baseline(phone), answers, key=key)  # a retry never raises an alert twice
    assert alerts.count() == len(rules)


def test_clock_skew_is_flagged_not_refused(phone):
    future = (timezone.now() + timedelta(days=2)).isoformat()
    r = submit(phone, baseline(phone, "baseline_gad7"), {f"gad7_{n}": 1 for n in range(1, 8)}, authored=future)
    assert r.status_code == 201
    assert Response.objects.get().clock_skew is True
    r = submit(phone, baseline(phone), PHQ9_MILD)
    assert Response.objects.get(uuid=r.json()["id"]).clock_skew is False
