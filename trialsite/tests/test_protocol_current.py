"""The current protocol: one definition, parsed once per immutable version, amendments seen at once."""

import pytest
import yaml

from trialsite.models import ProtocolVersion
from trialsite.protocol.schema import Protocol
from trialsite.protocol.services import (
    ProtocolError,
    protocol_cache_clear,
    protocol_current,
    protocol_digest,
    protocol_load,
    protocol_of_version,
    protocol_parse,
    protocol_version_current,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def validations(monkeypatch):
    """Counts every pydantic validation of a whole Protocol, by any caller."""
    calls = []
    original = Protocol.model_validate

    def spy(cls, *args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(Protocol, "model_validate", classmethod(spy))
    return calls


def amend(source: str, **enrolment) -> str:
    data = yaml.safe_load(source)
    data["enrolment"].update(enrolment)
    return yaml.safe_dump(data, sort_keys=False)


def test_the_same_version_gives_the_same_object_parsed_once(trial, validations):
    protocol_cache_clear()
    first = protocol_current(trial)
    assert isinstance(first, Protocol) and first.trial.slug == "microdose-mood"
    assert len(validations) == 1
    version = protocol_version_current(trial)
    assert protocol_current(trial) is first
    assert protocol_current(trial.pk) is first
    assert protocol_of_version(version) is first
    assert protocol_of_version(version.pk) is first
    assert trial.current_protocol.pk == version.pk
    assert len(validations) == 1


def test_an_amendment_is_seen_immediately(trial, demo_protocol_source, validations):
    before = protocol_current(trial)
    assert before.enrolment.code_valid_days == 14
    result = protocol_load(source=amend(demo_protocol_source, code_valid_days=21))
    assert result.amended
    after = protocol_current(trial)
    assert after.enrolment.code_valid_days == 21
    assert protocol_version_current(trial).version == 2
    # The old version keeps its own parse (instances planned under it still read it).
    v1 = ProtocolVersion.objects.get(trial=trial, version=1)
    assert protocol_of_version(v1) is before


def test_a_trial_without_protocol_is_a_protocol_error(db):
    from trialsite.models import Trial

    bare = Trial.objects.create(slug="bare", title="Bare")
    with pytest.raises(ProtocolError, match="no protocol loaded"):
        protocol_current(bare)
    assert bare.current_protocol is None


def test_current_protocol_costs_one_query_and_no_parse_when_warm(trial, validations, django_assert_num_queries):
    protocol_current(trial)
    validations.clear()
    with django_assert_num_queries(1):
        protocol_current(trial)
    assert validations == []


def test_the_trial_row_points_at_its_latest_version(trial, demo_protocol_source):
    from trialsite.models import Trial
    from trialsite.protocol.services import protocol_current_of

    first = protocol_version_current(trial)
    assert Trial.objects.get(pk=trial.pk).current_version_id == first.pk
    amended = protocol_load(source=amend(demo_protocol_source, code_valid_days=21)).version
    row = Trial.objects.get(pk=trial.pk)
    assert row.current_version_id == amended.pk == protocol_version_current(trial).pk
    assert protocol_current_of(row).enrolment.code_valid_days == 21
    # Loading the first content again is not a new version: the pointer stays on the latest.
    again = protocol_load(source=demo_protocol_source)
    assert not again.created and Trial.objects.get(pk=trial.pk).current_version_id == amended.pk


def other_trial(source: str) -> str:
    data = yaml.safe_load(source)
    data["trial"].update(slug="second-trial", title="A second trial")
    return yaml.safe_dump(data, sort_keys=False)


@pytest.mark.django_db(transaction=True)
def test_a_version_id_given_again_after_a_flush_is_parsed_again(demo_protocol_source):
    """`flush` restarts the id sequences: the next trial's first version gets the pk the old one had. Neither its id
    (the phone's path: the trial row's pointer) nor its row may be answered with the old trial's protocol."""
    from django.core.management import call_command

    call_command("flush", interactive=False, verbosity=0)  # ids from 1, as after the test before
    first = protocol_load(source=demo_protocol_source).version
    assert protocol_of_version(first.pk).trial.slug == "microdose-mood"  # parsed and kept under that pk
    assert protocol_current(first.trial_id).trial.slug == "microdose-mood"
    call_command("flush", interactive=False, verbosity=0)
    second = protocol_load(source=other_trial(demo_protocol_source))
    assert second.version.pk == first.pk  # the premise: the same id, another row
    assert protocol_of_version(second.version.pk).trial.slug == "second-trial"
    assert protocol_current(second.trial).trial.slug == "second-trial"


@pytest.mark.django_db(transaction=True)
def test_a_row_written_elsewhere_under_a_reused_id_is_told_by_its_digest(demo_protocol_source):
    """A row this process never saw written (another process, a restore; here a bulk insert, which sends no signal)
    under an id the cache holds: the current-version row carries its sha256, so it is parsed again."""
    from django.core.management import call_command

    from trialsite.models import Trial

    call_command("flush", interactive=False, verbosity=0)  # ids from 1, as after the test before
    first = protocol_load(source=demo_protocol_source).version
    assert protocol_current(first.trial_id).trial.slug == "microdose-mood"
    call_command("flush", interactive=False, verbosity=0)
    source = other_trial(demo_protocol_source)
    protocol = protocol_parse(source)
    trial = Trial.objects.create(slug="second-trial", title="A second trial")
    [row] = ProtocolVersion.objects.bulk_create(
        [
            ProtocolVersion(
                trial=trial,
                version=1,
                sha256=protocol_digest(protocol),
                source=source,
                definition=protocol.model_dump(mode="json"),
            )
        ]
    )
    assert row.pk == first.pk  # the premise: the same id, another row
    assert protocol_current(trial).trial.slug == "second-trial"
    assert protocol_of_version(protocol_version_current(trial)).trial.slug == "second-trial"
