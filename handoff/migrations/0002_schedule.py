from django.db import migrations

NAME = "handoff: watched and delivery folders"


def add_schedule(apps, schema_editor):
    # Every minute: django-q2's scheduler looks at schedules every 30 seconds, so a shorter
    # interval is not possible here; `manage.py watch_folders` loops every few seconds instead.
    apps.get_model("django_q", "Schedule").objects.update_or_create(
        name=NAME,
        defaults={
            "func": "handoff.tasks.watch_all",
            "schedule_type": "I",
            "minutes": 1,
            "repeats": -1,
        },
    )


def remove_schedule(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name=NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("handoff", "0001_initial"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [migrations.RunPython(add_schedule, remove_schedule)]
