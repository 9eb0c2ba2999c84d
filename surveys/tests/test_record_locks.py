"""Record locks and token revocation, through the one policy (trialsite.policy), on every path.

A locked participant's phone can no longer change their data: the phone API, /sync and FHIR answer 409
`conflict` in the contract's error shape, saying why. A locked response refuses corrections. Staff revoke a lost
phone's tokens; the phone is then signed out (401) and the revocation is in the audit trail.
"""

from __future__ import annotations

import uuid

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone
from pghistory.models import Events

from participants.models import Participant
from participants.services import participant_lock, participant_tokens_revoke
from surveys.data_queries import response_lock
from surveys.models import DoseLog, ItemAnswer, Response, SurveyInstance
from surveys.services.responses import item_answer_correct
from trialsite import policy

from .factories import PHQ9_MILD
from .test_api_phone import _qr

REASON = "database lock for the interim analysis"


def _submit(phone, instance, answers):
    stamp = timezone.now().isoformat()
    return phone.post(
        f"/api/v1/surveys/{instance.uuid}/response",
        {"answers": answers, "authored": stamp},
        format="json",
        HTTP_IDEMPOTENCY_KEY=str(uuid.uuid4()),
    )


def test_a_locked_participants_phone_changes_nothing_anywhere(phone, make_staff):
    p = phone.participant
    baseline = SurveyInstance.objects.filter(participant=p, schedule_key="baseline_phq9").get()
    with pytest.raises(PermissionDenied):
        participant_lock(participant=p, actor=make_staff("coordinator", site=p.site), reason=REASON)
    participant_lock(participant=p, actor=make_staff("data_manager"), reason=REASON)
    p.refresh_from_db()
    assert p.locked

    answered = _submit(phone, baseline, PHQ9_MILD)
    assert answered.status_code == 409
    error = answered.json()["error"]
    assert error["code"] == "conflict" and "locked by data management" in error["message"]
    dose = phone.post(
        "/api/v1/doses",
        {"taken_at": timezone.now().isoformat()},
        format="json",
        HTTP_IDEMPOTENCY_KEY=str(uuid.uuid4()),
    )
    assert dose.status_code == 409 and dose.json()["error"]["code"] == "conflict"
    fhir = phone.post("/api/v1/fhir/QuestionnaireResponse", _qr(baseline, PHQ9_MILD), format="json")
    assert fhir.status_code == 409 and "locked" in fhir.json()["error"]["message"]
    key = str(uuid.uuid4())
    synced = phone.post(
        "/api/v1/sync",
        {"items": [{"kind": "dose", "idempotency_key": key, "taken_at": timezone.now().isoformat()}]},
        format="json",
    )
    assert synced.status_code == 200
    result = synced.json()["results"][0]
    assert (result["idempotency_key"], result["status"]) == (key, 409)
    assert result["error"]["code"] == "conflict" and "locked" in result["error"]["message"]
    doc = phone.get("/api/v1/consent").json()
    body = {"version": doc["version"], "sha256": doc["sha256"], "agree": True, "typed_name": "A Person"}
    consent = phone.post("/api/v1/consent", body, format="json")
    assert consent.status_code == 409 and "locked" in consent.json()["error"]["message"]
    assert not Response.objects.filter(participant=p).exists() and not DoseLog.objects.filter(participant=p).exists()
    assert phone.get("/api/v1/me").status_code == 200  # reading is still fine


def test_the_same_phone_submits_before_the_lock(phone):
    """The positive control of the test above: the same requests are accepted on unlocked data."""
    baseline = SurveyInstance.objects.filter(participant=phone.participant, schedule_key="baseline_phq9").get()
    assert _submit(phone, baseline, PHQ9_MILD).status_code == 201


def test_a_locked_response_refuses_corrections(phone, make_staff):
    baseline = SurveyInstance.objects.filter(participant=phone.participant, schedule_key="baseline_phq9").get()
    assert _submit(phone, baseline, PHQ9_MILD).status_code == 201
    response = Response.objects.get(instance=baseline)
    data_manager = make_staff("data_manager")
    item = ItemAnswer.objects.get(response=response, item_key="phq9_1")
    with pytest.raises(PermissionDenied):  # a monitor corrects nothing, locked or not
        item_answer_correct(item_answer=item, value=2, actor=make_staff("monitor"), reason=REASON)
    item_answer_correct(item_answer=item, value=2, actor=data_manager, reason=REASON)
    with pytest.raises(PermissionDenied):
        response_lock(response=response, actor=make_staff("coordinator", site=phone.participant.site))
    response_lock(response=response, actor=data_manager)
    with pytest.raises(ValidationError, match="locked by data management"):
        item_answer_correct(item_answer=item, value=3, actor=data_manager, reason=REASON)
    item.refresh_from_db()
    assert item.value == 2


def test_staff_revoke_a_lost_phones_tokens_audited(phone, make_staff):
    p = phone.participant
    assert phone.get("/api/v1/me").status_code == 200
    with pytest.raises(PermissionDenied):
        participant_tokens_revoke(participant=p, actor=make_staff("statistician"), reason="lost phone")
    assert phone.get("/api/v1/me").status_code == 200
    coordinator = make_staff("coordinator", site=p.site)
    assert participant_tokens_revoke(participant=p, actor=coordinator, reason="phone lost on the bus") == 1
    gone = phone.get("/api/v1/me")
    assert gone.status_code == 401 and gone.json()["error"]["code"] == "not_authenticated"
    events = Events.objects.tracks(Participant.objects.get(pk=p.pk)).order_by("pgh_created_at")
    event = [e for e in events if "tokens_revoked_at" in (e.pgh_diff or {})][-1]
    assert event.pgh_context["reason"] == "phone lost on the bus" and event.pgh_context["user"] == coordinator.pk


def test_policy_knows_no_unknown_action_and_no_anonymous_actor(phone):
    assert not policy.can(None, policy.PARTICIPANT_VIEW, phone.participant)
    assert not policy.can(phone.participant.user, "delete_everything", phone.participant)
    assert not policy.can(policy.SYSTEM, policy.PARTICIPANT_RANDOMISE, phone.participant)
    assert policy.can(policy.SYSTEM, policy.SAFETY_ALERT_ESCALATE, phone.participant)


def _admin_action(client, participant, action, reason):
    from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
    from django.urls import reverse

    data = {"action": action, ACTION_CHECKBOX_NAME: [participant.pk], "confirm": "1", "reason": reason}
    return client.post(reverse("admin:participants_participant_changelist"), data)


def test_the_admin_revokes_a_lost_phone_and_locks_data_through_the_services(phone, client, make_staff):
    p = phone.participant
    client.force_login(make_staff("monitor"))
    _admin_action(client, p, "revoke_tokens", "phone lost")  # not an action a monitor has: nothing happens
    _admin_action(client, p, "lock_data", REASON)
    assert phone.get("/api/v1/me").status_code == 200
    client.force_login(make_staff("coordinator", site=p.site))
    _admin_action(client, p, "lock_data", REASON)  # data management's, not the coordinator's
    _admin_action(client, p, "revoke_tokens", "phone lost on the bus")
    assert phone.get("/api/v1/me").status_code == 401
    assert not Participant.objects.get(pk=p.pk).locked
    client.force_login(make_staff("data_manager"))
    _admin_action(client, p, "lock_data", REASON)
    assert Participant.objects.get(pk=p.pk).locked


def test_a_lost_phone_is_replaced_with_a_new_code_and_the_trial_goes_on(phone, client, make_staff):
    """After revoking a lost phone, the coordinator issues a code (admin page) that links a new phone: the new
    phone reaches the same participant, status and schedule unchanged; the old phone stays signed out; a code
    cannot be used twice, and a participant who withdrew from everything gets none."""
    from django.urls import reverse
    from rest_framework.test import APIClient

    from participants.models import ParticipantStatus
    from participants.services import participant_withdraw

    p = phone.participant
    status, surveys = p.status, phone.get("/api/v1/surveys").json()
    coordinator = make_staff("coordinator", site=p.site)
    participant_tokens_revoke(participant=p, actor=coordinator, reason="phone lost on the bus")
    assert phone.get("/api/v1/me").status_code == 401

    client.force_login(coordinator)
    page = client.post(reverse("admin:participants_participant_code", args=[p.pk]), {"_issue": "1"})
    assert page.status_code == 200
    code = page.context["code"]
    assert code and "Issue a code for a new phone" in page.content.decode()

    new_phone = APIClient()
    enrolled = new_phone.post("/api/v1/enrol", {"code": code, "device": {"platform": "android"}}, format="json")
    assert enrolled.status_code == 201, enrolled.content
    new_phone.credentials(HTTP_AUTHORIZATION=f"Bearer {enrolled.json()['token']}")
    me = new_phone.get("/api/v1/me")
    assert me.status_code == 200 and me.json()["study_id"] == p.study_id
    assert new_phone.get("/api/v1/surveys").json() == surveys
    assert Participant.objects.get(pk=p.pk).status == status
    assert phone.get("/api/v1/me").status_code == 401
    again = APIClient().post("/api/v1/enrol", {"code": code}, format="json")
    assert again.status_code == 400 and again.json()["error"]["code"] == "invalid_enrolment_code"

    participant_withdraw(
        participant=p, actor=coordinator, scope="all", reason="no further contact", by_participant=False
    )
    refused = client.post(reverse("admin:participants_participant_code", args=[p.pk]), {"_issue": "1"})
    assert refused.context["code"] is None and not refused.context["can_issue"]
    assert Participant.objects.get(pk=p.pk).status == ParticipantStatus.WITHDRAWN
