"""The coordinator's, safety physician's and data manager's work in the admin, through the real pages."""

from __future__ import annotations

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.core.exceptions import PermissionDenied
from django.db import IntegrityError, InternalError, ProgrammingError, transaction
from django.urls import reverse

from participants.models import (
    AlertStatus,
    ConsentSignature,
    Participant,
    ParticipantStatus,
    SafetyAlert,
    UnblindingRequest,
    Withdrawal,
)
from participants.tests import factories
from trialsite.tests.admin_data import add_participant, allocate

ELIGIBLE = {f"elig_{criterion}": "on" for criterion in factories.ELIGIBLE}  # the admin form's checkboxes


@pytest.fixture
def coordinator(trial, site_ldn, make_staff):
    return make_staff("coordinator", site=site_ldn, username="coord")


def _register(client, trial, site, **extra):
    data = {"trial": trial.pk, "site": site.pk, "timezone": "Europe/London", "name": "Ann Example", **extra}
    return client.post(reverse("admin:participants_participant_add"), data)


def test_coordinator_registers_and_sees_a_printable_code_with_qr(client, trial, site_ldn, coordinator):
    from participants.services import participant_enrol

    client.force_login(coordinator)
    form = client.get(reverse("admin:participants_participant_add"))
    assert form.status_code == 200 and "Eligibility checklist" in form.content.decode()
    response = _register(client, trial, site_ldn, **ELIGIBLE)
    participant = Participant.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:participants_participant_code", args=[participant.pk])
    page = client.get(response["Location"]).content.decode()
    assert participant.study_id in page and "<svg" in page and "window.print()" in page
    code = page.split('id="enrolment-code">')[1].split("<")[0]
    enrolled, _token = participant_enrol(code=code, device={"platform": "ios"})
    assert enrolled.pk == participant.pk


def test_registration_form_ignores_a_trial_without_a_protocol(client, trial, site_ldn, coordinator):
    from trialsite.models import Trial

    draft = Trial.objects.create(slug="aaa-draft", title="Created in the admin, protocol not loaded yet")
    draft.sites.add(site_ldn)
    client.force_login(coordinator)
    form = client.get(reverse("admin:participants_participant_add"))
    assert form.status_code == 200 and "Eligibility checklist" in form.content.decode()
    assert "aaa-draft" not in form.content.decode()


def test_reissuing_the_code_kills_the_old_one(client, trial, site_ldn, coordinator):
    client.force_login(coordinator)
    _register(client, trial, site_ldn, **ELIGIBLE)
    participant = Participant.objects.get()
    url = reverse("admin:participants_participant_code", args=[participant.pk])
    first = client.get(url).content.decode().split('id="enrolment-code">')[1].split("<")[0]
    second = client.post(url).content.decode().split('id="enrolment-code">')[1].split("<")[0]
    assert first != second
    from participants.services import participant_enrol
    from participants.services.errors import InvalidEnrolmentCode

    with pytest.raises(InvalidEnrolmentCode):
        participant_enrol(code=first, device={})


def test_ineligible_registration_is_a_screen_failure_without_code(client, trial, site_ldn, coordinator):
    client.force_login(coordinator)
    data = {**ELIGIBLE}
    del data["elig_not_pregnant"]
    response = _register(client, trial, site_ldn, **data)
    participant = Participant.objects.get()
    assert participant.status == ParticipantStatus.SCREEN_FAILED
    assert response["Location"] == reverse("admin:participants_participant_change", args=[participant.pk])


def test_coordinator_cannot_register_at_another_site(client, trial, site_nyc, coordinator):
    client.force_login(coordinator)
    response = _register(client, trial, site_nyc, **ELIGIBLE)
    assert response.status_code == 200 and "site" in response.context["form"].errors
    assert not Participant.objects.exists()


def test_monitor_cannot_register(client, trial, make_staff):
    client.force_login(make_staff("monitor"))
    assert client.get(reverse("admin:participants_participant_add")).status_code == 403


def _action(client, url, action, objs, **data):
    payload = {"action": action, ACTION_CHECKBOX_NAME: [o.pk for o in objs], **data}
    return client.post(url, payload)


def test_withdraw_action_asks_scope_and_reason(client, trial, site_ldn, coordinator):
    participant = add_participant(trial=trial, site=site_ldn, coordinator=coordinator, n_instances=1)
    client.force_login(coordinator)
    url = reverse("admin:participants_participant_changelist")
    form = _action(client, url, "withdraw", [participant])
    assert form.status_code == 200 and "scope" in form.content.decode()
    done = _action(client, url, "withdraw", [participant], confirm="1", scope="all", reason="moved abroad")
    assert done.status_code == 302
    withdrawal = Withdrawal.objects.get(participant=participant)
    assert withdrawal.scope == "all" and withdrawal.reason == "moved abroad" and withdrawal.recorded_by == coordinator


def test_record_paper_consent_action(client, trial, site_ldn, coordinator):
    from participants.services import participant_register

    participant, _ = participant_register(
        trial=trial, site=site_ldn, tz="Europe/London", eligibility={k[5:]: True for k in ELIGIBLE}, user=coordinator
    )
    document = trial.consent_documents.order_by("valid_from").first()
    client.force_login(coordinator)
    url = reverse("admin:participants_participant_changelist")
    _action(
        client,
        url,
        "record_paper_consent",
        [participant],
        confirm="1",
        document=document.pk,
        signed_on="2026-01-05 10:00",
        paper_reference="binder 3 / page 12",
    )
    signature = ConsentSignature.objects.get(participant=participant)
    assert signature.method == "paper" and signature.paper_reference == "binder 3 / page 12"


def test_safety_queue_acknowledge_with_note(client, trial, site_ldn, coordinator, make_staff):
    participant = add_participant(trial=trial, site=site_ldn, coordinator=coordinator, n_instances=1)
    alert = SafetyAlert.objects.get(participant=participant)
    url = reverse("admin:participants_safetyalert_changelist")
    client.force_login(coordinator)
    assert participant.study_id in client.get(url).content.decode()
    _action(client, url, "acknowledge", [alert], confirm="1", note="called")
    alert.refresh_from_db()
    assert alert.status == AlertStatus.OPEN  # coordinators see the queue; clinicians acknowledge
    physician = make_staff("safety_physician", site=site_ldn)
    client.force_login(physician)
    empty_note = _action(client, url, "acknowledge", [alert], confirm="1", note="")
    assert empty_note.status_code == 200
    _action(client, url, "acknowledge", [alert], confirm="1", note="called, safety plan agreed")
    alert.refresh_from_db()
    assert alert.status == AlertStatus.ACKNOWLEDGED and alert.acknowledged_by == physician
    assert participant.study_id not in client.get(url).content.decode()  # default view: needs acknowledgement
    assert participant.study_id in client.get(url, {"state": "done"}).content.decode()


def test_serious_adverse_event_entered_by_staff_alerts_at_once(client, trial, site_ldn, coordinator, make_staff):
    participant = add_participant(trial=trial, site=site_ldn, coordinator=coordinator, n_instances=1)
    physician = make_staff("safety_physician", site=site_ldn)
    client.force_login(physician)
    before = SafetyAlert.objects.count()
    response = client.post(
        reverse("admin:participants_adverseevent_add"),
        {
            "participant": participant.pk,
            "onset": "2026-01-10",
            "description": "admitted with chest pain",
            "severity_grade": 3,
            "serious": "on",
            "seriousness_criteria": ["hospitalisation"],
            "relatedness": "possible",
            "action_taken": "interrupted",
            "outcome": "recovering",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    assert participant.adverse_events.get().reported_by == physician
    assert SafetyAlert.objects.count() == before + 1


def test_adverse_event_serious_without_criteria_is_refused_on_the_form(client, trial, site_ldn, coordinator):
    participant = add_participant(trial=trial, site=site_ldn, coordinator=coordinator, n_instances=1)
    client.force_login(coordinator)
    response = client.post(
        reverse("admin:participants_adverseevent_add"),
        {
            "participant": participant.pk,
            "onset": "2026-01-10",
            "description": "x",
            "severity_grade": 3,
            "serious": "on",
            "relatedness": "possible",
            "action_taken": "none",
            "outcome": "unknown",
        },
    )
    assert response.status_code == 200 and not participant.adverse_events.exists()


def test_emergency_unblinding_request_approve_reveal(client, trial, site_ldn, coordinator, make_staff):
    participant = add_participant(trial=trial, site=site_ldn, coordinator=coordinator, n_instances=1)
    allocate(participant, trial=trial)
    physician = make_staff("safety_physician", site=site_ldn)
    manager = make_staff("trial_manager")
    client.force_login(coordinator)
    assert client.get(reverse("admin:participants_unblindingrequest_add")).status_code == 403
    client.force_login(physician)
    client.post(
        reverse("admin:participants_unblindingrequest_add"),
        {"participant": participant.pk, "reason": "serious reaction, treating clinician needs to know"},
    )
    req = UnblindingRequest.objects.get()
    change = reverse("admin:participants_unblindingrequest_change", args=[req.pk])
    assert "Reveal the allocation" not in client.get(change).content.decode()  # not approved yet
    client.force_login(manager)
    _action(
        client, reverse("admin:participants_unblindingrequest_changelist"), "approve", [req], confirm="1", note="agreed"
    )
    req.refresh_from_db()
    assert req.status == "approved" and req.decided_by == manager
    page = client.get(change).content.decode()
    assert "Reveal the allocation" not in page  # only the requester may reveal
    client.force_login(physician)
    revealed = client.post(change, {"_reveal": "1"}).content.decode()
    assert "unblinding-revealed" in revealed
    assert ("placebo" in revealed) or ("psilocybin micro-dose" in revealed)


def test_unblinding_request_refusals_are_form_errors_not_500(client, trial, site_ldn, coordinator, make_staff):
    randomised = add_participant(trial=trial, site=site_ldn, coordinator=coordinator, n_instances=1)
    allocate(randomised, trial=trial)
    not_randomised = add_participant(trial=trial, site=site_ldn, coordinator=coordinator, n_instances=1)
    client.force_login(make_staff("safety_physician", site=site_ldn))
    url = reverse("admin:participants_unblindingrequest_add")
    short = client.post(url, {"participant": randomised.pk, "reason": "urgent"})
    assert short.status_code == 200 and "clinical reason" in short.content.decode()
    early = client.post(url, {"participant": not_randomised.pk, "reason": "serious reaction, clinician must know"})
    assert early.status_code == 200 and "not randomised" in early.content.decode()
    assert not UnblindingRequest.objects.exists()


def test_reveal_before_approval_is_a_message_not_500(client, trial, site_ldn, coordinator, make_staff):
    participant = add_participant(trial=trial, site=site_ldn, coordinator=coordinator, n_instances=1)
    allocate(participant, trial=trial)
    physician = make_staff("safety_physician", site=site_ldn)
    client.force_login(physician)
    client.post(
        reverse("admin:participants_unblindingrequest_add"),
        {"participant": participant.pk, "reason": "serious reaction, treating clinician needs to know"},
    )
    req = UnblindingRequest.objects.get()
    page = client.post(reverse("admin:participants_unblindingrequest_change", args=[req.pk]), {"_reveal": "1"})
    assert page.status_code == 200
    body = page.content.decode()
    assert "not been approved" in body and "unblinding-revealed" not in body
    req.refresh_from_db()
    assert req.status == "requested"


# --- data quality -------------------------------------------------------------------------------------------


@pytest.fixture
def answered(trial, site_ldn, coordinator):
    from surveys.models import Response

    participant = add_participant(trial=trial, site=site_ldn, coordinator=coordinator, n_instances=1)
    return Response.objects.get(participant=participant, instance__schedule_key="daily")  # not a baseline answer


def test_data_query_thread_raise_answer_close(client, answered, coordinator, make_staff):
    from surveys.models import DataQuery, DataQueryMessage

    manager = make_staff("data_manager")
    client.force_login(manager)
    _action(
        client,
        reverse("admin:surveys_response_changelist"),
        "raise_query",
        [answered],
        confirm="1",
        subject="mood 40 but notes say great day",
        item_key="mood",
        message="please check with the participant",
    )
    query = DataQuery.objects.get()
    assert query.status == "open" and query.item_key == "mood"
    change = reverse("admin:surveys_dataquery_change", args=[query.pk])
    client.force_login(coordinator)
    page = client.get(change).content.decode()
    assert "please check with the participant" in page and "Close the query" not in page
    client.post(change, {"_reply": "1", "body": "participant confirms 40"})
    query.refresh_from_db()
    assert query.status == "answered"
    client.post(change, {"_close": "1", "body": ""})
    query.refresh_from_db()
    assert query.status == "answered"  # only data managers close
    client.force_login(manager)
    client.post(change, {"_close": "1", "body": "thanks"})
    query.refresh_from_db()
    assert query.status == "closed" and query.closed_by == manager
    assert list(query.messages.values_list("body", flat=True)) == [
        "please check with the participant",
        "participant confirms 40",
        "thanks",
    ]
    message = DataQueryMessage.objects.first()
    with pytest.raises((InternalError, IntegrityError, ProgrammingError)), transaction.atomic():
        DataQueryMessage.objects.filter(pk=message.pk).update(body="rewritten")
    with pytest.raises((InternalError, IntegrityError, ProgrammingError)), transaction.atomic():
        DataQueryMessage.objects.filter(pk=message.pk).delete()


def test_coordinator_cannot_raise_data_queries(client, answered, coordinator):
    client.force_login(coordinator)
    page = client.get(reverse("admin:surveys_response_changelist")).content.decode()
    assert "raise_query" not in page


def test_dataquery_closed_needs_closer_constraint(answered, make_staff):
    from surveys.models import DataQuery

    manager = make_staff("data_manager")
    query = DataQuery(
        participant=answered.participant, response=answered, subject="s", raised_by=manager, status="closed"
    )
    with pytest.raises(Exception, match="closed"):
        query.full_clean()
    with pytest.raises(IntegrityError), transaction.atomic():
        DataQuery.objects.create(
            participant=answered.participant, response=answered, subject="s", raised_by=manager, status="closed"
        )


def test_editing_submitted_answers_needs_a_reason_and_lands_in_the_audit(client, answered, make_staff):
    from pghistory.models import Events

    from surveys.models import ItemAnswer

    item = ItemAnswer.objects.get(response=answered, item_key="mood")
    url = reverse("admin:surveys_itemanswer_change", args=[item.pk])
    manager = make_staff("data_manager")
    client.force_login(manager)
    refused = client.post(url, {"value": "45", "change_reason": ""})
    assert refused.status_code == 200 and "reason" in refused.content.decode().lower()
    item.refresh_from_db()
    assert item.value == 40
    done = client.post(url, {"value": "45", "change_reason": "transcription error, source document checked"})
    assert done.status_code == 302
    item.refresh_from_db()
    assert item.value == 45
    event = Events.objects.tracks(item).filter(pgh_label="update").get()
    assert event.pgh_context["reason"] == "transcription error, source document checked"
    assert event.pgh_context["user"] == manager.pk


def test_locked_records_cannot_be_edited(client, answered, coordinator, make_staff):
    from surveys.models import ItemAnswer

    manager = make_staff("data_manager")
    client.force_login(manager)
    client.post(reverse("admin:surveys_response_changelist"), {"action": "lock", ACTION_CHECKBOX_NAME: [answered.pk]})
    answered.refresh_from_db()
    assert answered.locked
    item = ItemAnswer.objects.get(response=answered, item_key="mood")
    url = reverse("admin:surveys_itemanswer_change", args=[item.pk])
    assert client.post(url, {"value": "1", "change_reason": "should not work"}).status_code == 403
    item.refresh_from_db()
    assert item.value == 40
    client.force_login(coordinator)
    assert client.post(url, {"value": "1", "change_reason": "not a data manager"}).status_code == 403


# --- dashboard ----------------------------------------------------------------------------------------------


def test_trial_dashboard_plots_and_tables_for_own_sites(client, trial, site_ldn, site_nyc, coordinator, make_staff):
    add_participant(trial=trial, site=site_ldn, coordinator=coordinator, n_instances=2)
    add_participant(trial=trial, site=site_nyc, coordinator=coordinator, n_instances=2)
    client.force_login(coordinator)
    index = client.get(reverse("admin:index")).content.decode()
    assert reverse("admin:trial_dashboard") in index
    page = client.get(reverse("admin:trial_dashboard")).content.decode()
    assert page.count("<svg") >= 2 and "CONSORT" in page
    consort = page.split('id="consort"')[1].split("</table>")[0]
    assert "<td>LDN</td>" in consort and "<td>NYC</td>" not in consort
    client.force_login(make_staff("trial_manager"))
    consort = client.get(reverse("admin:trial_dashboard")).content.decode().split('id="consort"')[1]
    assert "<td>LDN</td>" in consort and "<td>NYC</td>" in consort


def test_contact_details_need_a_purpose_are_recorded_and_stay_with_the_site(
    client, trial, site_ldn, coordinator, make_staff
):
    from participants.models import ContactAccess

    participant = add_participant(trial=trial, site=site_ldn, coordinator=coordinator, n_instances=1)
    url = reverse("admin:participants_participant_contact", args=[participant.pk])
    client.force_login(coordinator)
    assert "A Person" not in client.get(url).content.decode()
    assert "A Person" not in client.post(url, {"purpose": ""}).content.decode()
    shown = client.post(url, {"purpose": "safety follow-up call"}).content.decode()
    assert "A Person" in shown
    assert ContactAccess.objects.get().purpose == "safety follow-up call"
    client.force_login(make_staff("monitor"))
    with pytest.raises(PermissionDenied):
        from participants.services import contact_view

        contact_view(participant=participant, user=make_staff("statistician"), purpose="curious")
    response = client.post(url, {"purpose": "source data verification"})
    assert response.status_code == 403 and ContactAccess.objects.count() == 1


def test_randomise_action_refuses_without_consent_and_says_why(client, trial, site_ldn, coordinator):
    from participants.services import participant_register

    participant, _ = participant_register(
        trial=trial, site=site_ldn, tz="Europe/London", eligibility={k[5:]: True for k in ELIGIBLE}, user=coordinator
    )
    client.force_login(coordinator)
    url = reverse("admin:participants_participant_changelist")
    response = client.post(url, {"action": "randomise", ACTION_CHECKBOX_NAME: [participant.pk]}, follow=True)
    assert response.status_code == 200
    messages = [str(m) for m in response.context["messages"]]
    assert any(participant.study_id in m for m in messages)
    participant.refresh_from_db()
    assert participant.status == ParticipantStatus.REGISTERED and not hasattr(participant, "allocation")


def test_participant_dropdowns_offer_only_own_sites(client, trial, site_ldn, site_nyc, coordinator):
    ldn = add_participant(trial=trial, site=site_ldn, coordinator=coordinator, n_instances=1)
    nyc = add_participant(trial=trial, site=site_nyc, coordinator=coordinator, n_instances=1)
    client.force_login(coordinator)
    form = client.get(reverse("admin:participants_adverseevent_add")).content.decode()
    assert ldn.study_id in form and nyc.study_id not in form
    response = client.post(
        reverse("admin:participants_adverseevent_add"),
        {
            "participant": nyc.pk,
            "onset": "2026-01-10",
            "description": "x",
            "severity_grade": 1,
            "relatedness": "unlikely",
            "action_taken": "none",
            "outcome": "unknown",
        },
    )
    assert response.status_code == 200 and not nyc.adverse_events.exists()
