"""`manage.py export_trial --trial SLUG --out PATH [--unblinded --reason TEXT] [--formats csv,parquet,spss,stata]`."""

from django.core.management.base import BaseCommand, CommandError

from analytics.export import FORMATS
from analytics.services import export_job_run_local, export_job_start_local
from trialsite.audit import audit_context
from trialsite.models import Trial


class Command(BaseCommand):
    help = "Write the export bundle (zip) of a trial: blinded unless --unblinded with a --reason."

    def add_arguments(self, parser):
        parser.add_argument("--trial", required=True)
        parser.add_argument("--out", required=True, help="path of the zip to write")
        parser.add_argument("--unblinded", action="store_true", help="add the allocation (needs --reason)")
        parser.add_argument("--reason", default="")
        parser.add_argument("--formats", default="csv", help=f"comma-separated: {','.join(FORMATS)}")

    def handle(self, *args, trial, out, unblinded, reason, formats, **options):
        obj = Trial.objects.filter(slug=trial).first()
        if obj is None:
            raise CommandError(f"No trial {trial!r}.")
        wanted = [f.strip() for f in formats.split(",") if f.strip()]
        unknown = [f for f in wanted if f not in FORMATS]
        if unknown:
            raise CommandError(f"Unknown format(s) {', '.join(unknown)}; use {', '.join(FORMATS)}.")
        reason = reason.strip()
        if unblinded and len(reason) < 3:
            raise CommandError("An unblinded export needs --reason.")
        # Shell access is the system admin's; the export is still recorded like every other, and a failure
        # leaves the job `failed` with its error (never `running`).
        job = export_job_start_local(
            trial=obj, blinded=not unblinded, formats=wanted or ["csv"], reason=reason or "command line export"
        )
        try:
            with audit_context(reason=f"export {job.uuid}"):
                result = export_job_run_local(job=job, out=out)
        except OSError as exc:
            raise CommandError(f"Export {job.uuid} failed: {exc}") from exc
        rows = {f["table"]: f["rows"] for f in result.files if f["format"] == "csv"}
        self.stdout.write(
            f"wrote {result.path} ({'blinded' if not unblinded else 'UNBLINDED'}, {result.size_bytes} bytes, "
            f"sha256 {result.sha256}): " + ", ".join(f"{k} {v}" for k, v in rows.items())
        )
