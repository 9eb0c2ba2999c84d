"""`manage.py demo --design …`: each micro-dosing design (parallel, crossover, self-blinding) as its own demo trial
from its protocol file, at the demo sites, with the demo logins granted their roles in it. Idempotent; without
`--design` it loads the parallel demo only, as it always did."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from django.apps import apps
from django.contrib.auth import get_user_model

from participants.models import Participant
from participants.tests.factories import EnrolledParticipantFactory
from trialsite.models import ProtocolVersion, RoleGrant, Site, Trial
from trialsite.protocol.services import protocol_current

ROOT = Path(__file__).resolve().parents[2]
DESIGNS = {  # design → protocol file (copied here: the test pins what the command loads)
    "parallel": "microdose-mood.yaml",
    "crossover": "crossover.yaml",
    "self-blinding": "self-blinding.yaml",
}
DEMO_ROLES = {  # login → (role, site code or None): the demo's staff
    "coord_ldn": ("coordinator", "LDN"),
    "coord_nyc": ("coordinator", "NYC"),
    "pi": ("trial_manager", None),
    "safety": ("safety_physician", None),
    "datamanager": ("data_manager", None),
    "monitor": ("monitor", None),
    "stats": ("statistician", None),
    "unblinded": ("unblinded_statistician", None),
}


def _slug(design: str) -> str:
    return yaml.safe_load((ROOT / "protocols" / DESIGNS[design]).read_text(encoding="utf-8"))["trial"]["slug"]


def _every_table() -> dict[str, int]:
    return {
        m._meta.label: m._default_manager.count() for m in apps.get_models() if m._meta.managed and not m._meta.proxy
    }


@pytest.mark.django_db
def test_every_design_is_its_own_demo_trial_and_a_second_run_changes_nothing(call):
    args = ("demo", "--design", "all", "--participants", "3", "--days", "4")
    out = call(*args)
    before = _every_table()
    again = call(*args)
    assert _every_table() == before  # every table, row for row in number
    assert "nothing simulated" in again and out != again

    trials = {design: Trial.objects.get(slug=_slug(design)) for design in DESIGNS}
    assert Trial.objects.count() == 3
    for design, trial in trials.items():
        assert ProtocolVersion.objects.filter(trial=trial).count() == 1, design
        protocol = protocol_current(trial)
        assert (protocol.crossover is not None) == (design == "crossover"), design
        assert (protocol.self_blinding is not None) == (design == "self-blinding"), design
        assert set(trial.sites.values_list("code", flat=True)) == {"LDN", "NYC"}, design
        assert Participant.objects.filter(trial=trial).count() == 3, design
        held = {
            (g.user.username, g.role, g.site.code if g.site else None)
            for g in RoleGrant.objects.filter(trial=trial).select_related("user", "site")
        }
        assert held == {(login, role, site) for login, (role, site) in DEMO_ROLES.items()}, design
        # A new participant enrols in it: registered by the demo's coordinator, the phone redeems the code.
        coordinator = get_user_model().objects.get(username="coord_ldn")
        participant = EnrolledParticipantFactory(
            trial=trial, site=Site.objects.get(code="LDN"), registered_by=coordinator
        )
        assert participant.status == "enrolled" and participant.token, design


@pytest.mark.django_db
def test_without_a_design_the_demo_is_the_parallel_trial_as_before(call):
    out = call("demo", "--participants", "0")
    assert list(Trial.objects.values_list("slug", flat=True)) == [_slug("parallel")]
    assert f"demo trial {_slug('parallel')}" in out and "coord_ldn" in out
    call("demo", "--design", "crossover", "--participants", "0")  # added beside it; the parallel trial untouched
    assert set(Trial.objects.values_list("slug", flat=True)) == {_slug("parallel"), _slug("crossover")}
    assert ProtocolVersion.objects.count() == 2
