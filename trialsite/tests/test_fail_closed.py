"""Fail closed: the comparator arm is declared in the protocol (never guessed from a name), and the blinding
registry raises rather than reveals when it is missing."""

import pytest
import yaml
from django.core.exceptions import ImproperlyConfigured

from trialsite import admin_scoping
from trialsite.admin_scoping import blinding_registry
from trialsite.protocol.services import ProtocolError, protocol_parse


def with_arms(source: str, arms: list[dict]) -> str:
    data = yaml.safe_load(source)
    data["arms"] = arms
    return yaml.safe_dump(data, sort_keys=False)


def test_the_demo_protocol_declares_placebo_as_its_control(demo_protocol_source):
    protocol = protocol_parse(demo_protocol_source)
    assert protocol.control_arm().code == "B" and protocol.control_arm().name == "placebo"
    assert [a.control for a in protocol.arms] == [False, True]


@pytest.mark.parametrize(
    ("controls", "problem"),
    [
        ((False, False), "arms: exactly one arm must be the comparator (`control: true`); none is"),
        ((True, True), "arms: exactly one arm must be the comparator (`control: true`); found 2: S, A"),
    ],
)
def test_a_protocol_without_exactly_one_control_arm_does_not_load(demo_protocol_source, controls, problem):
    arms = [
        {"code": "S", "name": "sham", "ratio": 1, "control": controls[0]},
        {"code": "A", "name": "placebo-looking name", "ratio": 1, "control": controls[1]},
    ]
    with pytest.raises(ProtocolError) as exc:
        protocol_parse(with_arms(demo_protocol_source, arms))
    assert exc.value.problems == [problem]


def test_no_name_is_guessed(demo_protocol_source):
    """An arm called placebo is not the control unless the protocol says so."""
    arms = [
        {"code": "S", "name": "sham procedure", "ratio": 1, "control": True},
        {"code": "P", "name": "placebo-like active comparator", "ratio": 1},
    ]
    assert protocol_parse(with_arms(demo_protocol_source, arms)).control_arm().code == "S"


def test_blinding_registry_raises_when_no_app_registered_one(monkeypatch):
    assert blinding_registry()["participants.arm"] is None  # registered by participants: read as declared
    monkeypatch.setattr(admin_scoping, "_arm_bearing_sources", {})
    with pytest.raises(ImproperlyConfigured, match="No blinding registry is registered"):
        blinding_registry()


def test_blinding_registry_raises_when_the_registry_is_empty(monkeypatch):
    from participants import blinding

    monkeypatch.setattr(blinding, "REGISTRY", {})
    with pytest.raises(ImproperlyConfigured, match="missing or empty"):
        blinding_registry()


def test_a_blinded_admin_page_fails_instead_of_showing_arms_without_the_registry(client, make_staff, monkeypatch):
    client.force_login(make_staff("coordinator"))
    assert client.get("/admin/").status_code == 200
    monkeypatch.setattr(admin_scoping, "_arm_bearing_sources", {})
    client.raise_request_exception = True
    with pytest.raises(ImproperlyConfigured):
        client.get("/admin/")


@pytest.mark.django_db
def test_legacy_protocol_versions_get_their_placebo_arm_declared_once(trial):
    import importlib

    from django.apps import apps

    migration = importlib.import_module("trialsite.migrations.0004_protocol_arms_declare_control")
    version = trial.protocol_versions.get()
    legacy = version.definition
    for arm in legacy["arms"]:
        del arm["control"]
    version.definition = legacy
    version.save(update_fields=["definition"])
    migration.declare_control(apps, None)
    version.refresh_from_db()
    assert [(a["code"], a["control"]) for a in version.definition["arms"]] == [("A", False), ("B", True)]
