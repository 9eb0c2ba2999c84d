"""Writing a simulated trial's batches from several processes (both cores: one simulates while the other's COPY
runs, and each process's Python runs on its own core).

The parent draws the participants, their baselines and allocations (serially, from the seed), then forks
`workers` processes; worker k writes batches k, k + workers, … each in its own transaction on its own database
connection, exactly as the serial run writes them (`TrialSimulator.write_batch`). Every random draw of a
participant's follow-up comes from a generator seeded by (seed, participant, part) (`TrialSimulator.seed_for`),
so the trial is the same whatever the number of processes; only database ids (sequence values) may interleave
differently. The end-of-study sweep runs in the parent once every worker has committed.

Forking needs the parent outside any transaction (its connection is closed before the fork so that no socket is
shared); inside one (a test's transaction, a caller's atomic block) the run is serial.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, fields

from django.db import connections

from .model import SimulationResult

_FORKED = None  # the simulator the forked workers inherit (set in the parent just before the fork)


def _work(share: list[int]) -> tuple[dict, dict, dict]:
    """In a forked worker: write the batches numbered in `share`; return the counts and the writer's figures."""
    sim, all_batches = _FORKED
    result = SimulationResult()
    try:
        for i in share:
            sim.write_batch(all_batches[i], result)
    finally:
        connections.close_all()
    return asdict(result), sim.writer.written, sim.writer.seconds


def run_in_workers(sim, batches: list[list], workers: int) -> SimulationResult:
    global _FORKED
    connections.close_all()  # nothing shared across the fork; each side opens its own connection
    _FORKED = (sim, batches)
    result = SimulationResult()
    try:
        ctx = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
            shares = [list(range(k, len(batches), workers)) for k in range(workers)]
            futures = [pool.submit(_work, share) for share in shares if share]
            for future in futures:
                counts, written, seconds = future.result()
                for f in fields(SimulationResult):
                    if f.name != "skipped":
                        setattr(result, f.name, getattr(result, f.name) + counts[f.name])
                for name in written:
                    sim.writer.written[name] += written[name]
                    sim.writer.seconds[name] += seconds[name]
    finally:
        _FORKED = None
    return result
