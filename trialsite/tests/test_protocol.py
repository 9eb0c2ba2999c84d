import pytest
import yaml
from django.core.management.base import CommandError

from trialsite.models import ProtocolVersion, Trial
from trialsite.protocol.schema import parse_duration
from trialsite.protocol.services import ProtocolError, protocol_load, protocol_parse

pytestmark = pytest.mark.django_db


def mutate(source: str, fn) -> str:
    data = yaml.safe_load(source)
    fn(data)
    return yaml.safe_dump(data, sort_keys=False)


def test_demo_protocol_loads_via_command(call, tmp_path, demo_protocol_source):
    path = tmp_path / "p.yaml"
    path.write_text(demo_protocol_source)
    out = call("load_protocol", str(path))
    assert "microdose-mood protocol version 1 (created)" in out
    trial = Trial.objects.get(slug="microdose-mood")
    version = trial.protocol_versions.get()
    definition = version.definition
    assert [a["ratio"] for a in definition["arms"]] == [1, 1]
    assert definition["randomisation"]["block_sizes"] == [2, 4]
    assert [c["key"] for c in definition["eligibility"]] == [
        "adult",
        "no_psychosis_history",
        "no_lithium_or_tramadol",
        "not_pregnant",
        "no_cardiac_condition",
    ]
    assert {i["slug"] for i in definition["instruments"]} == {
        "phq9",
        "gad7",
        "daily-mood",
        "blinding-guess",
        "expectancy",
    }
    assert definition["reminders"]["quiet_hours"] == {"start": "22:00:00", "end": "07:30:00"}


def test_same_file_again_changes_nothing(call, tmp_path, demo_protocol_source):
    path = tmp_path / "p.yaml"
    path.write_text(demo_protocol_source)
    call("load_protocol", str(path))
    out = call("load_protocol", str(path))
    assert "version 1 (unchanged)" in out
    assert ProtocolVersion.objects.count() == 1


def test_changed_file_is_an_amendment_and_history_is_kept(call, tmp_path, demo_protocol_source):
    path = tmp_path / "p.yaml"
    path.write_text(demo_protocol_source)
    call("load_protocol", str(path))
    amended = mutate(demo_protocol_source, lambda d: d["enrolment"].update(code_valid_days=21))
    path.write_text(amended)
    out = call("load_protocol", str(path))
    assert "version 2 (amendment)" in out
    v1, v2 = ProtocolVersion.objects.order_by("version")
    assert v1.definition["enrolment"]["code_valid_days"] == 14
    assert v2.definition["enrolment"]["code_valid_days"] == 21
    assert v1.sha256 != v2.sha256


BAD_FILES = [
    (lambda d: d["schedule"][2].update(instrument="phq10"), "schedule[2].instrument: unknown instrument 'phq10'"),
    (lambda d: d["arms"].pop(), "arms: List should have at least 2 items"),
    (lambda d: d["randomisation"].update(block_sizes=[3]), "randomisation.block_sizes: 3 is not a multiple"),
    (lambda d: d["schedule"][0].update(window="seven days"), "schedule[0].window"),
    (lambda d: d["safety"]["rules"][0]["when"].update(item="phq9_10"), "safety.rules[0].when.item"),
    (lambda d: d.pop("consent"), "consent: Field required"),
    (lambda d: d["trial"].update(colour="blue"), "trial.colour: Extra inputs are not permitted"),
    (lambda d: d["instruments"][0]["items"][0].update(choices="nope"), "unknown choice set 'nope'"),
    (lambda d: d["consent"][0].update(valid_to="2025-01-01"), "consent[0]: valid_to is before valid_from"),
]


@pytest.mark.parametrize("change,message", BAD_FILES)
def test_bad_file_is_rejected_naming_the_place_and_changes_nothing(
    call, tmp_path, demo_protocol_source, change, message
):
    path = tmp_path / "bad.yaml"
    path.write_text(mutate(demo_protocol_source, change))
    with pytest.raises(CommandError) as excinfo:
        call("load_protocol", str(path))
    assert message in str(excinfo.value)
    assert "nothing changed" in str(excinfo.value)
    assert not Trial.objects.exists()
    assert not ProtocolVersion.objects.exists()


def test_invalid_yaml_names_the_line(tmp_path):
    with pytest.raises(ProtocolError) as excinfo:
        protocol_parse("format: 1\ntrial: [unclosed\n")
    assert "line" in excinfo.value.problems[0]


def test_bad_amendment_keeps_the_previous_version(demo_protocol_source):
    protocol_load(source=demo_protocol_source)
    with pytest.raises(ProtocolError):
        protocol_load(source=mutate(demo_protocol_source, lambda d: d["arms"][0].update(ratio=0)))
    assert ProtocolVersion.objects.count() == 1


def test_missing_file_is_a_clear_error(call):
    with pytest.raises(CommandError, match="cannot read the file"):
        call("load_protocol", "/nonexistent/protocol.yaml")


@pytest.mark.parametrize("text,seconds", [("7d", 604800), ("48h", 172800), ("30m", 1800), ("-30m", -1800), ("0m", 0)])
def test_durations(text, seconds):
    assert parse_duration(text).total_seconds() == seconds
