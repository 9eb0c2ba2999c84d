"""Concealed allocation lists: stratified permuted blocks of random sizes, generated from a seed or imported.

The generator is a pure function (`allocation_generate_rows`) so it can be property-tested; saving and
importing are services. ARM-BEARING throughout: only management commands run by the unblinded
statistician call these.
"""

from __future__ import annotations

import csv
import hashlib
import io
import itertools
import random
import secrets
from collections import Counter
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import Value
from django.db.models.functions import Coalesce, NullIf

from trialsite.protocol.schema import Protocol
from trialsite.protocol.services import protocol_current

from .. import providers
from ..models import AllocationList, AllocationSlot, Arm, DoseUnit, Participant

UNIT_ALPHABET = "ACDEFGHJKMNPQRTUVWXY345679"
UNIT_LENGTH = 6
CSV_COLUMNS = ["stratum", "sequence", "block", "block_size", "arm", "unit_codes"]


@dataclass(frozen=True)
class SlotRow:
    stratum: str
    sequence: int
    block: int
    block_size: int
    arm: str
    unit_codes: tuple[str, ...]


# --- strata -----------------------------------------------------------------------------------------------


def _score_label(stratum, value: float) -> str:
    index = sum(1 for cut in stratum.cut_points if value >= cut)
    if stratum.labels:
        return stratum.labels[index]
    return f"{stratum.key}{index}"


def strata_labels(*, protocol: Protocol, site_codes: list[str]) -> list[str]:
    """Every stratum of the trial, e.g. ["LDN|ge10", "LDN|lt10", ...] (site × baseline PHQ-9 band)."""
    parts: list[list[str]] = []
    for stratum in protocol.randomisation.strata:
        if stratum.source == "site":
            parts.append(sorted(site_codes))
        elif stratum.source == "score":
            parts.append(list(stratum.labels) or [f"{stratum.key}{i}" for i in range(len(stratum.cut_points) + 1)])
        else:
            parts.append([f"{stratum.key}_yes", f"{stratum.key}_no"])
    if not parts:
        return ["all"]
    return sorted("|".join(combo) for combo in itertools.product(*parts))


def trial_strata(*, trial) -> list[str]:
    return strata_labels(protocol=protocol_current(trial), site_codes=list(trial.sites.values_list("code", flat=True)))


def participant_stratum(*, participant: Participant) -> tuple[str | None, list[str]]:
    """(stratum, what is missing). Uses the baseline score through participants.providers."""
    return stratum_of(
        protocol=protocol_current(participant.trial),
        site_code=participant.site.code,
        eligibility=participant.eligibility,
        score_of=lambda s: providers.schedule_provider().baseline_score(
            participant=participant, instrument=s.instrument, schedule=s.schedule, score=s.score
        ),
    )


def stratum_of(*, protocol: Protocol, site_code: str, eligibility: dict, score_of) -> tuple[str | None, list[str]]:
    """The stratum label by the protocol's strata (pure): `score_of(stratum)` gives the baseline score of a
    score stratum, or None when it is not there yet. Returns (stratum, what is missing)."""
    parts: list[str] = []
    missing: list[str] = []
    for stratum in protocol.randomisation.strata:
        if stratum.source == "site":
            parts.append(site_code)
        elif stratum.source == "score":
            value = score_of(stratum)
            if value is None:
                missing.append(f"baseline {stratum.instrument} {stratum.score} score")
                continue
            parts.append(_score_label(stratum, float(value)))
        else:
            parts.append(f"{stratum.key}_{'yes' if eligibility.get(stratum.key) else 'no'}")
    if missing:
        return None, missing
    return ("|".join(parts) if parts else "all"), []


# --- the generator ----------------------------------------------------------------------------------------


def _block(rng: random.Random, arms: list[tuple[str, int]], size: int) -> list[str]:
    total = sum(r for _, r in arms)
    block = [code for code, ratio in arms for _ in range(ratio * size // total)]
    rng.shuffle(block)
    return block


def allocation_generate_rows(
    *,
    strata: list[str],
    arms: list[tuple[str, int]],
    block_sizes: list[int],
    per_stratum: int,
    seed: int,
    units_per_allocation: int,
    unit_prefix: str,
    taken_codes: frozenset[str] = frozenset(),
) -> list[SlotRow]:
    """Permuted blocks of sizes drawn at random from `block_sizes`, per stratum, until each stratum has at
    least `per_stratum` slots (only whole blocks). Reproducible from the seed. Dose-unit codes are random
    labels unrelated to the arm, and never one of `taken_codes` (codes already printed for other lists)."""
    total = sum(r for _, r in arms)
    if any(size % total for size in block_sizes):
        raise ValueError("every block size must be a multiple of the arms' ratio total")
    if per_stratum < 1:
        raise ValueError("per_stratum must be at least 1")
    rng = random.Random(seed)
    rows: list[SlotRow] = []
    used_codes: set[str] = set(taken_codes)
    # Labels come from their own stream, so skipping a taken label never changes the arm sequence.
    label_rng = random.Random(f"{seed}:unit-labels")

    def unit_code() -> str:
        while True:
            code = f"{unit_prefix}-" + "".join(label_rng.choice(UNIT_ALPHABET) for _ in range(UNIT_LENGTH))
            if code not in used_codes:
                used_codes.add(code)
                return code

    for stratum in sorted(strata):
        sequence = 0
        block_number = 0
        while sequence < per_stratum:
            block_number += 1
            size = rng.choice(block_sizes)
            for arm in _block(rng, arms, size):
                sequence += 1
                codes = tuple(unit_code() for _ in range(units_per_allocation))
                rows.append(SlotRow(stratum, sequence, block_number, size, arm, codes))
    return rows


def allocation_rows_csv(rows: list[SlotRow]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for r in rows:
        writer.writerow([r.stratum, r.sequence, r.block, r.block_size, r.arm, ";".join(r.unit_codes)])
    return out.getvalue()


def allocation_rows_sha256(rows: list[SlotRow]) -> str:
    return hashlib.sha256(allocation_rows_csv(rows).encode("utf-8")).hexdigest()


def allocation_rows_check(*, rows: list[SlotRow], arms: list[tuple[str, int]], strata: list[str]) -> list[str]:
    """Problems of a list: unknown strata/arms, gaps in sequences, unbalanced blocks, reused unit codes."""
    problems: list[str] = []
    arm_codes = {c for c, _ in arms}
    ratio_total = sum(r for _, r in arms)
    known = set(strata)
    by_stratum: dict[str, list[SlotRow]] = {}
    for r in rows:
        by_stratum.setdefault(r.stratum, []).append(r)
        if r.arm not in arm_codes:
            problems.append(f"{r.stratum}#{r.sequence}: unknown arm {r.arm!r}")
    for stratum, items in sorted(by_stratum.items()):
        if stratum not in known:
            problems.append(f"{stratum}: not a stratum of this trial")
        items.sort(key=lambda r: r.sequence)
        if [r.sequence for r in items] != list(range(1, len(items) + 1)):
            problems.append(f"{stratum}: sequences must run 1, 2, 3, ... without gaps")
        for block, members in itertools.groupby(items, key=lambda r: r.block):
            members = list(members)
            size = members[0].block_size
            if len(members) != size or any(m.block_size != size for m in members):
                problems.append(f"{stratum} block {block}: holds {len(members)} slots, declared {size}")
                continue
            counts = Counter(m.arm for m in members)
            for code, ratio in arms:
                if counts.get(code, 0) != ratio * size // ratio_total:
                    problems.append(f"{stratum} block {block}: not balanced")
                    break
    codes = [c for r in rows for c in r.unit_codes]
    if len(codes) != len(set(codes)):
        problems.append("dose-unit codes are reused")
    return problems


# --- storing a list ---------------------------------------------------------------------------------------


def _arms_of(trial) -> list[tuple[str, int]]:
    """What the list randomises, with ratios: the arms, or in a crossover trial the arm sequences (a row's
    `arm` then holds a sequence code such as "AB")."""
    crossover = _crossover(trial)
    if crossover is not None:
        return [(s.code, s.ratio) for s in crossover.sequences]
    return [(a.code, a.ratio) for a in Arm.objects.filter(trial=trial).order_by("code")]


def _crossover(trial):
    from trialsite.protocol.services import ProtocolError

    try:
        return protocol_current(trial).crossover
    except ProtocolError:
        return None


@transaction.atomic
def allocation_list_store(*, trial, rows: list[SlotRow], source: str, seed: int | None = None) -> AllocationList:
    if AllocationList.objects.filter(trial=trial).exists():
        raise ValidationError({"trial": [f"{trial.slug} already has an allocation list; lists are never replaced."]})
    problems = allocation_rows_check(rows=rows, arms=_arms_of(trial), strata=trial_strata(trial=trial))
    if problems:
        raise ValidationError({"rows": problems[:50]})
    arms = {a.code: a for a in Arm.objects.filter(trial=trial)}
    crossover = _crossover(trial)
    # A crossover row holds a sequence: the slot keeps it and, as its arm, the first period's arm.
    first_arm = {s.code: s.arms[0] for s in crossover.sequences} if crossover else {c: c for c in arms}
    alist = AllocationList.objects.create(trial=trial, source=source, seed=seed, sha256=allocation_rows_sha256(rows))
    _slots_insert(alist=alist, rows=rows, arm_ids=[arms[first_arm[r.arm]].pk for r in rows], crossover=bool(crossover))
    return alist


def _slots_insert(*, alist: AllocationList, rows: list[SlotRow], arm_ids: list[int], crossover: bool) -> None:
    """The list's slots and their dose units, one multi-row INSERT … SELECT FROM unnest(…) each (a list holds
    thousands of slots and over ten thousand units: no model instance per row). The rows go in the list's order
    (so ids follow it, as with `bulk_create`), and the audit insert triggers fire for each row as for any insert,
    under the caller's audit context. The units find their slot by its (list, stratum, sequence) position."""
    q = connection.ops.quote_name
    slot, unit = AllocationSlot._meta, DoseUnit._meta
    col = {f.name: q(f.column) for f in slot.concrete_fields}
    with connection.cursor() as cur:
        cur.execute(
            f"INSERT INTO {q(slot.db_table)} ({col['allocation_list']}, {col['stratum']}, {col['sequence']},"  # noqa: S608
            f" {col['block_number']}, {col['block_size']}, {col['arm']}, {col['arm_sequence']}, {col['taken']})"
            " SELECT %s, r.stratum, r.sequence, r.block, r.size, r.arm, r.arm_sequence, false"
            " FROM unnest(%s::text[], %s::int[], %s::int[], %s::int[], %s::bigint[], %s::text[]) WITH ORDINALITY"
            " AS r(stratum, sequence, block, size, arm, arm_sequence, n) ORDER BY r.n",
            [
                alist.pk,
                [r.stratum for r in rows],
                [r.sequence for r in rows],
                [r.block for r in rows],
                [r.block_size for r in rows],
                arm_ids,
                [r.arm if crossover else "" for r in rows],
            ],
        )
        units = [(r.stratum, r.sequence, n, code) for r in rows for n, code in enumerate(r.unit_codes, 1)]
        cur.execute(
            f"INSERT INTO {q(unit.db_table)} ({q(unit.get_field('slot').column)}, {q(unit.get_field('code').column)},"  # noqa: S608
            f" {q(unit.get_field('number').column)})"
            f" SELECT s.{q(slot.pk.column)}, u.code, u.number"
            " FROM unnest(%s::text[], %s::int[], %s::int[], %s::text[]) WITH ORDINALITY"
            " AS u(stratum, sequence, number, code, n)"
            f" JOIN {q(slot.db_table)} s ON s.{col['allocation_list']} = %s AND s.{col['stratum']} = u.stratum"
            f" AND s.{col['sequence']} = u.sequence ORDER BY u.n",
            [[u[0] for u in units], [u[1] for u in units], [u[2] for u in units], [u[3] for u in units], alist.pk],
        )


def allocation_list_generate(*, trial, seed: int, per_stratum: int) -> AllocationList:
    protocol = protocol_current(trial)
    rows = allocation_generate_rows(
        strata=trial_strata(trial=trial),
        arms=_arms_of(trial),
        block_sizes=list(protocol.randomisation.block_sizes),
        per_stratum=per_stratum,
        seed=seed,
        units_per_allocation=protocol.randomisation.dose_units.per_allocation,
        unit_prefix=protocol.randomisation.dose_units.prefix,
        taken_codes=frozenset(
            DoseUnit.objects.filter(code__startswith=f"{protocol.randomisation.dose_units.prefix}-").values_list(
                "code", flat=True
            )
        ),
    )
    return allocation_list_store(trial=trial, rows=rows, source=AllocationList.GENERATED, seed=seed)


def allocation_rows_parse(*, text: str, trial) -> list[SlotRow]:
    """CSV with columns stratum,sequence,block,block_size,arm[,unit_codes] (unit codes ';'-separated; when
    absent they are generated at random with the protocol's prefix)."""
    protocol = protocol_current(trial)
    units = protocol.randomisation.dose_units
    reader = csv.DictReader(io.StringIO(text))
    needed = set(CSV_COLUMNS) - {"unit_codes"}
    if reader.fieldnames is None or not needed <= set(reader.fieldnames):
        raise ValidationError({"file": [f"The CSV needs the columns {', '.join(CSV_COLUMNS)}."]})
    rows = []
    for n, rec in enumerate(reader, start=2):
        try:
            codes = tuple(c.strip() for c in (rec.get("unit_codes") or "").split(";") if c.strip())
            if not codes:
                codes = tuple(
                    f"{units.prefix}-" + "".join(secrets.choice(UNIT_ALPHABET) for _ in range(UNIT_LENGTH))
                    for _ in range(units.per_allocation)
                )
            rows.append(
                SlotRow(
                    stratum=rec["stratum"].strip(),
                    sequence=int(rec["sequence"]),
                    block=int(rec["block"]),
                    block_size=int(rec["block_size"]),
                    arm=rec["arm"].strip(),
                    unit_codes=codes,
                )
            )
        except (TypeError, ValueError, AttributeError) as exc:
            raise ValidationError({"file": [f"line {n}: {exc}"]}) from exc
    if not rows:
        raise ValidationError({"file": ["The CSV holds no rows."]})
    return rows


def allocation_list_import(*, trial, text: str) -> AllocationList:
    return allocation_list_store(
        trial=trial, rows=allocation_rows_parse(text=text, trial=trial), source=AllocationList.IMPORTED
    )


def allocation_simulate(*, trial, participants: int, seed: int = 0) -> dict:
    """Dry run over the stored list (touching nothing): participants arrive in random strata; report per
    stratum how many were allocated, the arm balance and whether the stratum ran out."""
    alist = AllocationList.objects.filter(trial=trial).first()
    if alist is None:
        raise ValidationError({"trial": [f"{trial.slug} has no allocation list yet."]})
    strata = trial_strata(trial=trial)
    free: dict[str, list[str]] = {s: [] for s in strata}
    for stratum, arm in (
        AllocationSlot.objects.filter(allocation_list=alist, taken=False)
        .order_by("stratum", "sequence")
        .annotate(code=Coalesce(NullIf("arm_sequence", Value("")), "arm__code"))
        .values_list("stratum", "code")
    ):
        free.setdefault(stratum, []).append(arm)
    rng = random.Random(seed)
    report = {s: {"allocated": 0, "arms": Counter(), "exhausted_after": None, "turned_away": 0} for s in free}
    for n in range(1, participants + 1):
        stratum = rng.choice(strata)
        entry = report[stratum]
        if entry["allocated"] < len(free[stratum]):
            entry["arms"][free[stratum][entry["allocated"]]] += 1
            entry["allocated"] += 1
        else:
            entry["turned_away"] += 1
            if entry["exhausted_after"] is None:
                entry["exhausted_after"] = n
    return report
