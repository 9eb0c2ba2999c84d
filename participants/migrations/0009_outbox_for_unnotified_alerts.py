"""Alerts raised before the outbox whose notification never went out (the on_commit publish was lost, e.g. Redis
down) get their outbox row now, so the sweep delivers it. Idempotent: ON CONFLICT on the dedupe key."""

from django.db import migrations
from django.utils import timezone


def forwards(apps, schema_editor):
    SafetyAlert = apps.get_model("participants", "SafetyAlert")
    OutboxMessage = apps.get_model("trialsite", "OutboxMessage")
    now = timezone.now()
    rows = [
        OutboxMessage(
            kind="participants.safety_alert_notify",
            dedupe_key=f"safety_alert_notify:{pk}",
            payload={"alert_id": pk},
            created_at=now,
            next_attempt_at=now,
        )
        for pk in SafetyAlert.objects.filter(notified_at__isnull=True).values_list("pk", flat=True)
    ]
    OutboxMessage.objects.bulk_create(rows, batch_size=1000, ignore_conflicts=True)


class Migration(migrations.Migration):
    dependencies = [
        ("participants", "0008_participant_completed_has_date"),
        ("trialsite", "0005_outbox_message"),
    ]

    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
