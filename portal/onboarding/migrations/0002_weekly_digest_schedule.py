from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from django.db import migrations

NAME = "onboarding: weekly digest of overdue tasks"


def add_schedule(apps, schema_editor):
    copenhagen = ZoneInfo("Europe/Copenhagen")
    today = datetime.now(copenhagen).date()
    monday = today + timedelta(days=(7 - today.weekday()) % 7 or 7)
    apps.get_model("django_q", "Schedule").objects.update_or_create(
        name=NAME,
        defaults={
            "func": "portal.onboarding.reminders.weekly_digest",
            "schedule_type": "W",
            "repeats": -1,
            # Monday morning, Danish time, when the week's work is planned.
            "next_run": datetime.combine(monday, time(7, 0), tzinfo=copenhagen),
        },
    )


def remove_schedule(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name=NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("onboarding", "0001_initial"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [migrations.RunPython(add_schedule, remove_schedule)]
