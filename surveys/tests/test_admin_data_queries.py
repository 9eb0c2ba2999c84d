"""Data query threads in the admin: who may write into them."""

import uuid
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from surveys import data_queries
from surveys.models import DataQuery, SurveyInstance
from surveys.services import survey_response_submit

from .factories import PHQ9_MILD, make_participant, sign_consent

pytestmark = pytest.mark.django_db


@pytest.fixture
def query(trial, site_ldn, make_staff):
    participant, _ = make_participant(trial=trial, site=site_ldn)
    sign_consent(participant, at=timezone.now() - timedelta(hours=1))
    instance = SurveyInstance.objects.get(participant=participant, schedule_key="baseline_phq9")
    submitted = survey_response_submit(
        participant=participant,
        instance_id=instance.uuid,
        idempotency_key=uuid.uuid4(),
        answers=PHQ9_MILD,
        authored=timezone.now(),
    )
    assert submitted.created
    return data_queries.data_query_raise(
        response=instance.response, user=make_staff("data_manager"), subject="check", message="please check"
    )


@pytest.mark.parametrize("role", ["monitor", "statistician", "safety_physician"])
def test_read_only_roles_cannot_answer_a_data_query(client, query, make_staff, role):
    """Only the site's staff answer: a monitor's POST neither adds to the thread nor marks it answered."""
    client.force_login(make_staff(role))
    url = reverse("admin:surveys_dataquery_change", args=[query.pk])
    page = client.get(url)
    assert page.status_code == 200 and "Send reply" not in page.content.decode()
    client.post(url, {"_reply": "1", "body": "looks fine to me"})
    query.refresh_from_db()
    assert query.status == "open"
    assert list(query.messages.values_list("body", flat=True)) == ["please check"]


def test_the_sites_coordinator_answers(client, query, make_staff, site_ldn):
    url = reverse("admin:surveys_dataquery_change", args=[query.pk])
    client.force_login(make_staff("coordinator", site=site_ldn))
    assert "Send reply" in client.get(url).content.decode()
    client.post(url, {"_reply": "1", "body": "confirmed with the participant"})
    assert DataQuery.objects.get(pk=query.pk).status == "answered"


def test_the_thread_costs_the_same_queries_however_long(client, query, make_staff, site_ldn):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    manager = make_staff("data_manager")
    client.force_login(manager)
    url = reverse("admin:surveys_dataquery_change", args=[query.pk])

    def count():
        with CaptureQueriesContext(connection) as ctx:
            assert client.get(url).status_code == 200
        return len(ctx.captured_queries)

    client.get(url)
    one = count()
    for n in range(5):
        author = make_staff("coordinator", site=site_ldn) if n % 2 else manager
        data_queries.data_query_reply(query=query, user=author, body=f"message {n}")
    assert count() == one
