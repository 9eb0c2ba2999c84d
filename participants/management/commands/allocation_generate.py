"""UNBLINDED: generate the concealed allocation list of a trial from a seed; prints the list's SHA-256."""

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from participants.services import allocation_list_generate

from ._trial import trial_from_slug, validation_message


class Command(BaseCommand):
    help = "Generate stratified permuted blocks (random block sizes) per stratum from a seed. Unblinded use only."

    def add_arguments(self, parser):
        parser.add_argument("--trial", required=True, help="trial slug")
        parser.add_argument("--seed", required=True, type=int)
        parser.add_argument("--per-stratum", required=True, type=int, help="minimum slots per stratum (whole blocks)")

    def handle(self, *args, trial, seed, per_stratum, **options):
        if per_stratum < 1:
            raise CommandError("--per-stratum must be at least 1")
        try:
            alist = allocation_list_generate(trial=trial_from_slug(trial), seed=seed, per_stratum=per_stratum)
        except ValidationError as exc:
            raise CommandError(validation_message(exc)) from exc
        count = alist.slots.count()
        self.stdout.write(f"allocation list {alist.uuid}: {count} slots")
        self.stdout.write(f"sha256 {alist.sha256}")
