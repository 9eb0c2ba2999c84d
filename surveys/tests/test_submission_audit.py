"""A survey submission's audit trail (issue 14: the submission writes in one prepared statement, its values in one
JSON document, and the event tables index only what the audit trail looks events up by): every row it writes gets
its event under the request's context, and the audit trail and the participant page still list them."""

import uuid

import pghistory.models
import pytest
from django.db import connection
from django.urls import reverse
from django.utils import timezone
from pghistory import core as pgh_core

from surveys.models import ItemAnswer, Response, SurveyInstance

from .factories import PHQ9_MILD

pytestmark = pytest.mark.django_db


def submit(phone, instance, *, key, authored):
    body = {"answers": PHQ9_MILD, "authored": authored}
    r = phone.post(f"/api/v1/surveys/{instance.uuid}/response", body, format="json", HTTP_IDEMPOTENCY_KEY=str(key))
    assert r.status_code == 201, r.json()
    return r


def events_of(model, pks):
    return list(
        pghistory.models.Events.objects.filter(pgh_obj_model=model._meta.label, pgh_obj_id__in=[str(p) for p in pks])
    )


def test_a_submission_writes_every_audit_event_under_the_requests_context(phone):
    instance = SurveyInstance.objects.get(participant=phone.participant, schedule_key="baseline_phq9")
    authored = "2026-03-01T20:15:00+01:00"
    r = submit(phone, instance, key=uuid.uuid4(), authored=authored)
    response = Response.objects.get(uuid=r.json()["id"])
    answers = list(ItemAnswer.objects.filter(response=response).order_by("item_key"))
    assert len(answers) == len(PHQ9_MILD)
    (inserted,) = events_of(Response, [response.pk])
    answer_events = events_of(ItemAnswer, [a.pk for a in answers])
    (completed,) = [e for e in events_of(SurveyInstance, [instance.pk]) if e.pgh_label == "update"]
    assert inserted.pgh_label == "insert"
    assert sorted(e.pgh_data["item_key"] for e in answer_events) == [a.item_key for a in answers]
    assert {e.pgh_data["value"] for e in answer_events} == set(PHQ9_MILD.values())
    # The event rows copy the row as written (values from the JSON document, typed by their columns).
    assert inserted.pgh_data["authored_at"].startswith("2026-03-01T19:15:00")
    assert inserted.pgh_data["authored_offset_minutes"] == 60 and inserted.pgh_data["answers"] == PHQ9_MILD
    assert inserted.pgh_data["participant_id"] == phone.participant.pk
    assert completed.pgh_diff == {"status": ["scheduled", "completed"]}
    # One context for the request's rows: who (the phone's user), where (the URL) and the request id.
    contexts = {e.pgh_context_id for e in (inserted, completed, *answer_events)}
    assert len(contexts) == 1
    context = inserted.pgh_context
    assert context["user"] == phone.participant.user_id
    assert context["url"] == f"/api/v1/surveys/{instance.uuid}/response"
    assert uuid.UUID(context["request_id"])


def test_the_audit_trail_and_the_participant_page_list_a_submissions_events(phone, client, make_staff):
    instance = SurveyInstance.objects.get(participant=phone.participant, schedule_key="baseline_phq9")
    r = submit(phone, instance, key=uuid.uuid4(), authored=timezone.now().isoformat())
    response = Response.objects.get(uuid=r.json()["id"])
    client.force_login(make_staff("data_manager"))
    trail = client.get(reverse("admin:pghistory_events_changelist"), {"participant": phone.participant.study_id})
    assert trail.status_code == 200
    listed = {(e.pgh_obj_model, e.pgh_obj_id, e.pgh_label) for e in trail.context["cl"].result_list}
    assert ("surveys.Response", str(response.pk), "insert") in listed
    assert ("surveys.SurveyInstance", str(instance.pk), "update") in listed
    # An object's own history (the "Events" button of its change page: pgh_obj) lists its answers' events.
    (answer,) = ItemAnswer.objects.filter(response=response, item_key="phq9_1")
    own = client.get(reverse("admin:pghistory_events_changelist"), {"obj": f"surveys.ItemAnswer:{answer.pk}"})
    assert own.status_code == 200
    assert [(e.pgh_obj_id, e.pgh_label) for e in own.context["cl"].result_list] == [(str(answer.pk), "insert")]
    page = client.get(reverse("admin:participants_participant_change", args=[phone.participant.pk]))
    assert page.status_code == 200
    # Its audit section (the events referencing the participant) shows the submission's rows.
    section = page.content.decode().split("Audit history", 1)[1]
    assert "<td>surveys.Response</td><td>insert</td>" in section
    assert "<td>surveys.SurveyInstance</td><td>update</td>" in section and "completed" in section


def _indexed_columns(table: str) -> set[str]:
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, table)
    return {c["columns"][0] for c in constraints.values() if c["index"] and len(c["columns"]) == 1}


def test_event_tables_index_what_the_audit_trail_looks_events_up_by():
    """pgh_obj (an object's history, the previous event of a diff), pgh_context (the user filter) and the copies of
    keys to the participant (the participant filter, the participant page, site scoping); no other copied key."""
    for event_model in pgh_core.event_models():
        tracked = getattr(event_model, "pgh_tracked_model", None)
        if tracked is None or tracked._meta.app_label == "pghistory":
            continue
        subject_keys = {
            f.column
            for f in event_model._meta.fields
            if f.is_relation and f.related_model._meta.label_lower == "participants.participant"
        }
        other_keys = {f.column for f in event_model._meta.fields if f.is_relation} - subject_keys
        indexed = _indexed_columns(event_model._meta.db_table)
        assert {"pgh_obj_id", "pgh_context_id"} | subject_keys <= indexed, event_model
        assert not (other_keys - {"pgh_obj_id", "pgh_context_id"}) & indexed, event_model
    assert "participant_id" in _indexed_columns("surveys_responseevent")
    assert "response_id" not in _indexed_columns("surveys_itemanswerevent")
