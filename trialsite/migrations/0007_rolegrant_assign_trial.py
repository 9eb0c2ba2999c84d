"""Give every existing role grant its trial, where that is unambiguous.

- Exactly one trial in the database: every grant belongs to it.
- Otherwise, a grant naming a site that belongs to exactly one trial: that trial.
- Otherwise (several trials and a trial-wide grant, or a site shared by several trials, or no trial at all):
  the grant keeps an empty trial. Such a grant grants NOTHING (trialsite.roles reads only grants with a
  trial) and is listed by `manage.py migrate`'s output; re-issue it with
  `manage.py grant_role USERNAME ROLE --trial SLUG [--site CODE]` and delete the old row in the admin.
  Failing closed is deliberate: guessing the trial could hand a role in the wrong trial.
Reverse: the trial column is dropped by the schema migration's reverse; nothing to undo here.
"""

from django.db import migrations


def assign_trials(apps, schema_editor):
    Trial = apps.get_model("trialsite", "Trial")
    RoleGrant = apps.get_model("trialsite", "RoleGrant")
    trials = list(Trial.objects.values_list("pk", flat=True))
    pending = RoleGrant.objects.filter(trial__isnull=True)
    if len(trials) == 1:
        pending.update(trial_id=trials[0])
        return
    left = []
    for grant in pending.select_related("site", "user"):
        site_trials = list(grant.site.trials.values_list("pk", flat=True)) if grant.site_id else []
        if len(site_trials) == 1:
            grant.trial_id = site_trials[0]
            grant.save(update_fields=["trial"])
        else:
            left.append(f"{grant.user.username} {grant.role} @ {grant.site.code if grant.site_id else 'all sites'}")
    if left:
        print(f"\n  {len(left)} role grant(s) left without a trial (they grant nothing until re-issued with --trial):")
        for line in left:
            print(f"    {line}")


class Migration(migrations.Migration):
    dependencies = [("trialsite", "0006_rolegrant_trial_scope")]
    operations = [migrations.RunPython(assign_trials, migrations.RunPython.noop)]
