"""`study_day` is fixed when a row is recorded and exported as stored (issue 11). Rows recorded before that have
it filled here from the participant's zone as it is now (the zone the export used until now), so no exported
study day changes on upgrade:
- responses and dose logs without one (the clock-skewed answer counts from its receipt, as the service does);
- side effects: the service used to store the onset day there while the export showed the day *reported*;
  `onset_day` stays derived from `started_on`, `study_day` becomes the reported day for every row."""

from django.db import migrations


def backfill(apps, schema_editor):
    participant = apps.get_model("participants", "Participant")._meta.db_table
    response = apps.get_model("surveys", "Response")._meta.db_table
    dose = apps.get_model("surveys", "DoseLog")._meta.db_table
    side_effect = apps.get_model("surveys", "SideEffect")._meta.db_table

    def day(expr: str) -> str:
        return f"((({expr}) AT TIME ZONE p.timezone)::date - p.day0)"

    for table, instant, only_missing in (
        (response, "CASE WHEN t.clock_skew THEN t.received_at ELSE t.authored_at END", True),
        (dose, "t.taken_at", True),
        (side_effect, "t.reported_at", False),
    ):
        schema_editor.execute(
            f"UPDATE {table} t SET study_day = {day(instant)} FROM {participant} p "  # noqa: S608 - table names
            f"WHERE p.id = t.participant_id AND p.day0 IS NOT NULL"
            + (" AND t.study_day IS NULL" if only_missing else "")
        )


class Migration(migrations.Migration):

    dependencies = [
        ("participants", "0003_staff_blinding_guess"),
        ("surveys", "0003_reminder_delivery_coordinator_task"),
    ]

    operations = [migrations.RunPython(backfill, migrations.RunPython.noop)]
