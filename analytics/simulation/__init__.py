"""Synthetic participants for demos, tests and benchmarks: `simulate_trial`.

The data have the shape the real flows create (participants, consent signatures, allocations, survey instances
with reminders and prompt telemetry, responses with item answers and scores, dose logs, side effects, safety
alerts, coordinators' blinding guesses). The package's parts:

- model.py: the statistical model (who the participants are, how they answer) — no database;
- follow_up.py: instances, answers, reminders, doses, side effects and alerts, decided by production's own pure
  functions (schedule, quiet hours, scoring, safety rules, dose days);
- simulator.py: the run (draw, baseline → stratum → allocation, batches, the end-of-study sweep);
- writer.py: the only part of its own — COPY in large batches, and how it meets the audit triggers;
- parallel.py: the batches written by several forked processes;
- indexes.py: an opt-in load without the secondary indexes, rebuilt after.

Everything is drawn from seeded random generators (the participants from the seed, each participant's
follow-up from the seed and the participant), so a seed reproduces the same trial, serial or parallel.
"""

from __future__ import annotations

from datetime import datetime

from participants.models import Participant
from trialsite.models import Trial

from .model import SimulationResult
from .simulator import TrialSimulator


def simulate_trial(
    *,
    trial: Trial,
    participants: int,
    days: int,
    seed: int = 0,
    if_empty: bool = False,
    now: datetime | None = None,
    audit: bool = True,
    workers: int = 1,
    defer_indexes: bool = False,
) -> SimulationResult:
    """Create `participants` synthetic participants in the trial, followed for at least `days` days.

    With `if_empty`, do nothing when the trial already has participants (the demo is idempotent). With
    `audit=False` the audit insert triggers are skipped for the simulator's own writes (see writer.py). With
    `workers` > 1 the batches are written by that many forked processes (parallel.py; serial inside a
    transaction); the trial is the same either way. `defer_indexes` drops the tables' secondary indexes for the
    load and rebuilds them after (indexes.py: for a benchmark's database only).
    """
    if participants < 0 or days < 0:
        raise ValueError("participants and days must not be negative")
    if if_empty and Participant.objects.filter(trial=trial).exists():
        return SimulationResult(skipped=True)
    sim = TrialSimulator(trial=trial, seed=seed, now=now, audit=audit)
    return sim.run(participants=participants, days=days, workers=workers, defer_indexes=defer_indexes)


__all__ = ["simulate_trial", "SimulationResult", "TrialSimulator"]
