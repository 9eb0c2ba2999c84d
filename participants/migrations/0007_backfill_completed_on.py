"""Participants already `completed` (the simulator set that status) get their end-of-study date: the local date,
in their zone, at which their last survey instance's answer period ended (day 0 when they have none)."""

from django.db import migrations


def backfill(apps, schema_editor):
    participant = apps.get_model("participants", "Participant")._meta.db_table
    instance = apps.get_model("surveys", "SurveyInstance")._meta.db_table
    schema_editor.execute(
        f"UPDATE {participant} p SET completed_on = coalesce("  # noqa: S608 - table names
        f"(SELECT (max(i.grace_until) AT TIME ZONE p.timezone)::date FROM {instance} i "
        "WHERE i.participant_id = p.id AND i.status <> 'cancelled'), p.day0, p.randomised_at::date) "
        "WHERE p.status = 'completed' AND p.completed_on IS NULL"
    )


class Migration(migrations.Migration):

    dependencies = [
        ("participants", "0006_participant_completed_on"),
        ("surveys", "0003_reminder_delivery_coordinator_task"),
    ]

    operations = [migrations.RunPython(backfill, migrations.RunPython.noop)]
