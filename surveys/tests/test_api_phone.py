"""The rest of the phone API: lists, instruments, doses, side effects, telemetry, offline sync, FHIR."""

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone
from fhir.resources.R4B.questionnaire import Questionnaire

from participants.models import SafetyAlert
from surveys.models import DoseLog, PromptEvent, Response, SideEffect, SurveyInstance

from .factories import PHQ9_MILD, make_instance, make_participant


def test_survey_list_by_status(phone):
    now = timezone.now()
    p = phone.participant
    upcoming = make_instance(p, slug="gad7", opens_at=now + timedelta(hours=2))
    missed = make_instance(p, slug="gad7", opens_at=now - timedelta(days=1))
    by_status = {
        s: [r["id"] for r in phone.get(f"/api/v1/surveys?status={s}").json()["results"]]
        for s in ("open", "upcoming", "missed", "completed")
    }
    baseline = SurveyInstance.objects.filter(participant=p, schedule_key__startswith="baseline").order_by(
        "opens_at", "id"
    )
    assert by_status == {
        "open": [str(i.uuid) for i in baseline],
        "upcoming": [str(upcoming.uuid)],
        "missed": [str(missed.uuid)],
        "completed": [],
    }
    row = phone.get("/api/v1/surveys?status=upcoming").json()["results"][0]
    assert row["instrument"] == {"slug": "gad7", "version": 1, "title": "GAD-7"}
    assert row["timezone"] == "Europe/London" and row["status"] == "upcoming"
    assert row["scheduled_local"].endswith(("+00:00", "+01:00"))
    bad = phone.get("/api/v1/surveys?status=later")
    assert bad.status_code == 400 and "status" in bad.json()["error"]["fields"]


@pytest.mark.parametrize("path", ["/api/v1/surveys?status=upcoming", "/api/v1/doses"])
def test_lists_keep_a_constant_query_count(phone, django_assert_num_queries, path):
    p = phone.participant
    now = timezone.now()

    def add(n):
        for _ in range(n):
            if "surveys" in path:
                make_instance(p, slug="daily-mood", opens_at=now + timedelta(hours=1))
            else:
                DoseLog.objects.create(participant=p, taken_at=now, idempotency_key=uuid.uuid4())

    phone.get(path)  # warm-up (statements prepared on the connection)
    # the token (its participant joined; last_used_at refreshed in the same statement), the page itself (instruments joined; one row past the limit, no COUNT)
    add(1)
    with django_assert_num_queries(2):
        r = phone.get(path)
    assert len(r.json()["results"]) == 1
    add(49)
    with django_assert_num_queries(2):
        r = phone.get(path)
    assert len(r.json()["results"]) == 50


def test_instrument_definition_without_scoring(phone):
    r = phone.get("/api/v1/instruments/phq9")
    assert r.status_code == 200
    body = r.json()
    assert (body["slug"], body["version"], body["title"]) == ("phq9", 1, "PHQ-9")
    assert [i["key"] for i in body["items"]] == [f"phq9_{n}" for n in range(1, 10)] + ["phq9_difficulty"]
    assert body["items"][0]["options"][3] == {"value": 3, "label": "Nearly every day"}
    assert body["items"][-1]["required"] is False
    assert "scoring" not in r.content.decode() and "bands" not in r.content.decode()
    slider = phone.get("/api/v1/instruments/daily-mood").json()["items"][0]
    assert (slider["type"], slider["min"], slider["max"]) == ("slider", 0, 100)
    assert phone.get("/api/v1/instruments/nope").json()["error"]["code"] == "not_found"


def test_doses_logged_once_and_listed(phone):
    key = str(uuid.uuid4())
    body = {"taken_at": "2026-03-02T08:00:00+00:00", "unit_code": "MD-0001-03"}
    first = phone.post("/api/v1/doses", body, format="json", HTTP_IDEMPOTENCY_KEY=key)
    assert first.status_code == 201
    again = phone.post("/api/v1/doses", body, format="json", HTTP_IDEMPOTENCY_KEY=key)
    assert (again.status_code, again.json()) == (200, first.json())
    changed = phone.post("/api/v1/doses", body | {"note": "x"}, format="json", HTTP_IDEMPOTENCY_KEY=key)
    assert changed.json()["error"]["code"] == "idempotency_mismatch"
    naive = phone.post(
        "/api/v1/doses", {"taken_at": "2026-03-02T08:00:00"}, format="json", HTTP_IDEMPOTENCY_KEY=str(uuid.uuid4())
    )
    assert naive.status_code == 400 and "taken_at" in naive.json()["error"]["fields"]
    assert DoseLog.objects.count() == 1
    listed = phone.get("/api/v1/doses").json()
    assert listed["next"] is None and [d["id"] for d in listed["results"]] == [first.json()["id"]]


@pytest.mark.parametrize("stamp", ["0001-01-01T00:30:00+01:00", "9999-12-31T23:30:00-01:00"])
def test_timestamps_beyond_the_storable_range_are_400_not_a_poisoned_list(phone, stamp):
    """An instant that PostgreSQL would store but Python could not read back (UTC year 0 or 10000) is refused,
    so it never turns every later read of the list, the admin or the timeline into a 500."""
    instance = SurveyInstance.objects.filter(participant=phone.participant, schedule_key="baseline_phq9").get()

    def post(path, body):
        return phone.post(path, body, format="json", HTTP_IDEMPOTENCY_KEY=str(uuid.uuid4()))

    dose = post("/api/v1/doses", {"taken_at": stamp})
    assert dose.status_code == 400 and "taken_at" in dose.json()["error"]["fields"]
    event = post("/api/v1/events", {"instance": str(instance.uuid), "kind": "opened", "at": stamp})
    assert event.status_code == 400 and "at" in event.json()["error"]["fields"]
    answer = post(f"/api/v1/surveys/{instance.uuid}/response", {"answers": PHQ9_MILD, "authored": stamp})
    assert answer.status_code == 400 and "authored" in answer.json()["error"]["fields"]
    fhir = phone.post(
        "/api/v1/fhir/QuestionnaireResponse", _qr(instance, {"phq9_1": 1}) | {"authored": stamp}, format="json"
    )
    assert fhir.status_code == 400 and "authored" in fhir.json()["error"]["fields"]
    synced = post(
        "/api/v1/sync", {"items": [{"kind": "dose", "idempotency_key": str(uuid.uuid4()), "taken_at": stamp}]}
    )
    assert synced.json()["results"][0]["status"] == 400
    assert not DoseLog.objects.exists() and not PromptEvent.objects.exists() and not Response.objects.exists()
    assert phone.get("/api/v1/doses").status_code == 200


def test_serious_side_effect_raises_a_safety_alert(phone):
    body = {
        "started_on": timezone.now().date().isoformat(),
        "description": "Chest pain",
        "severity": "severe",
        "serious": True,
        "ongoing": True,
    }
    r = phone.post("/api/v1/side-effects", body, format="json", HTTP_IDEMPOTENCY_KEY=str(uuid.uuid4()))
    assert r.status_code == 201 and r.json()["serious"] is True
    alert = SafetyAlert.objects.get()
    assert (alert.rule, alert.source_kind, alert.source_id) == ("serious_side_effect", "side_effect", r.json()["id"])
    mild = body | {"serious": False, "severity": "mild", "description": "Headache"}
    r = phone.post("/api/v1/side-effects", mild, format="json", HTTP_IDEMPOTENCY_KEY=str(uuid.uuid4()))
    assert r.status_code == 201 and SafetyAlert.objects.count() == 1
    bad = phone.post(
        "/api/v1/side-effects", mild | {"severity": "awful"}, format="json", HTTP_IDEMPOTENCY_KEY=str(uuid.uuid4())
    )
    assert bad.status_code == 400 and "severity" in bad.json()["error"]["fields"]


def test_prompt_events_first_of_each_kind_counts(phone):
    instance = SurveyInstance.objects.filter(participant=phone.participant).first()
    for at in ("2026-03-01T10:00:00+00:00", "2026-03-01T11:00:00+00:00"):
        r = phone.post("/api/v1/events", {"instance": str(instance.uuid), "kind": "opened", "at": at}, format="json")
        assert r.status_code == 202
    event = PromptEvent.objects.get()
    assert (event.kind, event.at.hour) == ("opened", 10)
    r = phone.post(
        "/api/v1/events", {"instance": str(uuid.uuid4()), "kind": "opened", "at": "2026-03-01T10:00:00Z"}, format="json"
    )
    assert r.status_code == 404


def test_offline_batch_each_item_alone_and_whole_batch_replay(phone):
    p = phone.participant
    phq, gad = (SurveyInstance.objects.get(participant=p, schedule_key=k) for k in ("baseline_phq9", "baseline_gad7"))
    items = [
        {
            "kind": "response",
            "idempotency_key": str(uuid.uuid4()),
            "instance": str(phq.uuid),
            "answers": PHQ9_MILD,
            "authored": "2026-03-01T20:00:00+00:00",
        },
        {
            "kind": "response",
            "idempotency_key": str(uuid.uuid4()),
            "instance": str(gad.uuid),
            "answers": {"gad7_1": 9},
            "authored": "2026-03-01T20:01:00+00:00",
        },
        {"kind": "dose", "idempotency_key": str(uuid.uuid4()), "taken_at": "2026-03-01T08:00:00+00:00"},
        {
            "kind": "side_effect",
            "idempotency_key": str(uuid.uuid4()),
            "started_on": "2026-03-01",
            "description": "Nausea",
            "severity": "mild",
            "serious": False,
            "ongoing": False,
        },
        {
            "kind": "event",
            "idempotency_key": str(uuid.uuid4()),
            "instance": str(phq.uuid),
            "event": "opened",
            "at": "2026-03-01T19:59:00+00:00",
        },
        {"kind": "teleport", "idempotency_key": str(uuid.uuid4())},
        {"kind": "dose", "idempotency_key": "nope", "taken_at": "2026-03-01T08:00:00+00:00"},
    ]
    r = phone.post("/api/v1/sync", {"items": items}, format="json")
    assert r.status_code == 200
    results = r.json()["results"]
    assert [x["status"] for x in results] == [201, 400, 201, 201, 202, 400, 400]
    assert [x["idempotency_key"] for x in results] == [i["idempotency_key"] for i in items]
    assert "answers.gad7_1" in results[1]["error"]["fields"]
    assert Response.objects.get().source == "sync"
    counts = (
        Response.objects.count(),
        DoseLog.objects.count(),
        SideEffect.objects.count(),
        PromptEvent.objects.count(),
    )
    # The phone never heard back and sends the whole batch again: nothing new is stored.
    replay = phone.post("/api/v1/sync", {"items": items}, format="json").json()["results"]
    assert [x["status"] for x in replay] == [200, 400, 200, 200, 202, 400, 400]
    assert [x.get("id") for x in replay[:4]] == [x.get("id") for x in results[:4]]
    assert (
        Response.objects.count(),
        DoseLog.objects.count(),
        SideEffect.objects.count(),
        PromptEvent.objects.count(),
    ) == counts
    assert phone.post("/api/v1/sync", {"items": "x"}, format="json").status_code == 400


def test_fhir_questionnaire_is_valid_r4(phone):
    for slug in ("phq9", "gad7", "daily-mood", "blinding-guess"):
        r = phone.get(f"/api/v1/fhir/Questionnaire/{slug}")
        assert r.status_code == 200
        Questionnaire.model_validate(r.json())  # fhir.resources R4B: raises when not valid
    phq9 = phone.get("/api/v1/fhir/Questionnaire/phq9").json()
    item1 = next(i for i in phq9["item"] if i["linkId"] == "phq9_1")
    coding = item1["answerOption"][2]["valueCoding"]
    assert (item1["type"], coding["code"], coding["display"]) == ("choice", "LA6570-1", "More than half the days")
    assert coding["extension"] == [{"url": "http://hl7.org/fhir/StructureDefinition/ordinalValue", "valueDecimal": 2}]
    assert phq9["code"] == [{"system": "http://loinc.org", "code": "44249-1"}]
    mood = next(i for i in phone.get("/api/v1/fhir/Questionnaire/daily-mood").json()["item"] if i["linkId"] == "mood")
    assert mood["type"] == "integer"
    control = next(e for e in mood["extension"] if e["url"].endswith("questionnaire-itemControl"))
    assert control["valueCodeableConcept"]["coding"][0]["code"] == "slider"


def _qr(instance, answers: dict, *, status="completed", key=None):
    return {
        "resourceType": "QuestionnaireResponse",
        "id": str(key or uuid.uuid4()),
        "status": status,
        "questionnaire": "urn:trialsite:microdose-mood:questionnaire:phq9",
        "basedOn": [{"reference": f"ServiceRequest/{instance.uuid}"}],
        "authored": "2026-03-01T20:00:00+01:00",
        "item": [
            {
                "linkId": k,
                "answer": [
                    {
                        "valueCoding": {
                            "system": "http://loinc.org",
                            "code": ["LA6568-5", "LA6569-3", "LA6570-1", "LA6571-9"][v],
                        }
                    }
                ],
            }
            for k, v in answers.items()
        ],
    }


def test_fhir_questionnaire_response_submission(phone):
    instance = SurveyInstance.objects.get(participant=phone.participant, schedule_key="baseline_phq9")
    answers = {f"phq9_{n}": v for n, v in enumerate([2, 2, 2, 2, 1, 1, 0, 0, 0], 1)}
    draft = phone.post(
        "/api/v1/fhir/QuestionnaireResponse", _qr(instance, answers, status="in-progress"), format="json"
    )
    assert draft.status_code == 400 and "status" in draft.json()["error"]["fields"]
    key = uuid.uuid4()
    r = phone.post("/api/v1/fhir/QuestionnaireResponse", _qr(instance, answers, key=key), format="json")
    assert r.status_code == 201, r.json()
    response = Response.objects.get()
    assert response.source == "fhir" and response.idempotency_key == key
    assert response.answers == answers and response.scores.get().value == 10
    again = phone.post("/api/v1/fhir/QuestionnaireResponse", _qr(instance, answers, key=key), format="json")
    assert (again.status_code, again.json()) == (200, r.json())
    broken = phone.post(
        "/api/v1/fhir/QuestionnaireResponse", {"resourceType": "QuestionnaireResponse", "status": 5}, format="json"
    )
    assert broken.status_code == 400


def test_staff_participant_list_shows_adherence_in_constant_queries(trial, site_ldn, make_staff, api_client):
    """Completion and dose adherence per participant for coordinators, never growing with the page."""
    from datetime import UTC, datetime
    from datetime import timedelta as td

    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from participants.models import Participant
    from surveys.models import DoseLog, InstanceStatus, SurveyInstance
    from trialsite.api.auth import token_issue

    coordinator = make_staff("coordinator", site=site_ldn)
    key, _ = token_issue(user=coordinator, kind="staff", ttl=td(hours=1))
    auth = {"HTTP_AUTHORIZATION": f"Bearer {key}"}

    def list_queries():
        with CaptureQueriesContext(connection) as ctx:
            response = api_client.get("/api/v1/staff/participants", **auth)
        assert response.status_code == 200
        return response.json()["results"], len(ctx.captured_queries)

    participant, _ = make_participant(trial=trial, site=site_ldn)
    now = datetime.now(UTC)
    day0 = (now - td(days=7)).astimezone(participant.zone).date()
    Participant.objects.filter(pk=participant.pk).update(status="randomised", randomised_at=now - td(days=7), day0=day0)
    done = make_instance(participant, slug="daily-mood", opens_at=now - td(days=2))
    SurveyInstance.objects.filter(pk=done.pk).update(status=InstanceStatus.COMPLETED)
    make_instance(participant, slug="daily-mood", opens_at=now - td(days=1, hours=10))  # closed, unanswered
    make_instance(participant, slug="daily-mood", opens_at=now + td(hours=3))  # not yet due
    for n in (0, 3):  # logged on dose days 0 and 3; a second dose on day 3 counts once
        taken = datetime.combine(day0 + td(days=n), datetime.min.time().replace(hour=9), tzinfo=participant.zone)
        DoseLog.objects.create(participant=participant, taken_at=taken, idempotency_key=uuid.uuid4())
    DoseLog.objects.create(participant=participant, taken_at=taken, idempotency_key=uuid.uuid4())

    list_queries()  # warms the per-process protocol cache
    rows, one = list_queries()
    figures = rows[0]["adherence"]
    assert (figures["surveys_due"], figures["surveys_answered"], figures["completion"]) == (2, 1, 0.5)
    # Dose days 0, 3, 6 of the protocol's every-third-day schedule have come by study day 7; 0 and 3 are logged.
    assert (figures["doses_planned"], figures["doses_logged"]) == (3, 2)
    assert figures["dose_adherence"] == round(2 / 3, 3)
    for _ in range(30):
        make_participant(trial=trial, site=site_ldn)
    rows, many = list_queries()
    assert len(rows) == 31
    assert many == one
