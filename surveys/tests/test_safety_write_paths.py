"""Every write path of every record a safety rule watches raises the alert: one rule, whatever the door.

The kinds of record are the protocol schema's safety-rule sources (`trialsite.protocol.rules`), not a list
kept here: a new source with no entry in WRITE_PATHS fails `test_every_safety_rule_source_has_its_write_paths`.
Each path stores a record that must fire a rule and checks that exactly the expected alert was raised for it
(and, for corrections, that the reason is in the audit trail).
"""

from __future__ import annotations

import uuid
from datetime import date

import pghistory.models
import pytest
from django.apps import apps
from django.urls import reverse
from django.utils import timezone

from participants.models import AdverseEvent, SafetyAlert
from participants.services import adverse_event_correct, adverse_event_create
from surveys.models import ItemAnswer, Response, SideEffect
from surveys.services import side_effect_correct
from surveys.services.responses import item_answer_correct
from trialsite.protocol.rules import SAFETY_RULE_SOURCES

from .factories import PHQ9_MILD
from .test_api_phone import _qr
from .test_api_responses import baseline, submit

pytestmark = pytest.mark.django_db

PHQ9_ITEM9 = PHQ9_MILD | {"phq9_9": 1}
REASON = "source document check: value misread on entry"

# The record each safety-rule source watches.
SOURCE_MODEL = {
    "response": "surveys.Response",
    "side_effect": "surveys.SideEffect",
    "adverse_event": "participants.AdverseEvent",
}


def reason_audited(model, pk) -> bool:
    events = pghistory.models.Events.objects.filter(pgh_obj_model=model._meta.label, pgh_obj_id=str(pk))
    return any((e.pgh_context or {}).get("reason") == REASON for e in events)


# --- responses: PHQ-9 item 9 above 0 (rule phq9_item9) --------------------------------------------------------


def response_phone_api(ctx):
    r = submit(ctx.phone, baseline(ctx.phone), PHQ9_ITEM9)
    assert r.status_code == 201, r.content
    return "phq9_item9", r.json()["id"]


def response_sync(ctx):
    item = {
        "kind": "response",
        "idempotency_key": str(uuid.uuid4()),
        "instance": str(baseline(ctx.phone).uuid),
        "answers": PHQ9_ITEM9,
        "authored": timezone.now().isoformat(),
    }
    r = ctx.phone.post("/api/v1/sync", {"items": [item]}, format="json")
    assert r.json()["results"][0]["status"] == 201, r.content
    return "phq9_item9", str(Response.objects.get(participant=ctx.phone.participant).uuid)


def response_fhir(ctx):
    body = _qr(baseline(ctx.phone), PHQ9_ITEM9) | {"authored": timezone.now().isoformat()}
    r = ctx.phone.post("/api/v1/fhir/QuestionnaireResponse", body, format="json")
    assert r.status_code == 201, r.content
    return "phq9_item9", str(Response.objects.get(participant=ctx.phone.participant).uuid)


def _mild_response(ctx) -> Response:
    assert submit(ctx.phone, baseline(ctx.phone), PHQ9_MILD).status_code == 201
    assert not SafetyAlert.objects.exists()
    return Response.objects.get(participant=ctx.phone.participant)


def response_admin_correction(ctx):
    response = _mild_response(ctx)
    item = ItemAnswer.objects.get(response=response, item_key="phq9_9")
    ctx.client.force_login(ctx.make_staff("data_manager"))
    done = ctx.client.post(
        reverse("admin:surveys_itemanswer_change", args=[item.pk]), {"value": "1", "change_reason": REASON}
    )
    assert done.status_code == 302
    assert reason_audited(ItemAnswer, item.pk)
    return "phq9_item9", str(response.uuid)


def response_correction_service(ctx):
    response = _mild_response(ctx)
    item = ItemAnswer.objects.get(response=response, item_key="phq9_9")
    item_answer_correct(item_answer=item, value=1, user=ctx.make_staff("data_manager"), reason=REASON)
    assert reason_audited(ItemAnswer, item.pk)
    return "phq9_item9", str(response.uuid)


# --- side effects: serious (rule serious_side_effect) ---------------------------------------------------------

SIDE_EFFECT = {"started_on": "2026-03-01", "description": "fainted", "severity": "severe", "ongoing": False}


def side_effect_phone_api(ctx):
    body = SIDE_EFFECT | {"started_on": timezone.now().date().isoformat(), "serious": True}
    r = ctx.phone.post("/api/v1/side-effects", body, format="json", HTTP_IDEMPOTENCY_KEY=str(uuid.uuid4()))
    assert r.status_code == 201, r.content
    return "serious_side_effect", r.json()["id"]


def side_effect_sync(ctx):
    item = SIDE_EFFECT | {
        "kind": "side_effect",
        "idempotency_key": str(uuid.uuid4()),
        "started_on": timezone.now().date().isoformat(),
        "serious": True,
    }
    r = ctx.phone.post("/api/v1/sync", {"items": [item]}, format="json")
    assert r.json()["results"][0]["status"] == 201, r.content
    return "serious_side_effect", str(SideEffect.objects.get(participant=ctx.phone.participant).uuid)


def _not_serious_side_effect(ctx) -> SideEffect:
    body = SIDE_EFFECT | {"started_on": timezone.now().date().isoformat(), "serious": False}
    r = ctx.phone.post("/api/v1/side-effects", body, format="json", HTTP_IDEMPOTENCY_KEY=str(uuid.uuid4()))
    assert r.status_code == 201
    assert not SafetyAlert.objects.exists()
    return SideEffect.objects.get(uuid=r.json()["id"])


def side_effect_admin_correction(ctx):
    se = _not_serious_side_effect(ctx)
    ctx.client.force_login(ctx.make_staff("data_manager"))
    form = {
        "started_on": se.started_on.isoformat(),
        "description": se.description,
        "severity": se.severity,
        "serious": "on",
        "ongoing": "",
        "change_reason": REASON,
    }
    done = ctx.client.post(reverse("admin:surveys_sideeffect_change", args=[se.pk]), form)
    assert done.status_code == 302, done.content.decode()[:3000]
    se.refresh_from_db()
    assert se.serious
    assert reason_audited(SideEffect, se.pk)
    return "serious_side_effect", str(se.uuid)


def side_effect_correction_service(ctx):
    se = _not_serious_side_effect(ctx)
    side_effect_correct(side_effect=se, user=ctx.make_staff("data_manager"), reason=REASON, serious=True)
    assert reason_audited(SideEffect, se.pk)
    return "serious_side_effect", str(se.uuid)


# --- adverse events: serious (built-in rule serious_adverse_event) -------------------------------------------

AE_FORM = {
    "onset": "2026-03-01",
    "description": "admitted with chest pain",
    "severity_grade": 3,
    "relatedness": "possible",
    "action_taken": "interrupted",
    "outcome": "recovering",
}


def adverse_event_admin_entry(ctx):
    ctx.client.force_login(ctx.make_staff("safety_physician", site=ctx.participant.site))
    form = AE_FORM | {"participant": ctx.participant.pk, "serious": "on", "seriousness_criteria": ["hospitalisation"]}
    done = ctx.client.post(reverse("admin:participants_adverseevent_add"), form)
    assert done.status_code == 302, done.content.decode()[:3000]
    return "serious_adverse_event", str(AdverseEvent.objects.get(participant=ctx.participant).uuid)


def adverse_event_create_service(ctx):
    event = adverse_event_create(
        participant=ctx.participant,
        user=ctx.make_staff("coordinator", site=ctx.participant.site),
        serious=True,
        seriousness_criteria=["hospitalisation"],
        **(AE_FORM | {"onset": date(2026, 3, 1)}),
    )
    return "serious_adverse_event", str(event.uuid)


def _not_serious_adverse_event(ctx) -> AdverseEvent:
    event = adverse_event_create(
        participant=ctx.participant,
        user=ctx.make_staff("coordinator", site=ctx.participant.site),
        serious=False,
        **(AE_FORM | {"onset": date(2026, 3, 1)}),
    )
    assert not SafetyAlert.objects.exists()
    return event


def adverse_event_admin_correction(ctx):
    event = _not_serious_adverse_event(ctx)
    ctx.client.force_login(ctx.make_staff("data_manager"))
    form = AE_FORM | {"serious": "on", "seriousness_criteria": ["hospitalisation"], "change_reason": REASON}
    done = ctx.client.post(reverse("admin:participants_adverseevent_change", args=[event.pk]), form)
    assert done.status_code == 302, done.content.decode()[:3000]
    event.refresh_from_db()
    assert event.serious and event.seriousness_criteria == ["hospitalisation"]
    assert reason_audited(AdverseEvent, event.pk)
    return "serious_adverse_event", str(event.uuid)


def adverse_event_correction_service(ctx):
    event = _not_serious_adverse_event(ctx)
    adverse_event_correct(
        event=event,
        user=ctx.make_staff("safety_physician"),
        reason=REASON,
        serious=True,
        seriousness_criteria=["life_threatening"],
    )
    assert reason_audited(AdverseEvent, event.pk)
    return "serious_adverse_event", str(event.uuid)


WRITE_PATHS = {
    "response": [
        response_phone_api,
        response_sync,
        response_fhir,
        response_admin_correction,
        response_correction_service,
    ],
    "side_effect": [
        side_effect_phone_api,
        side_effect_sync,
        side_effect_admin_correction,
        side_effect_correction_service,
    ],
    "adverse_event": [
        adverse_event_admin_entry,
        adverse_event_create_service,
        adverse_event_admin_correction,
        adverse_event_correction_service,
    ],
}


def test_every_safety_rule_source_has_its_write_paths():
    assert SAFETY_RULE_SOURCES  # read from the protocol schema
    assert set(WRITE_PATHS) == set(SAFETY_RULE_SOURCES) == set(SOURCE_MODEL)
    for source, label in SOURCE_MODEL.items():
        apps.get_model(label)  # each source is a real model
        names = {path.__name__.removeprefix(f"{source}_") for path in WRITE_PATHS[source]}
        # Every source has an interface entry and a correction by staff through a service and the admin.
        assert {"admin_correction", "correction_service"} <= names, source
    # The phone writes each kind it can report: responses (API, sync, FHIR) and side effects (API, sync).
    assert {"phone_api", "sync", "fhir"} <= {p.__name__.removeprefix("response_") for p in WRITE_PATHS["response"]}
    assert {"phone_api", "sync"} <= {p.__name__.removeprefix("side_effect_") for p in WRITE_PATHS["side_effect"]}


class Ctx:
    def __init__(self, phone, client, make_staff):
        self.phone, self.client, self.make_staff = phone, client, make_staff
        self.participant = phone.participant


@pytest.mark.parametrize(
    ("source", "path"),
    [(source, path) for source, paths in WRITE_PATHS.items() for path in paths],
    ids=lambda value: value if isinstance(value, str) else value.__name__,
)
def test_each_write_path_raises_the_alert(source, path, phone, client, make_staff):
    assert not SafetyAlert.objects.exists()
    rule, source_id = path(Ctx(phone, client, make_staff))
    alert = SafetyAlert.objects.get()
    assert (alert.rule, alert.source_kind, alert.source_id) == (rule, source, source_id)
    assert alert.participant_id == phone.participant.pk
    model = apps.get_model(SOURCE_MODEL[source])
    assert model.objects.filter(uuid=source_id).exists()


def test_a_protocol_rule_on_adverse_events_fires_on_entry_and_on_correction(phone, make_staff, demo_protocol_source):
    """`source: adverse_event` rules of the protocol run on every adverse-event write (not only `serious`)."""
    from trialsite.protocol.services import protocol_load

    # The rule goes at the end of safety.rules (the protocol file goes on after that section).
    head, sep, tail = demo_protocol_source.partition("\nlanguage:")
    assert sep, "the demo protocol's safety rules are followed by its language setting"
    amended = (
        head.rstrip()
        + (
            "\n    - key: grade4_adverse_event\n"
            '      title: "Adverse event of grade 4 or more"\n'
            "      source: adverse_event\n"
            "      when: {field: severity_grade, op: gte, value: 4}\n"
            "      severity: high\n"
        )
        + sep
        + tail
    )
    protocol_load(source=amended)
    staff = make_staff("safety_physician")
    entered = adverse_event_create(
        participant=phone.participant,
        user=staff,
        serious=False,
        **(AE_FORM | {"onset": date(2026, 3, 1), "severity_grade": 4}),
    )
    corrected = adverse_event_create(
        participant=phone.participant, user=staff, serious=False, **(AE_FORM | {"onset": date(2026, 3, 2)})
    )
    assert [a.source_id for a in SafetyAlert.objects.all()] == [str(entered.uuid)]
    adverse_event_correct(event=corrected, user=staff, reason=REASON, severity_grade=5)
    assert sorted((a.rule, a.source_id) for a in SafetyAlert.objects.all()) == sorted(
        [("grade4_adverse_event", str(entered.uuid)), ("grade4_adverse_event", str(corrected.uuid))]
    )
    # A second correction of the same event raises nothing new (one alert per rule and record).
    adverse_event_correct(event=corrected, user=staff, reason=REASON, description="grade 5, ICU")
    assert SafetyAlert.objects.count() == 2
