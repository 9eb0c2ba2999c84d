from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('analytics', '0003_export_job_backfill_heartbeat'),
    ]

    operations = [
        migrations.AddConstraint(
            model_name='exportjob',
            constraint=models.CheckConstraint(condition=models.Q(('origin__in', ['api', 'command'])), name='exportjob_origin_valid'),
        ),
        migrations.AddConstraint(
            model_name='exportjob',
            constraint=models.CheckConstraint(condition=models.Q(models.Q(('status', 'running'), _negated=True), models.Q(('attempts__gt', 0), ('heartbeat_at__isnull', False)), _connector='OR'), name='exportjob_running_has_heartbeat'),
        ),
    ]
