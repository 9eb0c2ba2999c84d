"""A fixed, pinned number of queries per phone request, and no protocol parsing once warm (issue 14 item 1).

The counts include the savepoints of the service's transaction (a test runs inside one); in production the
outermost transaction is BEGIN/COMMIT instead. Sync is linear: a constant per batch plus a constant per item.
"""

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from trialsite.protocol.schema import Protocol

from .factories import make_instance

pytestmark = pytest.mark.django_db

ANSWERS = {"mood": 60, "anxiety": 20, "energy": 55, "focus": 70, "dose_taken": True}

# /me: one statement (trialsite.api.auth.token_lookup): the token with its user, participant, trial and site, and the
# trial's consent documents with the participant's signatures (participants.token_join); the trial row carries its
# current protocol version, whose parsed protocol comes from the per-version cache.
ME_QUERIES = 1
# /surveys: the token (+ participant); the page (one row more than the limit tells whether there is a next page).
SURVEYS_QUERIES = 2
# A submission: the token; savepoint; one SELECT ... FOR UPDATE of the instance that also reads the trial's current
# protocol version (the safety rules), the idempotency key's record and the consent documents with the participant's
# signatures; one statement writing the response, its item answers, its scores, the instance's status and the
# idempotency record (surveys/services/submission.py); release.
SUBMIT_QUERIES = 5
# /sync with N responses: the token, then per item what one submission does after its token.
SYNC_PER_REQUEST, SYNC_PER_RESPONSE = 1, SUBMIT_QUERIES - 1


@pytest.fixture
def validations(monkeypatch):
    calls = []
    original = Protocol.model_validate

    def spy(cls, *args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(Protocol, "model_validate", classmethod(spy))
    return calls


def open_instances(phone, n):
    opens = timezone.now() - timedelta(minutes=5)
    return [make_instance(phone.participant, slug="daily-mood", opens_at=opens) for _ in range(n)]


def submit(phone, instance):
    body = {"answers": ANSWERS, "authored": timezone.now().isoformat()}
    return phone.post(
        f"/api/v1/surveys/{instance.uuid}/response", body, format="json", HTTP_IDEMPOTENCY_KEY=str(uuid.uuid4())
    )


def test_me_costs_a_fixed_number_of_queries_and_no_protocol_parse(phone, django_assert_num_queries, validations):
    assert phone.get("/api/v1/me").status_code == 200  # warm-up
    validations.clear()
    with django_assert_num_queries(ME_QUERIES):
        response = phone.get("/api/v1/me")
    assert response.status_code == 200 and response.json()["quiet_hours"] == {"start": "22:00", "end": "07:30"}
    assert validations == []


def test_surveys_list_costs_a_fixed_number_of_queries(phone, django_assert_num_queries):
    open_instances(phone, 3)
    assert phone.get("/api/v1/surveys").status_code == 200
    with django_assert_num_queries(SURVEYS_QUERIES):
        response = phone.get("/api/v1/surveys")
    assert response.status_code == 200 and len(response.json()["results"]) >= 3


def test_the_surveys_page_runs_as_a_statement_prepared_on_the_connection(phone):
    """Every page of a list is one prepared statement (LIMIT and OFFSET are its parameters): PostgreSQL parses and
    plans it once per connection, not per request."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    open_instances(phone, 3)
    assert phone.get("/api/v1/surveys?status=open&limit=2").status_code == 200
    with CaptureQueriesContext(connection) as queries:
        first = phone.get("/api/v1/surveys?status=open&limit=2").json()
        rest = phone.get("/api/v1/surveys?status=open&limit=2&offset=2").json()
    names = [q["sql"].split("(")[0] for q in queries.captured_queries]  # token, page, token, page
    assert len(names) == 4 and all(name.startswith("EXECUTE trialsite_compiled_") for name in names)
    assert names[1] == names[3] != names[0]  # both pages: the one prepared page statement
    assert len(first["results"]) == 2 and first["next"] and len(rest["results"]) >= 1


def test_a_submission_costs_a_fixed_number_of_queries_and_no_protocol_parse(
    phone, django_assert_num_queries, validations
):
    first, second = open_instances(phone, 2)
    assert submit(phone, first).status_code == 201  # warm-up
    validations.clear()
    with django_assert_num_queries(SUBMIT_QUERIES):
        response = submit(phone, second)
    assert response.status_code == 201, response.content
    assert validations == []


@pytest.mark.parametrize("n", [1, 3])
def test_sync_costs_a_constant_plus_a_constant_per_item(phone, django_assert_num_queries, validations, n):
    warm, *instances = open_instances(phone, n + 1)
    assert submit(phone, warm).status_code == 201
    validations.clear()
    items = [
        {"kind": "response", "idempotency_key": str(uuid.uuid4()), "instance": str(i.uuid), "answers": ANSWERS}
        | {"authored": timezone.now().isoformat()}
        for i in instances
    ]
    with django_assert_num_queries(SYNC_PER_REQUEST + SYNC_PER_RESPONSE * n):
        response = phone.post("/api/v1/sync", {"items": items}, format="json")
    assert [r["status"] for r in response.json()["results"]] == [201] * n
    assert validations == []


def test_an_instance_answered_outside_the_api_is_a_conflict_not_a_500(phone):
    from surveys.models import Response

    (instance,) = open_instances(phone, 1)
    Response.objects.create(
        instance=instance,
        participant=phone.participant,
        instrument=instance.instrument,
        idempotency_key=uuid.uuid4(),
        request_hash="x",
        answers={},
        authored_at=timezone.now(),
        received_at=timezone.now(),
    )
    response = submit(phone, instance)
    assert response.status_code == 409 and response.json()["error"]["code"] == "conflict"


def test_the_phone_sees_an_amendment_on_its_next_request(phone, demo_protocol_source):
    import yaml

    from trialsite.protocol.services import protocol_load

    assert phone.get("/api/v1/me").json()["quiet_hours"] == {"start": "22:00", "end": "07:30"}
    data = yaml.safe_load(demo_protocol_source)
    data["reminders"]["quiet_hours"] = {"start": "23:00", "end": "07:00"}
    assert protocol_load(source=yaml.safe_dump(data, sort_keys=False)).amended
    assert phone.get("/api/v1/me").json()["quiet_hours"] == {"start": "23:00", "end": "07:00"}


def test_the_surveys_list_pages_without_a_count(phone, django_assert_num_queries):
    open_instances(phone, 3)
    every = [r["id"] for r in phone.get("/api/v1/surveys?status=open&limit=200").json()["results"]]
    n = len(every)
    assert n >= 3
    with django_assert_num_queries(SURVEYS_QUERIES):
        first = phone.get(f"/api/v1/surveys?status=open&limit={n - 1}").json()
    assert [r["id"] for r in first["results"]] == every[:-1]
    assert first["next"] is not None and f"offset={n - 1}" in first["next"]
    second = phone.get(first["next"]).json()
    assert [r["id"] for r in second["results"]] == every[-1:] and second["next"] is None
    exact = phone.get(f"/api/v1/surveys?status=open&limit={n}").json()
    assert len(exact["results"]) == n and exact["next"] is None  # a full last page has no next
    beyond = phone.get(f"/api/v1/surveys?status=open&offset={2**63}")
    assert beyond.status_code == 200 and beyond.json() == {"results": [], "next": None}
