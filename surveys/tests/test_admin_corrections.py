"""Data management corrects a submitted answer in the admin: validated against the instrument, the
response re-scored, safety rules re-run, the reason in the audit trail."""

import pytest
from django.urls import reverse

from participants.models import SafetyAlert
from surveys.models import ItemAnswer, Response, Score

from .factories import PHQ9_MILD
from .test_api_responses import baseline, submit

pytestmark = pytest.mark.django_db


@pytest.fixture
def phq9_response(phone):
    assert submit(phone, baseline(phone), PHQ9_MILD).status_code == 201
    return Response.objects.get(participant=phone.participant, instrument__slug="phq9")


def test_correction_rescores_and_reruns_safety_rules(client, phq9_response, make_staff):
    assert Score.objects.get(response=phq9_response, key="total").value == 5
    assert not SafetyAlert.objects.filter(participant=phq9_response.participant).exists()
    item = ItemAnswer.objects.get(response=phq9_response, item_key="phq9_9")
    client.force_login(make_staff("data_manager"))
    url = reverse("admin:surveys_itemanswer_change", args=[item.pk])
    done = client.post(url, {"value": "2", "change_reason": "paper source shows 'more than half the days'"})
    assert done.status_code == 302
    item.refresh_from_db()
    phq9_response.refresh_from_db()
    assert item.value == 2 and item.value_numeric == 2.0
    assert phq9_response.answers["phq9_9"] == 2
    total = Score.objects.get(response=phq9_response, key="total")
    assert (total.value, total.band) == (7, "mild")
    alert = SafetyAlert.objects.get(participant=phq9_response.participant)
    assert alert.rule == "phq9_item9" and alert.source_id == str(phq9_response.uuid)


def test_correction_outside_the_instrument_is_refused_and_changes_nothing(client, phq9_response, make_staff):
    item = ItemAnswer.objects.get(response=phq9_response, item_key="phq9_3")
    client.force_login(make_staff("data_manager"))
    url = reverse("admin:surveys_itemanswer_change", args=[item.pk])
    refused = client.post(url, {"value": "7", "change_reason": "typo"})
    assert refused.status_code == 200
    assert "errornote" in refused.content.decode() or "errorlist" in refused.content.decode()
    item.refresh_from_db()
    phq9_response.refresh_from_db()
    assert item.value == 1 and phq9_response.answers["phq9_3"] == 1
    assert Score.objects.get(response=phq9_response, key="total").value == 5
