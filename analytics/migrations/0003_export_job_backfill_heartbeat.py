"""Existing export jobs: queued since they were created; a job left `running` by a dead worker (the bug this
fixes) gets attempt 1 and its start as its last heartbeat, so the beat sweep reclaims it."""

from django.db import migrations
from django.db.models import F
from django.db.models.functions import Coalesce


def backfill(apps, schema_editor):
    ExportJob = apps.get_model("analytics", "ExportJob")
    ExportJob.objects.update(queued_at=F("created_at"))
    ExportJob.objects.filter(status="running").update(
        attempts=1, heartbeat_at=Coalesce(F("started_at"), F("created_at"))
    )


class Migration(migrations.Migration):

    dependencies = [
        ("analytics", "0002_export_job_heartbeat_attempts"),
    ]

    operations = [migrations.RunPython(backfill, migrations.RunPython.noop)]
