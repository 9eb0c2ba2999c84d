"""Back-fill `OutboxMessage.trial` (trialsite 0010) for the messages recorded before it, where the trial follows
from the message itself. The same trial the services set on such messages today:

- `participants.safety_alert_notify` (payload `{"alert_id": …}`): the alert's participant's trial;
- `trialsite.mail` with dedupe key `safety_alert_escalated:<alert id>`: the alert's participant's trial;
- `trialsite.mail` with `unblinding:<request uuid>:…`: the request's participant's trial;
- `trialsite.mail` with `allocation_exhausted:<trial id>:<stratum>:…`: that trial.

Left NULL (shown to system admins only, like the same messages recorded today):
- `surveys.missed_streak_check` and `surveys.kit_code_missing_check`: the reminder sweep's housekeeping, recorded
  with no trial by design (surveys.reminders.services); giving old ones a trial would set them apart from new ones;
- any message whose alert, request or trial no longer exists, or whose key or payload has another shape (nothing
  is guessed from the free text of a subject or body).

Only rows with no trial are touched, so running it again changes nothing; the reverse leaves the trials set (they
are what the services would have recorded).
"""

from django.db import migrations

SAFETY_ALERT_NOTIFY = "participants.safety_alert_notify"
MAIL = "trialsite.mail"


def outbox_trial_backfill(apps, schema_editor) -> int:
    """Returns how many messages got their trial (for the test)."""
    outbox = apps.get_model("trialsite", "OutboxMessage")._meta.db_table
    trial = apps.get_model("trialsite", "Trial")._meta.db_table
    participant = apps.get_model("participants", "Participant")._meta.db_table
    alert = apps.get_model("participants", "SafetyAlert")._meta.db_table
    request = apps.get_model("participants", "UnblindingRequest")._meta.db_table
    statements = [
        # The alert notice: its payload names the alert (a number; anything else is left alone).
        (
            f"""UPDATE {outbox} o SET trial_id = p.trial_id FROM {alert} a JOIN {participant} p ON p.id = a.participant_id
            WHERE o.trial_id IS NULL AND o.kind = %s AND a.id::text = o.payload->>'alert_id'""",
            [SAFETY_ALERT_NOTIFY],
        ),
        (
            f"""UPDATE {outbox} o SET trial_id = p.trial_id FROM {alert} a JOIN {participant} p ON p.id = a.participant_id
            WHERE o.trial_id IS NULL AND o.kind = %s AND o.dedupe_key LIKE 'safety\\_alert\\_escalated:%%'
              AND a.id::text = split_part(o.dedupe_key, ':', 2)""",
            [MAIL],
        ),
        (
            f"""UPDATE {outbox} o SET trial_id = p.trial_id FROM {request} r JOIN {participant} p ON p.id = r.participant_id
            WHERE o.trial_id IS NULL AND o.kind = %s AND o.dedupe_key LIKE 'unblinding:%%'
              AND r.uuid::text = split_part(o.dedupe_key, ':', 2)""",
            [MAIL],
        ),
        (
            f"""UPDATE {outbox} o SET trial_id = t.id FROM {trial} t
            WHERE o.trial_id IS NULL AND o.kind = %s AND o.dedupe_key LIKE 'allocation\\_exhausted:%%'
              AND t.id::text = split_part(o.dedupe_key, ':', 2)""",
            [MAIL],
        ),
    ]
    done = 0
    with schema_editor.connection.cursor() as cursor:
        for sql, params in statements:
            cursor.execute(sql, params)
            done += cursor.rowcount
    return done


class Migration(migrations.Migration):
    dependencies = [
        ("participants", "0015_participant_tokens_revoked_at"),
        ("trialsite", "0010_outbox_message_trial"),
    ]

    operations = [
        migrations.RunPython(outbox_trial_backfill, migrations.RunPython.noop, elidable=True),
    ]
