# This migration made django-q2 schedules; the schedules are now kept by
# portal.core.schedules after every migrate. It stays, doing nothing, so the migrations that
# follow it keep their place for databases that ran it.
from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("transfers", "0001_initial"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [migrations.RunPython(migrations.RunPython.noop, migrations.RunPython.noop)]
