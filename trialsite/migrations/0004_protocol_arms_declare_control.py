"""Protocol versions stored before arms declared their comparator (`control: true`) get it once, where it is
unambiguous: of exactly two arms, the one whose name says placebo. Any other stored version is left as it
was and fails validation when read (fail closed) until an amended protocol declaring its control is loaded.
"""

from django.db import migrations


def declare_control(apps, schema_editor):
    ProtocolVersion = apps.get_model("trialsite", "ProtocolVersion")
    for version in ProtocolVersion.objects.all():
        arms = (version.definition or {}).get("arms") or []
        if not arms or any("control" in arm for arm in arms):
            continue
        named = [arm for arm in arms if "placebo" in str(arm.get("name", "")).lower()]
        if len(arms) != 2 or len(named) != 1:
            continue
        for arm in arms:
            arm["control"] = arm is named[0]
        version.save(update_fields=["definition"])


class Migration(migrations.Migration):
    dependencies = [("trialsite", "0003_staff_login_events")]

    operations = [migrations.RunPython(declare_control, migrations.RunPython.noop)]
