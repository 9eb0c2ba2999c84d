"""The simulator's fast path writes exactly the rows the previous (per-row) path wrote for the same seed.

Every column the simulator writes is compared, table by table, through a digest of the table's sorted rows; a
surrogate id is replaced by its row's natural key (uuid, slug, code, username), so the comparison does not depend
on sequence values. The digests below were taken from the per-row path (commit d8ab17a) on this scenario; a
change to the model's draws or to a production rule the simulator calls changes them on purpose, and then the
statistical tests (test_simulation.py, test_simulation_designs.py) are what must still hold."""

import hashlib
import json
from datetime import UTC, datetime

from analytics.simulation.writer import SPEC
from surveys.models import SurveyInstance

NOW = datetime(2026, 4, 20, 12, 0, tzinfo=UTC)
NATURAL_KEYS = ("slug", "code", "username", "uuid", "version")  # a loaded instrument's uuid is random

GOLDEN = {
    "participant": "57dafaf6309d95df:40",
    "instance": "d05bf620f1418bde:2732",
    "response": "e97f76a97d97e1c0:967",
    "item": "d7448d225a9f1c29:5536",
    "score": "1870fa2fdc9294ba:276",
    "reminder": "e4db29e5434429fb:3549",
    "event": "ef8d0c9e76ffd4e9:2020",
    "dose": "60bf4185d121af98:249",
    "side_effect": "98eecf5752e9e7b4:9",
    "alert": "1e4b8e9281af8e6e:4",
    "staff_guess": "ae494475824d5321:34",
}


def natural(model, column: str) -> str:
    """A column to read: a foreign key by its target's natural key (e.g. `instance__uuid`), others as they are."""
    by_column = {f.column: f for f in model._meta.concrete_fields}
    field = by_column[column]
    if not field.is_relation:
        return field.attname
    names = {f.name for f in field.related_model._meta.concrete_fields}
    key = next(k for k in NATURAL_KEYS if k in names)
    return f"{field.name}__{key}"


def table_digests(trial) -> dict[str, str]:
    out = {}
    for name, (model, columns) in SPEC.items():
        # dose_id (the dose that opened an after_dose session) came with those sessions: none in this protocol.
        fields = [natural(model, c) for c in columns if c not in ("id", "dose_id")]
        rows = sorted(json.dumps(list(r), default=str) for r in model.objects.values_list(*fields))
        out[name] = hashlib.sha256("\n".join(rows).encode()).hexdigest()[:16] + f":{len(rows)}"
    return out


def test_the_fast_path_writes_exactly_the_rows_of_the_per_row_path(trial):
    from analytics.simulation import TrialSimulator

    sim = TrialSimulator(trial=trial, seed=3, now=NOW, audit=False)
    sim.run(participants=40, days=20, batch=13)
    assert table_digests(trial) == GOLDEN
    assert not SurveyInstance.objects.filter(dose__isnull=False).exists()
