from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('participants', '0007_backfill_completed_on'),
    ]

    operations = [
        migrations.AddConstraint(
            model_name='participant',
            constraint=models.CheckConstraint(condition=models.Q(models.Q(('status', 'completed'), _negated=True), models.Q(('completed_on__isnull', False), ('day0__isnull', False)), _connector='OR'), name='participant_completed_has_date'),
        ),
    ]
