"""Self-blinding kits through the phone API: envelope codes recorded across four periods; wrong, reused and
another participant's codes refused without a word about conditions; replays harmless; the kit_code item of
the weekly envelope survey; a missed envelope survey raising a coordinator task."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from participants.kit_models import KitEnvelope
from participants.services.kits import (
    kit_check_character,
    kit_code_format,
    kit_code_normalise,
    kit_period_of,
)
from surveys.models import CoordinatorTask, Response, SurveyInstance

from .factories import auth
from .kit_helpers import load_self_blinding_trial, randomised_participant

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _at_midday(midday):
    """Events hours or days before "now" through the API: the clock at 12:00 UTC (conftest.midday)."""


@pytest.fixture
def sb():
    return load_self_blinding_trial()


def post_kit(client, body, key=None):
    return client.post("/api/v1/kit", body, format="json", HTTP_IDEMPOTENCY_KEY=str(key or uuid.uuid4()))


def test_codes_carry_a_check_character_from_the_unambiguous_alphabet():
    assert kit_check_character("ACDEF") == kit_check_character("ACDEF")
    body = "K7QFM"
    code = body + kit_check_character(body)
    assert kit_code_normalise(code.lower()) == code
    assert kit_code_normalise(kit_code_format(code)) == code
    # Any single substituted character, and a swap of two different neighbours, fails the check.
    for i in range(5):
        for c in "ACDEFGHJKMNPQRTUVWXY345679":
            if c != code[i]:
                assert kit_code_normalise(code[:i] + c + code[i + 1 :]) is None
    assert kit_code_normalise(code[1] + code[0] + code[2:]) is None
    assert kit_code_normalise("ABCDE0") is None and kit_code_normalise(None) is None


def test_kit_made_at_randomisation_from_the_allocation(sb):
    trial, site = sb
    participant, _ = randomised_participant(trial=trial, site=site, randomised_at=timezone.now() - timedelta(days=2))
    envelopes = list(KitEnvelope.objects.filter(participant=participant).select_related("condition"))
    assert len(envelopes) == 8  # four per condition, two conditions
    assert {e.condition.code for e in envelopes} == {"MD", "PL"}
    assert all(kit_code_normalise(e.code) == e.code for e in envelopes)
    # The allocated arm's envelopes are label set 1.
    allocated = participant.allocation.slot.arm_id
    assert {e.label_set for e in envelopes if e.condition_id == allocated} == {1}
    assert all(e.period is None for e in envelopes)


def test_four_periods_recorded_through_the_api(sb, api_client):
    trial, site = sb
    # Randomised 23 days ago: periods start on days 1, 8, 15 and 22, so all four have started.
    participant, key = randomised_participant(trial=trial, site=site, randomised_at=timezone.now() - timedelta(days=23))
    other, _ = randomised_participant(trial=trial, site=site, randomised_at=timezone.now() - timedelta(days=23))
    assert kit_period_of(participant=participant, at=timezone.now()) == 4
    auth(api_client, key)
    codes = list(KitEnvelope.objects.filter(participant=participant).order_by("?").values_list("code", flat=True))
    foreign = KitEnvelope.objects.filter(participant=other).values_list("code", flat=True).first()

    first_key = uuid.uuid4()
    r = post_kit(api_client, {"code": kit_code_format(codes[0]).lower(), "period": 1}, first_key)
    assert r.status_code == 201, r.content
    assert r.json()["period"] == 1 and r.json()["code"] == kit_code_format(codes[0])
    assert set(r.json()) == {"id", "code", "period", "recorded_at", "survey"}  # no condition, no label set
    # Replay with the same key: the first answer, 200, nothing new.
    again = post_kit(api_client, {"code": kit_code_format(codes[0]).lower(), "period": 1}, first_key)
    assert again.status_code == 200 and again.json() == r.json()

    def refused(body, expected):
        resp = post_kit(api_client, body)
        assert resp.status_code == 400, resp.content
        error = resp.json()["error"]
        assert error["code"] == "validation_error" and expected in error["fields"]["code"][0]
        text = resp.content.decode().lower()
        assert "micro" not in text and "empty" not in text and "placebo" not in text
        return error

    refused({"code": codes[0], "period": 2}, "already been recorded")  # reused
    refused({"code": foreign, "period": 2}, "another participant")  # foreign
    wrong = codes[1][:-1] + ("A" if codes[1][-1] != "A" else "C")
    refused({"code": wrong, "period": 2}, "not one of your envelope codes")  # mistyped: check character
    refused({"code": "zzz", "period": 2}, "not one of your envelope codes")

    for period, code in enumerate(codes[1:4], 2):
        r = post_kit(api_client, {"code": code, "period": period})
        assert r.status_code == 201, r.content
    # The current period (4) is the default, and it now has its envelope.
    refused({"code": codes[4]}, "already recorded for this period")
    recorded = dict(
        KitEnvelope.objects.filter(participant=participant).exclude(period=None).values_list("period", "code")
    )
    assert recorded == {1: codes[0], 2: codes[1], 3: codes[2], 4: codes[3]}

    status = api_client.get("/api/v1/kit")
    assert status.status_code == 200
    assert [p["recorded"] for p in status.json()["periods"]] == [True, True, True, True]
    assert "condition" not in status.content.decode()


def test_period_not_started_and_outside_the_trial(sb, api_client):
    trial, site = sb
    participant, key = randomised_participant(trial=trial, site=site, randomised_at=timezone.now() - timedelta(hours=2))
    auth(api_client, key)
    code = KitEnvelope.objects.filter(participant=participant).values_list("code", flat=True).first()
    r = post_kit(api_client, {"code": code})
    # Day 0: the first period starts on day 1.
    assert r.status_code == 409 and r.json()["error"]["code"] == "window_not_open"
    assert not KitEnvelope.objects.filter(participant=participant, period__isnull=False).exists()
    r = post_kit(api_client, {"code": 123})
    assert r.status_code == 400


def test_envelope_survey_item_records_the_period_and_the_scan_answers_it(sb, api_client):
    trial, site = sb
    now = timezone.now()
    # Randomised just over a day ago: period 1's envelope survey (day 1, 08:00 local, 48 h) is open.
    participant, key = randomised_participant(trial=trial, site=site, randomised_at=now - timedelta(days=1, hours=10))
    auth(api_client, key)
    codes = list(KitEnvelope.objects.filter(participant=participant).values_list("code", flat=True))
    survey = SurveyInstance.objects.get(participant=participant, schedule_key="envelope", study_day=1)
    assert survey.opens_at <= now < survey.closes_at

    # Typed into the survey: a foreign or wrong code refuses the answer, field answers.envelope_code.
    r = api_client.post(
        f"/api/v1/surveys/{survey.uuid}/response",
        {"answers": {"envelope_code": "ACDEFG"}, "authored": now.isoformat()},
        format="json",
        HTTP_IDEMPOTENCY_KEY=str(uuid.uuid4()),
    )
    assert r.status_code == 400 and "answers.envelope_code" in r.json()["error"]["fields"]
    assert not Response.objects.filter(instance=survey).exists()

    # Scanned instead: the envelope is recorded and the envelope survey answered with it (its reminders stop).
    r = post_kit(api_client, {"code": codes[0]})
    assert r.status_code == 201, r.content
    assert r.json()["survey"] == str(survey.uuid)
    survey.refresh_from_db()
    assert survey.status == "completed"
    assert Response.objects.get(instance=survey).answers == {"envelope_code": codes[0]}


def test_missed_envelope_survey_raises_a_coordinator_task(sb):
    from surveys.reminders.services import instances_mark_missed
    from trialsite.outbox import outbox_deliver_pending

    trial, site = sb
    now = timezone.now()
    participant, _ = randomised_participant(trial=trial, site=site, randomised_at=now - timedelta(days=4))
    recorded, _ = randomised_participant(trial=trial, site=site, randomised_at=now - timedelta(days=4))
    from participants.services.kits import kit_envelope_record

    code = KitEnvelope.objects.filter(participant=recorded).values_list("code", flat=True).first()
    kit_envelope_record(participant=recorded, code=code, period=1, now=now)  # recorded late, before the sweep

    instances_mark_missed(now=now)
    outbox_deliver_pending()
    tasks = CoordinatorTask.objects.filter(kind="kit_code_missing")
    assert [t.participant_id for t in tasks] == [participant.pk]
    assert tasks[0].details["period"] == 1 and "period 1" in tasks[0].title
    # A second sweep raises nothing new.
    instances_mark_missed(now=now)
    outbox_deliver_pending()
    assert CoordinatorTask.objects.filter(kind="kit_code_missing").count() == 1


def test_code_typed_into_the_envelope_survey_records_its_period_once(sb, api_client):
    trial, site = sb
    now = timezone.now()
    participant, key = randomised_participant(trial=trial, site=site, randomised_at=now - timedelta(days=1, hours=10))
    auth(api_client, key)
    code = KitEnvelope.objects.filter(participant=participant).values_list("code", flat=True).last()
    survey = SurveyInstance.objects.get(participant=participant, schedule_key="envelope", study_day=1)
    item = {
        "kind": "response",
        "idempotency_key": str(uuid.uuid4()),
        "instance": str(survey.uuid),
        "answers": {"envelope_code": kit_code_format(code).lower()},
        "authored": now.isoformat(),
    }
    for _ in range(2):  # the offline queue flushed twice
        r = api_client.post("/api/v1/sync", {"items": [item]}, format="json")
        assert r.status_code == 200 and r.json()["results"][0]["status"] in (200, 201), r.content
    envelope = KitEnvelope.objects.get(code=code)
    assert (envelope.period, envelope.recorded_source) == (1, "sync")
    assert Response.objects.get(instance=survey).answers == {"envelope_code": code}
    assert KitEnvelope.objects.filter(participant=participant, period__isnull=False).count() == 1


def test_a_locked_participant_cannot_record_an_envelope(sb, api_client, make_staff):
    from participants.services.records import participant_lock

    trial, site = sb
    participant, key = randomised_participant(trial=trial, site=site, randomised_at=timezone.now() - timedelta(days=9))
    code = KitEnvelope.objects.filter(participant=participant).values_list("code", flat=True).first()
    auth(api_client, key)
    participant_lock(participant=participant, actor=make_staff("data_manager", trial=trial), reason="database lock")
    r = post_kit(api_client, {"code": code, "period": 1})
    assert r.status_code == 409, r.content
    assert r.json()["error"]["code"] == "conflict" and "locked" in r.json()["error"]["message"]
    assert not KitEnvelope.objects.filter(participant=participant, period__isnull=False).exists()


def test_correcting_the_typed_code_moves_the_periods_envelope_with_it(sb, api_client, client, make_staff):
    """A data manager corrects a mistyped envelope code in the admin: the envelope table follows the corrected
    answer (the analysis reads conditions from it); a code the phone would refuse is refused here too."""
    from django.urls import reverse

    from surveys.models import ItemAnswer

    trial, site = sb
    now = timezone.now()
    participant, key = randomised_participant(trial=trial, site=site, randomised_at=now - timedelta(days=1, hours=10))
    other, _ = randomised_participant(trial=trial, site=site, randomised_at=now - timedelta(days=1, hours=10))
    auth(api_client, key)
    typed, meant = KitEnvelope.objects.filter(participant=participant).values_list("code", flat=True)[:2]
    foreign = KitEnvelope.objects.filter(participant=other).values_list("code", flat=True).first()
    survey = SurveyInstance.objects.get(participant=participant, schedule_key="envelope", study_day=1)
    r = api_client.post(
        f"/api/v1/surveys/{survey.uuid}/response",
        {"answers": {"envelope_code": typed}, "authored": now.isoformat()},
        format="json",
        HTTP_IDEMPOTENCY_KEY=str(uuid.uuid4()),
    )
    assert r.status_code == 201, r.content
    assert KitEnvelope.objects.get(code=typed).period == 1

    item = ItemAnswer.objects.get(response__instance=survey, item_key="envelope_code")
    client.force_login(make_staff("data_manager", trial=trial))
    url = reverse("admin:surveys_itemanswer_change", args=[item.pk])

    refused = client.post(url, {"value": f'"{kit_code_format(foreign)}"', "change_reason": "paper log"})
    assert refused.status_code == 200
    assert "belongs to another participant" in refused.content.decode()
    assert KitEnvelope.objects.get(code=typed).period == 1 and KitEnvelope.objects.get(code=foreign).period is None

    done = client.post(url, {"value": f'"{kit_code_format(meant)}"', "change_reason": "paper log shows the code"})
    assert done.status_code == 302, done.content.decode()[:2000]
    cleared, recorded = KitEnvelope.objects.get(code=typed), KitEnvelope.objects.get(code=meant)
    assert (cleared.period, cleared.recorded_at, cleared.recorded_source) == (None, None, "")
    assert (recorded.period, recorded.recorded_source) == (1, "admin")
    assert Response.objects.get(instance=survey).answers["envelope_code"] == meant
    assert KitEnvelope.objects.filter(participant=participant, period__isnull=False).count() == 1
