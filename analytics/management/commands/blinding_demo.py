"""`manage.py blinding_demo`: simulated parallel and crossover trials with expectancy-driven effects (no drug
effect; scores follow the guess; guessing improves with dose), and what the per-session blinding figures make
of them: the naive effect and the CGRC estimate at chance-level guessing. Touches no database."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from analytics.blinding_sessions import session_figures
from analytics.design_simulation import simulate_crossover, simulate_design


class Command(BaseCommand):
    help = "Show a naive effect made by breaking blind, and the CGRC shrinking it (simulated, no database)."

    def add_arguments(self, parser):
        parser.add_argument("--participants", type=int, default=200)
        parser.add_argument("--true-effect", type=float, default=0.0)
        parser.add_argument("--expectancy-effect", type=float, default=6.0)
        parser.add_argument("--seed", type=int, default=1)

    def handle(self, *args, **o):
        model = {"true_effect": o["true_effect"], "expectancy_effect": o["expectancy_effect"]}
        # Parallel groups: guesses after the 2nd and the 7th dose. Crossover (AB/BA): the same after the 2nd and
        # the 7th dose of each period, the arms swapped in period 2.
        parallel = simulate_design(n=o["participants"], dose_counts=[2, 7], seed=o["seed"], **model)
        crossover = simulate_crossover(n=o["participants"], dose_counts=[2, 7], seed=o["seed"] + 1, **model)
        rows = [("parallel", f"dose {d}", r) for d, r in parallel.items()]
        rows += [("crossover", f"P{p} dose {d}", r) for (p, d), r in crossover.items()]
        self.stdout.write(f"true effect {o['true_effect']:+.2f}; expectancy effect of guessing 'active' "
                          f"{o['expectancy_effect']:+.2f}")  # fmt: skip
        self.stdout.write(
            f"{'design':10} {'session':>10} {'CGR act':>8} {'CGR pla':>8} {'naive':>8} {'CGRC':>8}  interval"
        )
        for name, when, records in rows:
            f = session_figures(records, cgrc_options={"n_trials": 200, "seed": o["seed"]})
            c, cgr = f["cgrc"], f["correct_guess_rate"]
            interval = f"{c['lower']:+.2f} to {c['upper']:+.2f}" if c["defined"] else c["reason"]
            self.stdout.write(
                f"{name:10} {when:>10} {cgr['active']['rate']:>8.2f} {cgr['placebo']['rate']:>8.2f} "
                f"{c['naive_effect']:>+8.2f} {(c['estimate'] or 0):>+8.2f}  {interval}"
            )
