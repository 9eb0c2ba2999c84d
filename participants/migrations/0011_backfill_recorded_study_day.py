"""Adverse events, safety alerts and withdrawals store their study day when recorded (issue 11). Rows recorded
before have it filled here from the participant's zone as it is now (the zone the export used until now), so no
exported study day changes on upgrade. Rows of participants without a day 0 stay empty (the export computes them
once day 0 is known)."""

from django.db import migrations


def backfill(apps, schema_editor):
    participant = apps.get_model("participants", "Participant")._meta.db_table
    for model, instant in (("AdverseEvent", "reported_at"), ("SafetyAlert", "raised_at"), ("Withdrawal", "withdrawn_at")):
        table = apps.get_model("participants", model)._meta.db_table
        schema_editor.execute(
            f"UPDATE {table} t SET study_day = ((t.{instant} AT TIME ZONE p.timezone)::date - p.day0) "  # noqa: S608
            f"FROM {participant} p WHERE p.id = t.participant_id AND p.day0 IS NOT NULL AND t.study_day IS NULL"
        )


class Migration(migrations.Migration):
    dependencies = [("participants", "0010_recorded_study_day")]

    operations = [migrations.RunPython(backfill, migrations.RunPython.noop)]
