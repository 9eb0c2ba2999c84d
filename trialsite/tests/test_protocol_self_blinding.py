"""protocols/self-blinding.yaml (Szigeti 2021 timeline) loads with load_protocol; `blinding: self`,
`self_blinding`, `kit_code` items and `after_dose` entries are validated at load, naming the place."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from django.core.management.base import CommandError

from trialsite.models import ProtocolVersion, Trial
from trialsite.protocol.services import protocol_parse

pytestmark = pytest.mark.django_db

SOURCE = (Path(__file__).resolve().parents[2] / "protocols" / "self-blinding.yaml").read_text(encoding="utf-8")


def mutate(fn) -> str:
    data = yaml.safe_load(SOURCE)
    fn(data)
    return yaml.safe_dump(data, sort_keys=False)


def entry(data, key):
    return next(e for e in data["schedule"] if e["key"] == key)


def test_self_blinding_protocol_loads_with_the_published_timeline(call, tmp_path):
    path = tmp_path / "sb.yaml"
    path.write_text(SOURCE)
    assert "self-blinding protocol version 1 (created)" in call("load_protocol", str(path))
    protocol = protocol_parse(SOURCE)
    assert protocol.blinding == "self"
    assert (protocol.self_blinding.periods, protocol.self_blinding.envelopes_per_condition) == (4, 4)
    assert protocol.period_start_days() == [1, 8, 15, 22]
    events = {e.key: e for e in protocol.schedule}
    assert events["dose_week"].day_list() == [3, 6, 10, 13, 17, 20, 24, 27]
    assert events["dose_week"].window == "1d"
    assert (events["post"].day_list(), events["post"].window) == ([28], "7d")
    assert (events["follow_up"].day_list(), events["follow_up"].window) == ([56], "7d")
    # Baseline: day -14..0, as a 14-day window opening at consent.
    assert (events["baseline"].anchor, events["baseline"].window, events["baseline"].baseline) == (
        "consent",
        "14d",
        True,
    )
    acute = events["acute"]
    assert (acute.after_dose.minutes, acute.after_dose.window_minutes) == (90, 120)
    assert [i.type for i in protocol.instrument("envelope").items] == ["kit_code"]


BAD = [
    (lambda d: d.pop("self_blinding"), "self_blinding: give it exactly when blinding is 'self'"),
    (lambda d: d.update(blinding="double"), "self_blinding: give it exactly when blinding is 'self'"),
    (lambda d: d["self_blinding"].update(envelopes_per_condition=1, periods=4), "cannot cover 4 periods"),
    (lambda d: d["self_blinding"].update(schedule="nope"), "unknown schedule entry 'nope'"),
    (lambda d: d["self_blinding"].update(schedule="dose_week"), "one occurrence per period (4)"),
    (lambda d: d["self_blinding"].update(schedule="post", periods=1), "needs exactly one kit_code item"),
    (lambda d: entry(d, "acute").update(days=[1]), "an 'after_dose' entry takes no anchor"),
    (lambda d: entry(d, "acute")["after_dose"].update(window_minutes=0), "window_minutes"),
    (lambda d: entry(d, "post").pop("anchor"), "'anchor' is required"),
    (lambda d: d["instruments"][1]["items"][0].update(type="kitcode"), "type"),
]


@pytest.mark.parametrize("change,message", BAD)
def test_bad_self_blinding_files_are_refused_naming_the_problem(call, tmp_path, change, message):
    path = tmp_path / "bad.yaml"
    path.write_text(mutate(change))
    with pytest.raises(CommandError) as excinfo:
        call("load_protocol", str(path))
    assert message in str(excinfo.value)
    assert not Trial.objects.exists() and not ProtocolVersion.objects.exists()
