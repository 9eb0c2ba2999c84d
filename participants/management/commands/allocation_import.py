"""UNBLINDED: import a concealed allocation list (CSV) instead of generating one; prints its SHA-256."""

from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from participants.services import allocation_list_import

from ._trial import trial_from_slug, validation_message


class Command(BaseCommand):
    help = "Import an allocation list: CSV columns stratum,sequence,block,block_size,arm[,unit_codes]."

    def add_arguments(self, parser):
        parser.add_argument("--trial", required=True, help="trial slug")
        parser.add_argument("path")

    def handle(self, *args, trial, path, **options):
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise CommandError(f"{path}: cannot read the file ({exc})") from exc
        try:
            alist = allocation_list_import(trial=trial_from_slug(trial), text=text)
        except ValidationError as exc:
            raise CommandError(validation_message(exc)) from exc
        self.stdout.write(f"allocation list {alist.uuid}: {alist.slots.count()} slots")
        self.stdout.write(f"sha256 {alist.sha256}")
