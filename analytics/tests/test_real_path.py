"""Analytics on data made through the real services and API (no simulator): register → enrol → consent →
baseline PHQ-9/GAD-7 answered from the phone → randomise (the stratum from the real baseline score) → daily
answers and doses from the phone → the summary API's completion and adherence equal the figures worked out by hand.

The clock is moved with time-machine (every service reads the wall clock at its interface), day by day."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine

from participants.models import Participant
from participants.tests.conftest import ELIGIBLE

LONDON = ZoneInfo("Europe/London")
PHQ9 = {"A": [2, 2, 2, 2, 2, 1, 1, 1, 1], "B": [1, 1, 1, 1, 1, 1, 0, 0, 0]}  # totals 14 (≥ 10) and 6 (< 10)


def at_local(day0, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day0 + timedelta(days=day), time(hour, minute), tzinfo=LONDON)


def ok(response, status=201):
    assert response.status_code == status, response.content
    return response.json()


@pytest.fixture
def clients(make_staff, site_ldn, call):
    from rest_framework.test import APIClient

    call("allocation_generate", "--trial", "microdose-mood", "--seed", "7", "--per-stratum", "8")
    staff = APIClient()
    staff.force_authenticate(make_staff("coordinator", site=site_ldn))
    return staff, APIClient


def answer(phone, instance_id: str, answers: dict, now: datetime):
    r = phone.post(
        f"/api/v1/surveys/{instance_id}/response",
        {"answers": answers, "authored": now.isoformat()},
        format="json",
        HTTP_IDEMPOTENCY_KEY=str(uuid.uuid4()),
    )
    return ok(r)


def open_surveys(phone) -> dict[str, str]:
    return {s["instrument"]["slug"]: s["id"] for s in ok(phone.get("/api/v1/surveys?status=open"), 200)["results"]}


def test_summary_figures_of_a_trial_made_through_the_api(trial, clients):
    staff, APIClient = clients
    start = datetime.now(UTC).astimezone(LONDON).replace(hour=10, minute=0, second=0, microsecond=0)
    start -= timedelta(days=14)
    phones, people = {}, {}
    with time_machine.travel(start, tick=False):
        for name in ("A", "B"):
            body = {"trial": "microdose-mood", "site": "LDN", "timezone": "Europe/London", "eligibility": ELIGIBLE}
            code = ok(staff.post("/api/v1/staff/participants", body, format="json"))["enrolment_code"]
            phone = APIClient()
            device = {"platform": "ios", "app_version": "1.2", "timezone": "Europe/London"}
            token = ok(phone.post("/api/v1/enrol", {"code": code, "device": device}, format="json"))["token"]
            phone.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
            doc = ok(phone.get("/api/v1/consent"), 200)
            consent = {"version": doc["version"], "sha256": doc["sha256"], "agree": True, "typed_name": name}
            ok(phone.post("/api/v1/consent", consent, format="json"))
            baseline = open_surveys(phone)
            phq9 = {f"phq9_{n}": v for n, v in enumerate(PHQ9[name], 1)}
            answer(phone, baseline["phq9"], phq9, start)
            answer(phone, baseline["gad7"], {f"gad7_{n}": 1 for n in range(1, 8)}, start)
            me = ok(phone.get("/api/v1/me"), 200)
            ok(staff.post(f"/api/v1/staff/participants/{me['id']}/randomise"))
            phones[name], people[name] = phone, Participant.objects.get(uuid=me["id"])
    # The stratum came from the score of the baseline answered through the phone API.
    assert {n: p.stratum for n, p in people.items()} == {"A": "LDN|ge10", "B": "LDN|lt10"}
    day0 = people["A"].day0
    assert day0 == start.date() and people["B"].day0 == day0

    # Days 0–10: A answers every daily survey and logs a dose on each dose day (0, 3, 6, 9); B answers on even
    # days only and logs doses on days 0 and 6, and one on day 7 (not a dose day). Nobody answers the day-7
    # weekly PHQ-9, GAD-7 or blinding guess.
    doses = {"A": {0, 3, 6, 9}, "B": {0, 6, 7}}
    for day in range(0, 11):
        now = at_local(day0, day, 20, 30)
        with time_machine.travel(now, tick=False):
            for name, phone in phones.items():
                if day == 0 and name == "A":  # the baseline expectancy, open 48 h from randomisation: A only
                    expect = {"expect_mood": 70, "expect_wellbeing": 60, "expect_noticeable": 40}
                    answer(phone, open_surveys(phone)["expectancy"], expect, now)
                if day >= 1 and (name == "A" or day % 2 == 0):
                    mood = {"mood": 60, "anxiety": 30, "energy": 55, "focus": 50, "dose_taken": day in doses[name]}
                    answer(phone, open_surveys(phone)["daily-mood"], mood, now)
                if day in doses[name]:
                    dose = {"taken_at": at_local(day0, day, 20).isoformat()}
                    ok(phone.post("/api/v1/doses", dose, format="json", HTTP_IDEMPOTENCY_KEY=str(uuid.uuid4())))

    with time_machine.travel(at_local(day0, 11, 12), tick=False):
        summary = ok(staff.get("/api/v1/staff/analytics/microdose-mood/summary"), 200)
    # Due by day 11 noon, per participant: 2 baseline + the expectancy (closed on day 2) + daily days 1–10 + the 3
    # day-7 surveys (closed on day 9) = 16. Answered: A 2 + 1 + 10 = 13, B 2 + 5 (days 2, 4, 6, 8, 10) = 7.
    assert summary["completion"]["overall"] == {"planned": 32, "answered": 20, "rate": round(20 / 32, 4)}
    weeks = {w["week"]: (w["planned"], w["answered"]) for w in summary["completion"]["by_week"]}
    # Week 0: baseline, expectancy + days 1–6 (9 each; A answered 9, B 2 + 3). Week 1: days 7–10 + the 3 day-7
    # surveys.
    assert weeks == {0: (18, 14), 1: (14, 6)}
    # Dose days come by day 11: 0, 3, 6, 9 (4 each). Logged on them: A 4, B 2 (day 7 is not a dose day).
    assert summary["adherence"]["overall"] == {"planned": 8, "logged": 6, "rate": 0.75}
    dose_weeks = {w["week"]: (w["planned"], w["logged"]) for w in summary["adherence"]["by_week"]}
    assert dose_weeks == {0: (6, 5), 1: (2, 1)}
    assert summary["consort"]["randomised"] == 2
