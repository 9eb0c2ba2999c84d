"""Dry run of the stored allocation list: balance and exhaustion per stratum. Changes nothing."""

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from participants.services import allocation_simulate

from ._trial import trial_from_slug, validation_message


class Command(BaseCommand):
    help = "Simulate N participants arriving in random strata; report balance and exhaustion per stratum."

    def add_arguments(self, parser):
        parser.add_argument("--trial", required=True, help="trial slug")
        parser.add_argument("--participants", required=True, type=int)
        parser.add_argument("--seed", type=int, default=0)

    def handle(self, *args, trial, participants, seed, **options):
        if participants < 0:
            raise CommandError("--participants must not be negative")
        try:
            report = allocation_simulate(trial=trial_from_slug(trial), participants=participants, seed=seed)
        except ValidationError as exc:
            raise CommandError(validation_message(exc)) from exc
        for stratum, entry in sorted(report.items()):
            arms = ", ".join(f"{code}={n}" for code, n in sorted(entry["arms"].items())) or "-"
            counts = sorted(entry["arms"].values())
            imbalance = (counts[-1] - counts[0]) if counts else 0
            if entry["exhausted_after"] is not None:
                state = f"EXHAUSTED at participant {entry['exhausted_after']} ({entry['turned_away']} turned away)"
            else:
                state = "ok"
            self.stdout.write(f"{stratum}: allocated {entry['allocated']} [{arms}] imbalance {imbalance}; {state}")
        self.stdout.write("(dry run: nothing was changed)")
