"""Self-blinding kits in the admin: blinded staff see "envelope recorded: yes/no" per period and cannot open the
kit sheet; the unblinded statistician prints it (QR labels per label set, each encoding
<PUBLIC_BASE_URL>/app/kit#<CODE>, step-by-step instructions)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from participants.kit_models import KitEnvelope
from participants.services.kits import kit_envelope_record

from .kit_helpers import load_self_blinding_trial, randomised_participant

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _at_midday(midday):
    """Events hours or days before "now" through the API: the clock at 12:00 UTC (conftest.midday)."""


@pytest.fixture
def kit(settings):
    settings.PUBLIC_BASE_URL = "https://trial.example.org"
    trial, site = load_self_blinding_trial()
    participant, _ = randomised_participant(trial=trial, site=site, randomised_at=timezone.now() - timedelta(days=9))
    code = KitEnvelope.objects.filter(participant=participant).values_list("code", flat=True).first()
    kit_envelope_record(participant=participant, code=code, period=1)
    return participant, site


def test_blinded_staff_see_recorded_yes_no_and_no_kit_sheet(kit, client, make_staff):
    participant, site = kit
    client.force_login(make_staff("coordinator", site=site))
    page = client.get(reverse("admin:participants_participant_change", args=[participant.pk]))
    assert page.status_code == 200
    html = page.content.decode()
    assert "Envelope recorded" in html
    assert "period 1: yes" in html and "period 2: no" in html and "period 4: no" in html
    assert "micro-dose capsules" not in html and "empty capsules" not in html and "kit-sheet-link" not in html
    sheet = reverse("admin:participants_participant_kit_sheet", args=[participant.pk])
    assert client.get(sheet).status_code == 403


def test_unblinded_statistician_prints_the_kit_sheet(kit, client, make_staff):
    participant, _ = kit
    client.force_login(make_staff("unblinded_statistician"))
    change = client.get(reverse("admin:participants_participant_change", args=[participant.pk]))
    assert change.status_code == 200 and "kit-sheet-link" in change.content.decode()
    response = client.get(reverse("admin:participants_participant_kit_sheet", args=[participant.pk]))
    assert response.status_code == 200
    html = response.content.decode()
    sets = response.context["sheet"]["sets"]
    assert [s.number for s in sets] == [1, 2] and all(len(s.labels) == 4 for s in sets)
    allocated = participant.allocation.slot.arm.name
    assert sets[0].contents == allocated  # label set 1 is the allocated arm's
    codes = dict(KitEnvelope.objects.filter(participant=participant).values_list("pk", "code"))
    urls = {label.url for s in sets for label in s.labels}
    assert urls == {f"https://trial.example.org/app/kit#{code}" for code in codes.values()}
    assert html.count('class="kit-label"') == 8
    realised = response.context["sheet"]["realised"]
    assert [(r["period"], r["condition"]) for r in realised] == [
        (1, KitEnvelope.objects.get(participant=participant, period=1).condition.name)
    ]
    assert "shuffle them" in html and "Label set 1" in html and "micro-dose capsules" in html
