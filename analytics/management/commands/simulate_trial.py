"""`manage.py simulate_trial --trial SLUG --participants N --days D [--seed S] [--if-empty] [--workers W]`."""

import time

from django.core.management.base import BaseCommand, CommandError

from analytics.simulation import simulate_trial
from trialsite.models import Trial


class Command(BaseCommand):
    help = "Create synthetic participants with realistic answers, misses, dose logs and blinding guesses."

    def add_arguments(self, parser):
        parser.add_argument("--trial", required=True, help="trial slug")
        parser.add_argument("--participants", type=int, required=True)
        parser.add_argument("--days", type=int, required=True, help="days of follow-up every participant has had")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--if-empty", action="store_true", help="do nothing if the trial has participants")
        parser.add_argument("--workers", type=int, default=1, help="processes writing the batches (same trial)")

    def handle(self, *args, trial, participants, days, seed, if_empty, workers=1, **options):
        obj = Trial.objects.filter(slug=trial).first()
        if obj is None:
            raise CommandError(f"No trial {trial!r}; load its protocol first (load_protocol).")
        if participants < 0 or days < 0:
            raise CommandError("--participants and --days must not be negative.")
        started = time.monotonic()
        try:
            result = simulate_trial(
                trial=obj, participants=participants, days=days, seed=seed, if_empty=if_empty, workers=workers
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        if result.skipped:
            self.stdout.write(f"{trial} already has participants; nothing simulated.")
            return
        self.stdout.write(
            f"simulated {result.participants} participants in {trial} ({result.randomised} randomised, "
            f"{result.screen_failed} screen failures, {result.withdrawn} withdrawn): {result.instances} survey "
            f"instances, {result.responses} responses, {result.item_answers} item answers, {result.doses} doses, "
            f"{result.side_effects} side effects, {result.safety_alerts} safety alerts "
            f"in {time.monotonic() - started:.1f}s"
        )
