"""The substance a participant brings, recorded by a coordinator in the admin through the service."""

from datetime import UTC, datetime

import pytest
import yaml

from participants.models import Participant, SubstanceRecord
from trialsite.models import Site
from trialsite.protocol.services import protocol_load
from trialsite.services import site_create

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def own_substance_trial(db, demo_protocol_source):
    from analytics.simulation import simulate_trial

    data = yaml.safe_load(demo_protocol_source)
    data["trial"]["slug"] = "self-blind"
    data["substance"] = {"name": "as brought", "unit": "ug", "provided_by": "participant"}
    trial = protocol_load(source=yaml.safe_dump(data, sort_keys=False)).trial
    site_create(code="AMS", name="Amsterdam", timezone="Europe/Amsterdam", trials=[trial])
    simulate_trial(trial=trial, participants=3, days=3, seed=1, now=NOW)
    return trial


def test_coordinator_records_and_corrects_a_participants_substance(own_substance_trial, make_staff, client):
    coordinator = make_staff("coordinator", site=Site.objects.get(code="AMS"))
    client.force_login(coordinator)
    participant = Participant.objects.filter(trial=own_substance_trial).first()
    add = "/admin/participants/substancerecord/add/"
    bad = client.post(add, {"participant": participant.pk, "name": "1P-LSD", "amount_per_unit": "0", "unit": "ug"})
    assert bad.status_code == 200 and not SubstanceRecord.objects.exists()
    ok = client.post(add, {"participant": participant.pk, "name": "1P-LSD", "amount_per_unit": "12.5", "unit": "ug"})
    assert ok.status_code == 302
    record = SubstanceRecord.objects.get(participant=participant)
    assert (record.name, float(record.amount_per_unit), record.unit, record.recorded_by) == (
        "1P-LSD",
        12.5,
        "ug",
        coordinator,
    )
    change = f"/admin/participants/substancerecord/{record.pk}/change/"
    assert client.post(change, {"name": "1P-LSD", "amount_per_unit": "10", "unit": "ug"}).status_code == 302
    assert float(SubstanceRecord.objects.get(pk=record.pk).amount_per_unit) == 10


def test_site_dispensed_trial_refuses_in_the_admin(trial, site_ldn, make_staff, client):
    from analytics.simulation import simulate_trial

    simulate_trial(trial=trial, participants=2, days=3, seed=1, now=NOW)
    client.force_login(make_staff("coordinator", site=site_ldn))
    participant = Participant.objects.filter(trial=trial, site=site_ldn).first()
    response = client.post(
        "/admin/participants/substancerecord/add/",
        {"participant": participant.pk, "name": "LSD", "amount_per_unit": "10", "unit": "ug"},
    )
    assert response.status_code == 200 and "dispenses its substance at the site" in response.content.decode()
    assert not SubstanceRecord.objects.exists()
